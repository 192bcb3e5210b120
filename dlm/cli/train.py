"""``dlm train RECIPE.yaml [key=value ...] [--resume [DIR]]``: train with accelerate from a YAML recipe."""

from __future__ import annotations

import argparse


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "train", help="train a diffusion LM from a YAML recipe",
        description="Train from a recipe; dotted overrides such as train.max_steps=100 follow it. "
                    "Multi-process: accelerate launch [...] -m dlm.cli.main train RECIPE.")
    parser.add_argument("recipe", help="path of a YAML recipe (see recipes/)")
    parser.add_argument("overrides", nargs="*", metavar="KEY=VALUE", help="dotted recipe overrides")
    parser.add_argument("--resume", nargs="?", const=True, default=False, metavar="CHECKPOINT",
                        help="continue from the newest checkpoint in train.output_dir (or from CHECKPOINT)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from dlm.training.recipe import load_recipe
    from dlm.training.trainer import Trainer

    recipe = load_recipe(args.recipe, args.overrides)
    trainer = Trainer(recipe)
    metrics = trainer.fit(resume=args.resume)
    if trainer.accelerator.is_main_process:
        shown = ", ".join(f"{k}={v:.4g}" for k, v in metrics.items() if k != "step")
        print(f"step {metrics.get('step', trainer.step)}: {shown}")
        print(f"model: {trainer.output_dir / 'final'}")
    return 0
