"""int8 copies of an exported ONNX model (onnxruntime quantisation; see :mod:`udarts.app.export`)."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch

from udarts.app.export.sidecar import QUANTIZE_MODES, ExportError, file_sha256, read_sidecar, write_sidecar
from udarts.io import atomic_write


class _FolderCalibration:
    """onnxruntime CalibrationDataReader over the images of a folder, preprocessed as at evaluation."""

    def __init__(self, images: list[Path], image_size: Sequence[int], input_name: str, batch_size: int = 8) -> None:
        self.images, self.image_size, self.input_name, self.batch_size = images, tuple(image_size), input_name, batch_size
        self.position = 0

    def get_next(self) -> dict[str, np.ndarray] | None:
        from udarts.data.pairs import read_rgb
        from udarts.data.transforms import eval_transform

        if self.position >= len(self.images):
            return None
        chunk = self.images[self.position:self.position + self.batch_size]
        self.position += len(chunk)
        transform = eval_transform(self.image_size)
        batch = []
        for image_path in chunk:
            pixels = torch.from_numpy(np.asarray(read_rgb(image_path)).copy()).permute(2, 0, 1).contiguous()
            batch.append(transform(pixels)[0])
        return {self.input_name: torch.stack(batch).numpy()}

    def rewind(self) -> None:
        self.position = 0


def quantize_onnx(
    path: str | os.PathLike, out: str | os.PathLike, mode: str, *, calib: str | os.PathLike | None = None,
    max_images: int = 64,
) -> dict[str, Any]:
    """An int8 copy of the exported ONNX model ``path`` at ``out`` (with its own sidecar).

    ``dynamic``: onnxruntime's ``quantize_dynamic`` (int8 weights, activations quantised at run
    time; MatMul/Gemm and Conv). ``static``: ``quantize_static`` in QDQ format with per-channel
    int8 weights, activations calibrated (MinMax) on up to ``max_images`` images of the folder
    ``calib``, preprocessed as at evaluation (resize to the sidecar's image size, normalise).
    """
    from onnxruntime.quantization import QuantFormat, QuantType, quantize_dynamic, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    from udarts.app.predict import list_images

    path, out = Path(path).expanduser(), Path(out).expanduser()
    if mode not in QUANTIZE_MODES:
        raise ExportError(f"--quantize {mode!r}: expected one of {', '.join(QUANTIZE_MODES)}")
    sidecar = read_sidecar(path)
    if sidecar["model_format"] != "onnx":
        raise ExportError(f"{path}: --quantize needs --format onnx")
    if mode == "static" and calib is None:
        raise ExportError("--quantize static needs --calib DIR, a folder of calibration images")
    out.parent.mkdir(parents=True, exist_ok=True)
    calibration: dict[str, Any] | None = None

    def write(temporary: Path) -> None:
        nonlocal calibration
        with tempfile.TemporaryDirectory(prefix=f".{out.stem}.", dir=out.parent) as scratch:
            prepared = Path(scratch) / "prepared.onnx"
            try:
                quant_pre_process(str(path), str(prepared), skip_symbolic_shape=True)
                source = prepared
            except Exception:  # pre-processing is an optimisation only
                source = path
            if mode == "dynamic":
                quantize_dynamic(str(source), str(temporary), weight_type=QuantType.QInt8)
            else:
                images = list_images(calib)[:max_images]
                reader = _FolderCalibration(images, sidecar["image_size"], sidecar["input"]["name"])
                quantize_static(
                    str(source), str(temporary), reader, quant_format=QuantFormat.QDQ, per_channel=True,
                    activation_type=QuantType.QInt8, weight_type=QuantType.QInt8,
                )
                calibration = {"folder": str(calib), "images": len(images), "method": "MinMax"}

    atomic_write(out, write)
    quantized = dict(sidecar)
    quantized.pop("parity", None)
    quantized["quantization"] = {"mode": mode, "weights": "int8", "from": path.name, "calibration": calibration}
    quantized["sha256"] = file_sha256(out)
    write_sidecar(out, quantized)
    return quantized
