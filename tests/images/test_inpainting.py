"""Inpainting: the kept pixels come back exactly, the others are generated; the CLI reads image and mask PNGs."""

import numpy as np
import pytest
import torch
from PIL import Image

from dlm.cli.main import main
from dlm.continuous.sde import VPSDE
from dlm.errors import InputError
from dlm.images.inpainting import inpaint
from dlm.images.pipeline import TextToImagePipeline

IMAGE = (torch.arange(64, dtype=torch.uint8) * 4).reshape(8, 8)
KEEP = torch.zeros(8, 8, dtype=torch.bool)
KEEP[:4] = True


def test_kept_pixels_come_back_and_the_rest_is_sampled(tiny_model_dir):
    pipe = TextToImagePipeline.from_pretrained(tiny_model_dir)
    out = pipe.inpaint("a seven", IMAGE, KEEP, num_samples=3, h=0.5, steps=5, guidance=2.0, seed=0)
    assert out.shape == (3, 8, 8)
    assert torch.equal(out[:, :4], IMAGE[:4].expand(3, 4, 8))
    assert not torch.equal(out[:, 4:], IMAGE[4:].expand(3, 4, 8))
    with pytest.raises(InputError, match="must both be 8x8"):
        pipe.inpaint("a seven", torch.zeros(28, 28, dtype=torch.uint8), KEEP)


def test_mask_that_does_not_broadcast():
    with pytest.raises(InputError, match="does not fit images"):
        inpaint(lambda x, t: -x, VPSDE(), torch.zeros(2, 1, 8, 8), torch.ones(3, 3, dtype=torch.bool), 0.0, 2)


def test_cli_inpaints(tiny_model_dir, tmp_path, capsys):
    Image.fromarray(IMAGE.numpy(), mode="L").save(tmp_path / "in.png")
    Image.fromarray(KEEP.numpy().astype(np.uint8) * 255, mode="L").save(tmp_path / "mask.png")
    out = tmp_path / "grid.png"
    assert main(["generate-image", "a one", "--model", str(tiny_model_dir), "--inpaint", str(tmp_path / "in.png"),
                 "--mask", str(tmp_path / "mask.png"), "--num-samples", "2", "--steps", "3", "--no-progress",
                 "--out", str(out)]) == 0
    first = np.asarray(Image.open(tmp_path / "grid-000.png"))
    assert np.array_equal(first[:4], IMAGE[:4].numpy())
    assert main(["generate-image", "a one", "--model", str(tiny_model_dir), "--inpaint", str(tmp_path / "in.png"),
                 "--out", str(out)]) == 2
    assert "--inpaint and --mask go together" in capsys.readouterr().err
    (tmp_path / "bad.png").write_bytes(b"not a png")
    assert main(["generate-image", "a one", "--model", str(tiny_model_dir), "--inpaint", str(tmp_path / "bad.png"),
                 "--mask", str(tmp_path / "mask.png"), "--out", str(out)]) == 2
    assert "cannot read image" in capsys.readouterr().err
