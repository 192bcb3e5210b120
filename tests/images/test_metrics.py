"""Fréchet distance against closed forms, and the classifier learns digits."""

import torch

from dlm.images import image_dataset, image_tensor
from dlm.images.classifier import load_classifier, save_classifier, train_classifier
from dlm.images.metrics import frechet_distance, frechet_from_moments


def test_frechet_distance_of_diagonal_gaussians_is_closed_form():
    mu1, mu2 = torch.tensor([0.0, 1.0, 2.0], dtype=torch.float64), torch.tensor([1.0, 1.0, 0.0], dtype=torch.float64)
    var1, var2 = torch.tensor([1.0, 4.0, 9.0], dtype=torch.float64), torch.tensor([4.0, 1.0, 9.0], dtype=torch.float64)
    expected = (mu1 - mu2).square().sum() + (var1.sqrt() - var2.sqrt()).square().sum()  # 5 + 1 + 1 + 0
    assert abs(frechet_from_moments(mu1, torch.diag(var1), mu2, torch.diag(var2)) - float(expected)) < 1e-12
    rotation = torch.linalg.qr(torch.randn(3, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(0)))[0]
    rotated = frechet_from_moments(rotation @ mu1, rotation @ torch.diag(var1) @ rotation.T,
                                   rotation @ mu2, rotation @ torch.diag(var2) @ rotation.T)
    assert abs(rotated - float(expected)) < 1e-9


def test_frechet_distance_of_a_set_with_itself_is_zero_and_shift_adds_its_square():
    feats = torch.randn(500, 4, generator=torch.Generator().manual_seed(0))
    assert abs(frechet_distance(feats, feats)) < 1e-9
    assert abs(frechet_distance(feats, feats + torch.tensor([3.0, 0, 0, 4.0])) - 25.0) < 1e-6


def test_classifier_learns_digits_and_round_trips(tmp_path):
    train, test = image_dataset("digits", "train"), image_dataset("digits", "test")
    model = train_classifier(image_tensor(train), torch.tensor(train["label"]), 10, epochs=8, batch_size=64)
    predicted, features = model.predict(image_tensor(test))
    assert features.shape == (300, 128)
    assert (predicted == torch.tensor(test["label"])).float().mean() > 0.85
    save_classifier(model, tmp_path / "c.safetensors")
    again = load_classifier(tmp_path / "c.safetensors", 8)
    assert torch.equal(again.predict(image_tensor(test))[1], features)
