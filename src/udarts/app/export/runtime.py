"""Loading and running an exported model file with its sidecar (see :mod:`udarts.app.export`)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from udarts.app.export.sidecar import (
    EXPORT_FORMATS,
    SIDECAR_FORMAT,
    ExportError,
    check_size,
    file_sha256,
    read_sidecar,
    sidecar_path,
)
from udarts.baselines.padding import crop_to_size, pad_to_multiple


def is_exported(path: str | os.PathLike) -> bool:
    """Whether ``path`` names an exported model (an .onnx/.pt2 file, or any file with a udarts sidecar)."""
    path = Path(path)
    if path.suffix.lower() in (".onnx", ".pt2", ".torchscript", ".ts"):
        return True
    side = sidecar_path(path)
    if not side.is_file():
        return False
    try:
        return json.loads(side.read_text()).get("format") == SIDECAR_FORMAT
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, AttributeError):
        return False


def onnx_providers(device: torch.device | str | None = None) -> list[str]:
    """onnxruntime providers: CUDA first when ``device`` is CUDA and the provider is installed, then CPU."""
    import onnxruntime

    available = onnxruntime.get_available_providers()
    wanted = torch.device(device).type if device is not None else "cpu"
    if wanted == "cuda" and "CUDAExecutionProvider" in available:
        return ["CUDAExecutionProvider", "CPUExecutionProvider"]
    return ["CPUExecutionProvider"]


class _OnnxNetwork:
    """An onnxruntime session called like a network: float tensor (B, C, H, W) -> logits tensor."""

    def __init__(self, path: Path, sidecar: dict[str, Any], providers: list[str], threads: int | None = None) -> None:
        try:
            import onnxruntime
        except ImportError as error:  # pragma: no cover - onnxruntime is in the dev and export extras
            raise ExportError(f"{path}: running an ONNX model needs onnxruntime (pip install -e \".[export]\")") from error
        options = onnxruntime.SessionOptions()
        options.log_severity_level = 3
        if threads:
            options.intra_op_num_threads = threads
        try:
            self.session = onnxruntime.InferenceSession(str(path), sess_options=options, providers=providers)
        except Exception as error:  # onnxruntime raises its own Fail/InvalidProtobuf/InvalidGraph types
            raise ExportError(f"{path}: not a readable ONNX model ({type(error).__name__}: {str(error).strip()[:300]})") from error
        inputs, outputs = self.session.get_inputs(), self.session.get_outputs()
        input_name, output_name = sidecar["input"]["name"], sidecar["output"]["name"]
        if [item.name for item in inputs] != [input_name] or output_name not in [item.name for item in outputs]:
            raise ExportError(
                f"{path}: inputs {[item.name for item in inputs]} / outputs {[item.name for item in outputs]} do not match its "
                f"sidecar (one input {input_name!r}, an output {output_name!r}): not the model the sidecar describes"
            )
        self.input_name, self.output_name = input_name, output_name
        self.providers = self.session.get_providers()

    def __call__(self, images: Tensor) -> Tensor:
        array = np.ascontiguousarray(images.detach().to("cpu", torch.float32).numpy())
        (logits,) = self.session.run([self.output_name], {self.input_name: array})
        return torch.from_numpy(logits).to(images.device)


class ExportedSegmenter(nn.Module):
    """An exported model (ONNX, exported program or TorchScript) behind the PyTorch model's interface.

    Called with a normalised float batch (B, C, H, W), it returns logits (B, K, H, W) like the
    network it was exported from: sizes the rule refuses raise :class:`ExportError` naming the
    file and the rule; for baselines (``pad``), other sizes are zero-padded bottom/right to the
    divisor and the logits cropped back, as the PyTorch baselines do. Being an ``nn.Module``, it
    works wherever udarts takes a model (``evaluate``, ``predict_paths``); it has no parameters
    and ``.to()`` does not move an onnxruntime session (its providers are chosen at load time).
    """

    def __init__(self, path: Path, sidecar: dict[str, Any], network: Any) -> None:
        super().__init__()
        self.path = path
        self.sidecar = sidecar
        self.rule = sidecar["size_rule"]
        # not a registered submodule: an exported program's module refuses .train()/.eval()
        self.__dict__["_call"] = network

    def forward(self, images: Tensor) -> Tensor:
        if images.dim() != 4 or images.shape[1] != self.sidecar["input"]["channels"]:
            raise ExportError(
                f"{self.path}: expected a batch (B, {self.sidecar['input']['channels']}, H, W), got shape {tuple(images.shape)}"
            )
        height, width = int(images.shape[-2]), int(images.shape[-1])
        check_size(height, width, self.rule, str(self.path))
        divisor = int(self.rule["divisor"])
        if height % divisor or width % divisor:  # a baseline: pad like the PyTorch model, crop the logits
            padded, size = pad_to_multiple(images, divisor)
            return crop_to_size(self._call(padded), size)
        return self._call(images)


def load_exported(
    path: str | os.PathLike,
    device: torch.device | str | None = None,
    *,
    sidecar: dict[str, Any] | None = None,
    threads: int | None = None,
) -> ExportedSegmenter:
    """Load an exported model file and its sidecar as an :class:`ExportedSegmenter`.

    ONNX files run on onnxruntime (CPUExecutionProvider; CUDAExecutionProvider first when
    ``device`` is CUDA and onnxruntime-gpu is installed) with ``threads`` intra-op threads
    (default: ``torch.get_num_threads()``, so ``OMP_NUM_THREADS`` limits both). The file must
    match the SHA-256 its sidecar records.
    """
    path = Path(path).expanduser()
    sidecar = sidecar if sidecar is not None else read_sidecar(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such model file")
    recorded = sidecar.get("sha256")
    if recorded and recorded != file_sha256(path):
        raise ExportError(
            f"{path}: the file does not match its sidecar {sidecar_path(path).name} (SHA-256 differs): a foreign or changed "
            "model file; export it again with 'udarts export'"
        )
    fmt = sidecar["model_format"]
    if threads is None:
        threads = torch.get_num_threads()  # follow OMP_NUM_THREADS like PyTorch does
    if fmt == "onnx":
        network: Any = _OnnxNetwork(path, sidecar, onnx_providers(device), threads)
    elif fmt == "exported-program":
        try:
            with open(path, "rb") as handle:  # a handle: torch warns about a file name that does not end in .pt2
                network = torch.export.load(handle).module()
            if device is not None and torch.device(device).type != "cpu":
                network = network.to(device)
        except Exception as error:
            raise ExportError(f"{path}: not a readable torch.export program ({type(error).__name__}: {error})") from error
    elif fmt == "torchscript":
        try:
            import warnings

            with warnings.catch_warnings():
                warnings.simplefilter("ignore", FutureWarning)  # torch.jit.load's deprecation notice
                network = torch.jit.load(str(path), map_location=device or "cpu").eval()
        except Exception as error:
            raise ExportError(f"{path}: not a readable TorchScript module ({type(error).__name__}: {error})") from error
    else:
        raise ExportError(f"{sidecar_path(path)}: model_format {fmt!r} is not one of {', '.join(EXPORT_FORMATS)}")
    return ExportedSegmenter(path, sidecar, network)


def exported_model_and_state(path: str | os.PathLike, device: torch.device | str | None = None) -> tuple[ExportedSegmenter, dict[str, Any]]:
    """An exported model and a checkpoint-like state (``model_spec``, ``config``, ``image_size``,
    ``class_names``, ``ignore_index``, ``palette``) for ``udarts eval`` and ``udarts predict``."""
    model = load_exported(path, device)
    sidecar = model.sidecar
    if sidecar.get("config") is None:
        raise ExportError(f"{sidecar_path(path)}: sidecar lacks the training config that eval needs")
    state = {key: sidecar.get(key) for key in ("model_spec", "config", "image_size", "class_names", "ignore_index", "palette")}
    state["kind"] = "exported"
    return model.eval(), state


def load_for_inference(path: str | os.PathLike, device: torch.device | str = "cpu") -> tuple[nn.Module, dict[str, Any]]:
    """``(model, state)`` for ``udarts eval`` and ``udarts predict``: an exported .onnx (onnxruntime),
    .pt2 or TorchScript file with its sidecar (:func:`exported_model_and_state`), or else a ``udarts
    train`` checkpoint rebuilt by :func:`udarts.checkpoints.load_trained`; in eval mode on ``device``."""
    from udarts.checkpoints import load_trained

    if is_exported(path):
        return exported_model_and_state(path, device)
    return load_trained(path, device, kind="train")
