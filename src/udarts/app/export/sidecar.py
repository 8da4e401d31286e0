"""The sidecar of an exported model (``FILE.json``), its errors and the size rule of a network.

See :mod:`udarts.app.export` for the files ``udarts export`` writes.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

from torch import nn

from udarts.config import ConfigError
from udarts.io import atomic_write_text

EXPORT_FORMATS = ("onnx", "exported-program", "torchscript")
ONNX_OPSET = 17  # LayerNormalization (SETR) is a single op from opset 17 on; onnxruntime >= 1.18 runs it
SIDECAR_FORMAT = "udarts-export"
SIDECAR_VERSION = 1
INPUT_NAME = "images"
OUTPUT_NAME = "logits"
QUANTIZE_MODES = ("dynamic", "static")
PARITY_TOLERANCE = 1e-4  # float32 parity target: max |logit difference| (the tests hold every model to it)
PARITY_FAILURE = 1e-3  # export refuses a file whose logits differ by more than this times max(1, max |logit|)


class ExportError(ConfigError):
    """An exported model file, its sidecar or an input that does not fit them."""


def sidecar_path(path: str | os.PathLike) -> Path:
    """Where the sidecar of model file ``path`` lives: ``FILE.json`` beside it."""
    path = Path(path)
    return path.with_name(path.name + ".json")


def file_sha256(path: str | os.PathLike) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


# ---- the size rule -----------------------------------------------------------------------------


def size_rule(model: nn.Module, spec: dict[str, Any]) -> dict[str, Any]:
    """The input sizes ``model`` (built from ``spec``) takes: ``{"divisor", "pad", "text"}``."""
    name = spec["name"]
    if name == "searchnet":
        from udarts.space import DOWNSAMPLING

        return {
            "divisor": DOWNSAMPLING,
            "pad": False,
            "text": f"height and width must be multiples of {DOWNSAMPLING} (SEARCH-Net's three 2x poolings)",
        }
    divisor = int(getattr(model, "size_divisor"))
    why = {
        "unet": "the classic UNet's four 2x poolings",
        "setr": "SETR's patch size",
    }.get(name, "the encoder's output stride")
    return {
        "divisor": divisor,
        "pad": True,
        "text": (
            f"the network takes heights and widths that are multiples of {divisor} ({why}); "
            f"other sizes are zero-padded on the bottom/right to the next multiple and the logits cropped back, "
            f"as the PyTorch model does"
        ),
    }


def check_size(height: int, width: int, rule: dict[str, Any], origin: str) -> None:
    """Raise :class:`ExportError` naming ``origin`` and the rule when ``height x width`` is refused."""
    divisor = int(rule["divisor"])
    if height < 1 or width < 1:
        raise ExportError(f"{origin}: input size {height}x{width} is empty")
    if not rule.get("pad") and (height % divisor or width % divisor):
        raise ExportError(f"{origin}: input size {height}x{width} is not allowed: {rule['text']}")


def write_sidecar(path: Path, sidecar: dict[str, Any]) -> Path:
    """Write the sidecar of model file ``path`` atomically (``udarts.io.atomic_write``)."""
    return atomic_write_text(sidecar_path(path), json.dumps(sidecar, indent=2) + "\n", make_parent=True)


def read_sidecar(path: str | os.PathLike) -> dict[str, Any]:
    """The sidecar of model file ``path``; errors name the file and what was expected."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such model file")
    side = sidecar_path(path)
    if not side.is_file():
        raise ExportError(
            f"{path}: its sidecar {side} is missing; an exported model needs FILE.json beside it "
            f"(class names, normalisation, size rule), as 'udarts export' writes it"
        )
    try:
        sidecar = json.loads(side.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ExportError(f"{side}: not a readable JSON sidecar ({error})") from error
    if not isinstance(sidecar, dict) or sidecar.get("format") != SIDECAR_FORMAT:
        raise ExportError(f"{side}: not a udarts export sidecar (expected \"format\": \"{SIDECAR_FORMAT}\")")
    if sidecar.get("version") != SIDECAR_VERSION:
        raise ExportError(f"{side}: sidecar version {sidecar.get('version')!r}; this udarts reads version {SIDECAR_VERSION}")
    missing = [key for key in ("model_format", "size_rule", "class_names", "palette", "image_size", "input", "output", "model_spec")
               if key not in sidecar]
    if missing:
        raise ExportError(f"{side}: sidecar lacks {', '.join(missing)}")
    return sidecar
