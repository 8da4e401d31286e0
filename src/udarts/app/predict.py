"""Run a segmentation model on image files and write colour masks and overlays.

For each image: read it as RGB, apply the evaluation transform at the model's ``image_size``
(resize + ImageNet normalisation, as the real datasets do), run the model, upsample the logits
bilinearly back to the image's original size, take the arg-max class, and write
``<stem>_mask.png`` (the colour mask) and ``<stem>_overlay.png`` (the mask blended over the image).
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterable, Sequence

import numpy as np
import torch
import torch.nn.functional as functional
from PIL import Image
from torch import Tensor, nn
from tqdm import tqdm

from udarts.data.base import DatasetError
from udarts.data.pairs import IMAGE_EXTENSIONS, read_rgb, single_threaded_torch
from udarts.data.transforms import eval_transform
from udarts.io import atomic_write
from udarts.viz.overlay import colorize, overlay

PathLike = str | Path


def list_images(path: PathLike) -> list[Path]:
    """A single image file as a one-item list, or a folder's images (not recursive), sorted by name.

    Image files are those ending in .png .jpg .jpeg .bmp .tif .tiff (any case). A missing path, a
    file of another type, or a folder without images raises DatasetError.
    """
    path = Path(path).expanduser()
    if not path.exists():
        raise DatasetError(f"{path} does not exist: give an image file or a folder of images")
    if path.is_file():
        if path.suffix.lower() not in IMAGE_EXTENSIONS:
            raise DatasetError(f"{path} is not an image file (expected one of {', '.join(IMAGE_EXTENSIONS)})")
        return [path]
    images = sorted(
        child for child in path.iterdir() if child.is_file() and child.suffix.lower() in IMAGE_EXTENSIONS
    )
    if not images:
        raise DatasetError(f"{path} holds no images (looked for {', '.join(IMAGE_EXTENSIONS)})")
    return images


def _logits_of(output: object) -> Tensor:
    """The logits from a model's output: a tensor, a dict's "out" entry, or a tuple's first item."""
    if isinstance(output, Tensor):
        return output
    if isinstance(output, dict) and "out" in output:
        return output["out"]
    if isinstance(output, (tuple, list)) and output and isinstance(output[0], Tensor):
        return output[0]
    raise TypeError(f"the model returned {type(output).__name__}; expected logits (B, K, H, W)")


def predict_image(
    model: nn.Module, image: Image.Image, *, image_size: tuple[int, int], device: torch.device | str
) -> Tensor:
    """Class indices ``(h, w)`` (long, CPU) for one RGB PIL image, at the image's own size.

    The caller puts the model in eval mode and disables gradients.
    """
    pixels = torch.from_numpy(np.asarray(image.convert("RGB")).copy()).permute(2, 0, 1).contiguous()
    with single_threaded_torch():  # a small resize; the model below keeps its threads
        normalised, _ = eval_transform(image_size)(pixels)
    logits = _logits_of(model(normalised.unsqueeze(0).to(device)))
    if logits.dim() != 4 or logits.shape[0] != 1:
        raise ValueError(f"the model must return logits (B, K, H, W), got shape {tuple(logits.shape)}")
    logits = functional.interpolate(logits.float(), size=(image.height, image.width), mode="bilinear", align_corners=False)
    return logits.argmax(dim=1)[0].cpu()


def predict_paths(
    model: nn.Module,
    paths: PathLike | Iterable[PathLike],
    out_dir: PathLike,
    *,
    image_size: tuple[int, int],
    palette: Sequence[Sequence[int]],
    device: torch.device | str,
    progress: bool = True,
) -> list[Path]:
    """Predict every image in ``paths`` (files and/or folders, see :func:`list_images`).

    Writes ``<stem>_mask.png`` and ``<stem>_overlay.png`` into ``out_dir`` (created if needed) and
    returns the written files in order (mask, overlay, mask, overlay, ...). Two inputs with the same
    stem would overwrite each other, so they are an error; so is an unreadable image. The model
    is run in eval mode without gradients and its previous train/eval mode is restored.
    """
    if isinstance(paths, (str, Path)):
        paths = [paths]
    images = [image for path in paths for image in list_images(path)]
    if not images:
        raise DatasetError("no input images were given")
    stems: dict[str, Path] = {}
    for image_path in images:
        if image_path.stem in stems:
            raise DatasetError(f"{stems[image_path.stem]} and {image_path} share the name {image_path.stem!r}; "
                               "their outputs would overwrite each other")
        stems[image_path.stem] = image_path
    output_folder = Path(out_dir).expanduser()
    output_folder.mkdir(parents=True, exist_ok=True)
    size = (int(image_size[0]), int(image_size[1]))

    written: list[Path] = []
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            for image_path in tqdm(images, desc="predict", unit="image", disable=not progress):
                try:
                    image = read_rgb(image_path)
                except Exception as error:
                    raise DatasetError(f"cannot read image {image_path}: {type(error).__name__}: {error}") from error
                prediction = predict_image(model, image, image_size=size, device=device)
                mask_path = output_folder / f"{image_path.stem}_mask.png"
                overlay_path = output_folder / f"{image_path.stem}_overlay.png"
                mask_image = Image.fromarray(colorize(prediction, palette))
                overlay_image = Image.fromarray(overlay(np.asarray(image), prediction, palette))
                atomic_write(mask_path, lambda tmp: mask_image.save(tmp, format="PNG"))
                atomic_write(overlay_path, lambda tmp: overlay_image.save(tmp, format="PNG"))
                written += [mask_path, overlay_path]
    finally:
        model.train(was_training)
    return written
