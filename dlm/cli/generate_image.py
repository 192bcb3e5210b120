"""``dlm generate-image PROMPT ...``: sample images from a text-to-image diffusion model into a PNG grid."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from dlm.errors import InputError


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "generate-image", help="generate images from a text prompt",
        description="Sample images for each PROMPT ('' samples unconditionally) with classifier-free guidance, and "
                    "write a PNG grid to --out plus one PNG per image beside it (<stem>-<i>.png).")
    parser.add_argument("prompts", nargs="+", metavar="PROMPT")
    parser.add_argument("--model", default=None, help="model directory (default: the shipped dlm/assets/fashion-t2i)")
    parser.add_argument("--encoder", default=None, help="prompt encoder: minilm or class (default: the model's own)")
    parser.add_argument("--num-samples", type=int, default=16, help="images per prompt (default 16)")
    parser.add_argument("--sampler", default="h", help="h (the 𝔥-sampler), heun or pc (default h)")
    parser.add_argument("--h", type=float, default=0.0, help="𝔥 of the h sampler: 0 PF-ODE, 1 reverse SDE (default 0)")
    parser.add_argument("--steps", type=int, default=50, help="sampling steps (default 50)")
    parser.add_argument("--guidance", type=float, default=3.0,
                        help="classifier-free guidance weight w >= 0: 0 unconditional, 1 conditional (default 3)")
    parser.add_argument("--size", type=int, default=None, help="image size; must match the model's (checked)")
    parser.add_argument("--seed", type=int, default=None, help="random seed (same seed, same images)")
    parser.add_argument("--out", type=Path, default=Path("grid.png"), help="grid PNG (default grid.png)")
    parser.add_argument("--inpaint", type=Path, default=None, metavar="IMAGE",
                        help="grey PNG to complete (with --mask; the h sampler with replacement of the kept pixels)")
    parser.add_argument("--mask", type=Path, default=None, metavar="MASK",
                        help="grey PNG of the same size: non-zero pixels of --inpaint are kept, zero ones generated")
    parser.add_argument("--threads", type=int, default=1, help="CPU threads for torch (default 1)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar on stderr")
    parser.set_defaults(func=run)


def read_png(path: Path):
    """A PNG as a uint8 grey-scale tensor [H, W]."""
    import numpy as np
    import torch
    from PIL import Image

    try:
        return torch.from_numpy(np.array(Image.open(path).convert("L")))
    except OSError as err:  # PIL.UnidentifiedImageError included
        raise InputError(f"cannot read image {path}: {' '.join(str(err).split())[:120]}") from None


def run(args: argparse.Namespace) -> int:
    if args.threads < 1:
        raise InputError(f"--threads must be at least 1, got {args.threads}")
    if args.out.suffix.lower() != ".png":
        raise InputError(f"--out must name a .png file, got {args.out}")
    import torch

    from dlm.images.grid import save_samples
    from dlm.images.guidance import check_guidance
    from dlm.images.pipeline import TextToImagePipeline

    check_guidance(args.guidance)
    torch.set_num_threads(args.threads)
    if (args.inpaint is None) != (args.mask is None):
        raise InputError("--inpaint and --mask go together", hint="give the image to complete and its mask")
    pipe = TextToImagePipeline.from_pretrained(args.model, args.encoder)
    images = []
    for i, prompt in enumerate(args.prompts):
        seed = None if args.seed is None else args.seed + i
        if args.inpaint is None:
            images.append(pipe(prompt, num_samples=args.num_samples, sampler=args.sampler, h=args.h, steps=args.steps,
                               guidance=args.guidance, seed=seed, size=args.size, progress=not args.no_progress))
        else:
            images.append(pipe.inpaint(prompt, read_png(args.inpaint), read_png(args.mask) > 0,
                                       num_samples=args.num_samples, h=args.h, steps=args.steps,
                                       guidance=args.guidance, seed=seed, progress=not args.no_progress))
    paths = save_samples(torch.cat(images), args.out, ncol=args.num_samples if len(args.prompts) > 1 else None)
    print(f"wrote {paths[0]} and {len(paths) - 1} images beside it", file=sys.stderr)
    return 0
