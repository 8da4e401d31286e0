"""predict_paths / list_images: output files, original-size masks, clear input errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from udarts.app.predict import list_images, predict_paths
from udarts.data.base import DatasetError

PALETTE = [(0, 0, 0), (255, 255, 255)]


class BrightnessModel(nn.Module):
    """Class 1 where the (normalised) red channel is positive, else class 0."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: list[tuple[int, ...]] = []

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        self.calls.append(tuple(images.shape))
        assert not self.training and not torch.is_grad_enabled()
        red = images[:, :1]
        return torch.cat([-red, red], dim=1)


def half_bright_image(height: int, width: int) -> np.ndarray:
    pixels = np.zeros((height, width, 3), np.uint8)
    pixels[:, width // 2 :] = 255
    return pixels


def test_predict_writes_masks_and_overlays_at_original_size(tmp_path: Path) -> None:
    inputs = tmp_path / "in"
    inputs.mkdir()
    Image.fromarray(half_bright_image(30, 40)).save(inputs / "b.png")
    Image.fromarray(half_bright_image(21, 17)).save(inputs / "a.jpg", quality=95)
    Image.fromarray(np.dstack([half_bright_image(12, 12), np.full((12, 12), 255, np.uint8)])).save(inputs / "c.png")
    (inputs / "notes.txt").write_text("not an image")
    model = BrightnessModel().train()
    written = predict_paths(
        model, inputs, tmp_path / "out", image_size=(16, 16), palette=PALETTE, device="cpu", progress=False
    )
    assert [path.name for path in written] == [
        "a_mask.png", "a_overlay.png", "b_mask.png", "b_overlay.png", "c_mask.png", "c_overlay.png"
    ]
    assert model.training and model.calls == [(1, 3, 16, 16)] * 3
    mask = np.array(Image.open(tmp_path / "out" / "b_mask.png"))
    assert mask.shape == (30, 40, 3)
    assert (mask[:, :18] == 0).all() and (mask[:, 22:] == 255).all()
    assert np.array(Image.open(tmp_path / "out" / "a_overlay.png")).shape == (21, 17, 3)


def test_list_images(tmp_path: Path) -> None:
    for name in ("z.PNG", "a.jpeg", "m.tif", "skip.gif"):
        (tmp_path / name).write_bytes(b"")
    assert [path.name for path in list_images(tmp_path)] == ["a.jpeg", "m.tif", "z.PNG"]
    assert list_images(tmp_path / "m.tif") == [tmp_path / "m.tif"]
    with pytest.raises(DatasetError, match="does not exist"):
        list_images(tmp_path / "missing")
    with pytest.raises(DatasetError, match="not an image"):
        list_images(tmp_path / "skip.gif")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DatasetError, match="holds no images"):
        list_images(tmp_path / "empty")


def test_unreadable_image_and_clashing_names(tmp_path: Path) -> None:
    (tmp_path / "one").mkdir()
    (tmp_path / "two").mkdir()
    Image.fromarray(half_bright_image(8, 8)).save(tmp_path / "one" / "x.png")
    Image.fromarray(half_bright_image(8, 8)).save(tmp_path / "two" / "x.png")
    options = dict(image_size=(8, 8), palette=PALETTE, device="cpu", progress=False)
    with pytest.raises(DatasetError, match="share the name 'x'"):
        predict_paths(BrightnessModel(), [tmp_path / "one", tmp_path / "two"], tmp_path / "out", **options)
    (tmp_path / "two" / "x.png").write_bytes(b"broken")
    with pytest.raises(DatasetError, match=r"two/x\.png"):
        predict_paths(BrightnessModel(), tmp_path / "two" / "x.png", tmp_path / "out", **options)
