"""`dlm generate-image` and the pipeline: PNG grid plus one PNG per image, seeded, one-line errors."""

import numpy as np
import pytest
import torch
from PIL import Image

from dlm.cli.main import main
from dlm.images.grid import image_grid
from dlm.images.pipeline import TextToImagePipeline, default_model_dir


def test_grid_layout_is_exact():
    images = torch.arange(5 * 2 * 2, dtype=torch.uint8).reshape(5, 2, 2)
    grid = image_grid(images, ncol=3, padding=1, scale=2)
    assert grid.shape == (2 * 5 + 1, 3 * 5 + 1)
    assert np.array_equal(grid[1:5, 6:10], np.kron(images[1].numpy(), np.ones((2, 2), dtype=np.uint8)))
    assert (grid[6:10, 11:15] == 255).all()  # the sixth tile is empty


def test_cli_writes_grid_and_individual_pngs(tiny_model_dir, tmp_path, capsys):
    out = tmp_path / "grid.png"
    args = ["generate-image", "a seven", "", "--model", str(tiny_model_dir), "--num-samples", "3", "--steps", "4",
            "--sampler", "h", "--h", "0.5", "--guidance", "3", "--seed", "0", "--no-progress", "--out", str(out)]
    assert main(args) == 0
    grid = np.asarray(Image.open(out))
    assert grid.shape == (2 * (64 + 2) + 2, 3 * (64 + 2) + 2) and grid.dtype == np.uint8  # 8x8 tiles scaled 8x
    singles = sorted(tmp_path.glob("grid-*.png"))
    assert [p.name for p in singles] == [f"grid-{i:03d}.png" for i in range(6)]
    first = np.asarray(Image.open(singles[0]))
    assert first.shape == (8, 8) and np.array_equal(grid[2:66:8, 2:66:8], first)
    assert main(args) == 0 and np.array_equal(np.asarray(Image.open(out)), grid)  # same seed, same images
    assert "wrote" in capsys.readouterr().err


@pytest.mark.parametrize("sampler", ["heun", "pc"])
def test_other_samplers(tiny_model_dir, sampler):
    images = TextToImagePipeline.from_pretrained(tiny_model_dir)("a one", num_samples=2, sampler=sampler, steps=3,
                                                                 guidance=2.0, seed=0)
    assert images.shape == (2, 8, 8) and images.dtype == torch.uint8


@pytest.mark.parametrize("extra, message", [
    (["--guidance", "-1"], "guidance must be a finite number >= 0"),
    (["--encoder", "clip"], "unknown prompt encoder 'clip'"),
    (["--encoder", "minilm"], "384-dim embeddings, the model takes 10"),
    (["--size", "28"], "--size 28 does not match the model's image_size 8"),
    (["--sampler", "euler"], "unknown sampler 'euler'"),
    (["--h", "-1"], "h must be a finite number >= 0"),
    (["--steps", "0"], "steps and num_samples must be at least 1"),
    (["--out", "grid.jpg"], "--out must name a .png file"),
])
def test_bad_input_is_one_line(tiny_model_dir, tmp_path, capsys, extra, message):
    args = ["generate-image", "a seven", "--model", str(tiny_model_dir), "--no-progress", "--steps", "2",
            "--out", str(tmp_path / "g.png"), *extra]
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and message in err and "\n" not in err


def test_prompt_without_class_and_missing_model(tiny_model_dir, tmp_path, capsys):
    assert main(["generate-image", "a cat", "--model", str(tiny_model_dir), "--no-progress",
                 "--out", str(tmp_path / "g.png")]) == 2
    assert "names no class of this model" in capsys.readouterr().err
    assert main(["generate-image", "a cat", "--model", str(tmp_path / "nope")]) == 2
    assert "no image model at" in capsys.readouterr().err
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "config.json").write_text('{"model_type": "dlm"}')
    assert main(["generate-image", "a cat", "--model", str(tmp_path / "other")]) == 2
    assert "is not a dlm image model" in capsys.readouterr().err


def test_default_model_location():
    assert default_model_dir().parts[-3:] == ("dlm", "assets", "fashion-t2i")


def test_text_conditional_model_with_minilm(tmp_path):
    from tests.images.conftest import random_unet

    random_unet(cond_dim=384, text_encoder="minilm", dataset="fashion_mnist", image_size=8).save_pretrained(tmp_path)
    pipe = TextToImagePipeline.from_pretrained(tmp_path)
    assert pipe.encoder.dim == 384
    first = pipe("a photo of a sneaker", num_samples=2, steps=3, guidance=3.0, seed=0)
    assert torch.equal(first, pipe("a photo of a sneaker", num_samples=2, steps=3, guidance=3.0, seed=0))
    assert not torch.equal(first, pipe("an ankle boot", num_samples=2, steps=3, guidance=3.0, seed=0))
