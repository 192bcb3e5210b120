"""Image recipes and the trainer: recipes load, bad keys are errors, DSM training on digits lowers the loss,
and a resumed run continues exactly."""

from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from dlm.continuous.losses import dsm_loss
from dlm.errors import CheckpointError, ConfigError
from dlm.images.pixels import to_model_space
from dlm.images.recipe import image_recipe_from_dict, load_image_recipe
from dlm.images.trainer import ImageTrainer, epoch_rows

REPO = Path(__file__).resolve().parents[2]


def tiny_recipe(output_dir, max_steps=2, **train):
    return image_recipe_from_dict({
        "model": {"text_encoder": "class", "base_channels": 8, "channel_mult": [1, 2], "num_res_blocks": 1,
                  "num_heads": 2, "groups": 4},
        "data": {"dataset": "digits"},
        "optim": {"lr": 3e-3, "warmup_steps": 0},
        "train": {"output_dir": str(output_dir), "max_steps": max_steps, "batch_size": 32, "save_every": 2,
                  "log_every": 1, "cpu": True, "ema": 0.9, **train},
    })


@pytest.mark.parametrize("path", sorted((REPO / "recipes" / "images").glob("*.yaml")), ids=lambda p: p.name)
def test_every_image_recipe_loads_and_is_headed_by_its_command(path):
    first = path.read_text().splitlines()[0]
    assert first == f"# python -m dlm.images.train recipes/images/{path.name}"
    assert load_image_recipe(path).train.max_steps > 0


@pytest.mark.parametrize("raw, message", [
    ({"model": {"depth": 3}}, "unknown recipe key"),
    ({"model": {"cond_dim": 3}}, "set by the trainer"),
    ({"model": {"text_encoder": "clip"}}, "unknown prompt encoder"),
    ({"data": {"dataset": "cifar"}}, "unknown image dataset"),
    ({"train": {"cond_drop": 1.0}}, "cond_drop"),
    ({"train": {"weighting": "snr"}}, "unknown train.weighting"),
    ({"train": {"steps": 3}}, "unknown recipe key"),
    ({"sampling": {}}, "unknown recipe section"),
])
def test_bad_recipes(raw, message):
    with pytest.raises(ConfigError, match=message):
        image_recipe_from_dict(raw)


def test_epoch_rows_cover_each_epoch_once():
    rows = torch.cat([epoch_rows(10, 3, step, seed=0) for step in range(3)])
    assert sorted(rows.tolist()) == sorted(set(rows.tolist())) and len(rows) == 9
    assert not torch.equal(epoch_rows(10, 3, 0, 0), epoch_rows(10, 3, 3, 0))  # next epoch, new permutation


def test_dsm_training_on_digits_lowers_the_loss(tmp_path):
    torch.manual_seed(0)
    trainer = ImageTrainer(tiny_recipe(tmp_path / "run", max_steps=30, ema=0.0))
    images = trainer.images[:64]
    captions = trainer.bank.sample(trainer.labels[:64], torch.Generator().manual_seed(1))

    def held_loss() -> float:
        with torch.no_grad():
            trainer.model.eval()
            net = lambda x, t: trainer.model(x, t, captions)  # noqa: E731
            return dsm_loss(net, trainer.sde, to_model_space(images), "variance", "eps",
                            generator=torch.Generator().manual_seed(2)).mean().item() / 64

    before = held_loss()
    losses = [trainer.train_step(step) for step in range(30)]
    after = held_loss()
    assert after < 0.6 * before
    assert sum(losses[-5:]) < sum(losses[:5])


def test_resumed_run_matches_an_uninterrupted_one(tmp_path):
    ImageTrainer(tiny_recipe(tmp_path / "full", max_steps=4)).fit()
    ImageTrainer(tiny_recipe(tmp_path / "split", max_steps=2)).fit()
    with pytest.raises(CheckpointError, match="already holds checkpoints"):
        ImageTrainer(tiny_recipe(tmp_path / "split", max_steps=4)).fit()
    ImageTrainer(tiny_recipe(tmp_path / "split", max_steps=4)).fit(resume=True)
    full, split = (load_file(tmp_path / run / "final" / "model.safetensors") for run in ("full", "split"))
    assert full.keys() == split.keys()
    for name in full:
        assert torch.equal(full[name], split[name]), name
    assert (tmp_path / "full" / "checkpoint-4" / "ema.safetensors").is_file()
