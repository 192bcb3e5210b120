"""Measure a text-to-image model: accuracy of a classifier on generated images against the prompted class and the
Fréchet distance in that classifier's feature space to the test images, for several 𝔥 and guidance weights, plus
bits/dim of test images (PF-ODE, Hutchinson divergence) and, optionally, the WKB correction per 𝔥.

    python scripts/bench_images.py --model runs/images/fashion_t2i/final --out bench_images.json --grid grid.png
    python scripts/bench_images.py --model runs/images/digits_class/final --quick

The classifier (dlm.images.classifier) is trained once per data set on its training split and cached in
<assets>/images/classifier-<dataset>.safetensors. For each (𝔥, w) it samples --per-class images for every class
with the prompt "a photo of <class>" (the caption set's second template), seeded. The Fréchet distance compares
those images' features with --fd-reference test images' (the same number of images per class is a fairer match).
--wkb N adds the first-order WKB correction of the likelihood for N test images, by the Monte-Carlo path
estimator (dlm.continuous.wkb_paths: --wkb-paths perturbed paths of --wkb-steps Heun steps per image, third-order
forward derivatives of the U-Net), reported per 𝔥 and as the first-order coefficient in bits/dim with its
standard error over the images (the estimator is unbiased but noisy, so many images are the way to a tight mean).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from dlm.images import caption_set, image_dataset, image_tensor  # noqa: E402
from dlm.images.classifier import load_classifier, save_classifier, train_classifier  # noqa: E402
from dlm.images.grid import save_samples  # noqa: E402
from dlm.images.likelihood import image_bits_per_dim  # noqa: E402
from dlm.images.metrics import frechet_distance  # noqa: E402
from dlm.images.pipeline import TextToImagePipeline  # noqa: E402
from dlm.training.corpora import assets_dir  # noqa: E402

PROMPT_TEMPLATE = 1  # "a photo of {a}" / "the digit {noun}"


def floats(text: str) -> list[float]:
    return [float(v) for v in text.split(",") if v.strip()]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=None, help="image model directory (default: the shipped one)")
    parser.add_argument("--hs", type=floats, default=[0.0, 0.5, 1.0], help="comma-separated 𝔥 values")
    parser.add_argument("--guidances", type=floats, default=[0.0, 1.0, 3.0], help="comma-separated guidance weights")
    parser.add_argument("--per-class", type=int, default=50, help="generated images per class and setting")
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--fd-reference", type=int, default=2000, help="test images the Fréchet distance compares with")
    parser.add_argument("--bpd-images", type=int, default=100, help="test images for bits/dim")
    parser.add_argument("--bpd-tol", type=float, default=1e-5, help="rtol = atol of the likelihood ODE solve")
    parser.add_argument("--wkb", type=int, default=0, help="test images for the WKB correction (0: skip)")
    parser.add_argument("--wkb-paths", type=int, default=1, help="perturbed paths per image for the WKB correction")
    parser.add_argument("--wkb-steps", type=int, default=25, help="Heun steps of each perturbed path")
    parser.add_argument("--classifier-epochs", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--quick", action="store_true", help="a smoke run: few images, steps and settings")
    parser.add_argument("--out", type=Path, default=None, help="write the results as JSON here")
    parser.add_argument("--grid", type=Path, default=None, help="PNG grid: one row per class at the first 𝔥, largest w")
    args = parser.parse_args(argv)
    if args.wkb < 0 or args.wkb_paths < 1 or args.wkb_steps < 1:
        parser.error("--wkb must be >= 0 and --wkb-paths, --wkb-steps >= 1")
    if args.quick:
        args.hs, args.guidances, args.per_class, args.steps = args.hs[:1] + args.hs[-1:], [0.0, 3.0], 2, 8
        args.fd_reference, args.bpd_images, args.bpd_tol, args.classifier_epochs = 100, 4, 1e-3, 1
    return args


def judge(dataset: str, image_size: int, epochs: int) -> tuple:
    """The cached classifier of ``dataset`` (trained now if absent) and its test accuracy."""
    test = image_dataset(dataset, "test")
    test_images, test_labels = image_tensor(test), torch.tensor(test["label"])
    path = assets_dir() / "images" / f"classifier-{dataset}-e{epochs}.safetensors"
    if path.is_file():
        model = load_classifier(path, image_size)
    else:
        train = image_dataset(dataset, "train")
        model = train_classifier(image_tensor(train), torch.tensor(train["label"]), 10, epochs=epochs)
        save_classifier(model, path)
    predicted, _ = model.predict(test_images)
    return model, float((predicted == test_labels).float().mean()), test_images, test_labels


def reference_images(images: torch.Tensor, labels: torch.Tensor, count: int, seed: int) -> torch.Tensor:
    """``count`` test images drawn without replacement (seeded)."""
    rows = torch.randperm(len(images), generator=torch.Generator().manual_seed(seed))[:count]
    return images[rows]


def sample_setting(pipe: TextToImagePipeline, prompts: list[str], per_class: int, h: float, w: float, steps: int,
                   seed: int) -> torch.Tensor:
    """``per_class`` images per class prompt, class-major [C·n, H, W]."""
    return torch.cat([pipe(prompt, num_samples=per_class, sampler="h", h=h, steps=steps, guidance=w, seed=seed + c)
                      for c, prompt in enumerate(prompts)])


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    pipe = TextToImagePipeline.from_pretrained(args.model)
    config = pipe.model.config
    captions = caption_set(config.dataset)
    prompts = [captions.caption(c, PROMPT_TEMPLATE) for c in range(captions.num_classes)]
    classifier, test_accuracy, test_images, test_labels = judge(config.dataset, config.image_size,
                                                                args.classifier_epochs)
    reference = classifier.predict(reference_images(test_images, test_labels, args.fd_reference, args.seed))[1]
    print(f"classifier test accuracy {test_accuracy:.4f}; reference features {tuple(reference.shape)}", file=sys.stderr)
    labels = torch.arange(captions.num_classes).repeat_interleave(args.per_class)
    rows, grid_images = [], None
    for h in args.hs:
        for w in args.guidances:
            start = time.perf_counter()
            images = sample_setting(pipe, prompts, args.per_class, h, w, args.steps, args.seed)
            seconds = time.perf_counter() - start
            predicted, features = classifier.predict(images)
            row = {"h": h, "guidance": w, "accuracy": float((predicted == labels).float().mean()),
                   "frechet": frechet_distance(features, reference), "seconds": seconds}
            rows.append(row)
            print(json.dumps(row), file=sys.stderr)
            if h == args.hs[0] and w == max(args.guidances):
                grid_images = images
    bpd = image_bits_per_dim(pipe.model, test_images[:args.bpd_images], rtol=args.bpd_tol, atol=args.bpd_tol,
                             generator=torch.Generator().manual_seed(args.seed))[0.0]
    results = {"model": str(args.model or "shipped"), "dataset": config.dataset, "steps": args.steps,
               "per_class": args.per_class, "fd_reference": args.fd_reference, "classifier_test_accuracy": test_accuracy,
               "samples": rows, "bits_per_dim": {"mean": float(bpd.mean()), "std": float(bpd.std()),
                                                  "images": args.bpd_images, "tol": args.bpd_tol}}
    if args.wkb:
        results["wkb"] = wkb_figures(pipe.model, test_images[:args.wkb], args)
    print_table(results)
    if args.out is not None:
        args.out.write_text(json.dumps(results, indent=2))
    if args.grid is not None and grid_images is not None:
        save_samples(grid_images, args.grid, ncol=args.per_class)
    return results


def wkb_figures(model, images: torch.Tensor, args: argparse.Namespace) -> dict:
    """bits/dim per 𝔥 with the path-estimated WKB correction, and the first-order coefficient d bits/dim / d𝔥."""
    start = time.perf_counter()
    hs = sorted({0.0, 1.0, *args.hs})
    per_h = image_bits_per_dim(model, images, hs=hs, generator=torch.Generator().manual_seed(args.seed),
                               paths=args.wkb_paths, path_steps=args.wkb_steps, progress=True)
    slope = per_h[1.0] - per_h[0.0]  # = −correction/(D ln 2): the paper's 1st-corr in bits/dim
    return {"images": len(images), "paths": args.wkb_paths, "steps": args.wkb_steps,
            "seconds": time.perf_counter() - start, "bits_per_dim": {str(h): float(v.mean()) for h, v in per_h.items()},
            "first_order": {"mean": float(slope.mean()), "stderr": float(slope.std() / len(images) ** 0.5)}}


def print_table(results: dict) -> None:
    """The results as a markdown table on stdout."""
    print(f"classifier test accuracy: {results['classifier_test_accuracy']:.3f}")
    print("| 𝔥 | guidance | accuracy vs prompt | Fréchet distance | seconds |")
    print("|---|---|---|---|---|")
    for row in results["samples"]:
        print(f"| {row['h']:g} | {row['guidance']:g} | {row['accuracy']:.3f} | {row['frechet']:.2f} | {row['seconds']:.0f} |")
    bpd = results["bits_per_dim"]
    print(f"bits/dim on {bpd['images']} test images (PF-ODE, Hutchinson, tol {bpd['tol']:g}): "
          f"{bpd['mean']:.3f} ± {bpd['std']:.3f}")
    if "wkb" in results:
        wkb = results["wkb"]
        first = wkb["first_order"]
        print(f"WKB on {wkb['images']} test images ({wkb['paths']} path(s) of {wkb['steps']} Heun steps each, "
              f"{wkb['seconds']:.0f} s): d bits/dim / d𝔥 = {first['mean']:.3f} ± {first['stderr']:.3f}")
        for h, value in wkb["bits_per_dim"].items():
            print(f"bits/dim at 𝔥={h} (first order): {value:.3f}")


if __name__ == "__main__":
    main()
