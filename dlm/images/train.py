"""``python -m dlm.images.train RECIPE.yaml [key=value ...] [--resume [DIR]]``: train an image model from a recipe.

Multi-process: ``accelerate launch [...] -m dlm.images.train RECIPE``. User mistakes are one line, exit code 2.
"""

from __future__ import annotations

import argparse
import sys

from dlm.errors import DLMError


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m dlm.images.train", description=__doc__.splitlines()[0])
    parser.add_argument("recipe", help="path of a YAML image recipe (see recipes/images/)")
    parser.add_argument("overrides", nargs="*", metavar="KEY=VALUE", help="dotted recipe overrides")
    parser.add_argument("--resume", nargs="?", const=True, default=False, metavar="CHECKPOINT",
                        help="continue from the newest checkpoint in train.output_dir (or from CHECKPOINT)")
    args = parser.parse_args(argv)
    try:
        from dlm.images.recipe import load_image_recipe
        from dlm.images.trainer import ImageTrainer

        trainer = ImageTrainer(load_image_recipe(args.recipe, args.overrides))
        metrics = trainer.fit(resume=args.resume)
    except DLMError as err:
        print(err.one_line(), file=sys.stderr)
        return 2
    if trainer.accelerator.is_main_process:
        print(f"step {metrics.get('step', trainer.step)}: loss={metrics.get('loss', float('nan')):.4g}")
        print(f"model: {trainer.output_dir / 'final'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
