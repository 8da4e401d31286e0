"""Writing an exported model: ONNX, a ``torch.export`` program or TorchScript, each with its
sidecar and a parity check against the PyTorch network (see :mod:`udarts.app.export`)."""

from __future__ import annotations

import inspect
import os
from pathlib import Path
from typing import Any, Iterable, Sequence

import torch
from torch import Tensor, nn

from udarts import __version__
from udarts.app.export.runtime import load_exported
from udarts.app.export.sidecar import (
    EXPORT_FORMATS,
    INPUT_NAME,
    ONNX_OPSET,
    OUTPUT_NAME,
    PARITY_FAILURE,
    PARITY_TOLERANCE,
    SIDECAR_FORMAT,
    SIDECAR_VERSION,
    ExportError,
    file_sha256,
    sidecar_path,
    size_rule,
    write_sidecar,
)
from udarts.checkpoints import load_trained
from udarts.data.transforms import IMAGENET_MEAN, IMAGENET_STD
from udarts.io import atomic_write


def _trace_size(image_size: Sequence[int], spec: dict[str, Any], divisor: int) -> tuple[int, int]:
    """A size to trace at: the training size rounded up to the divisor.

    SETR skips resizing its position embedding when the patch grid equals the stored grid; a
    trace at that size would freeze the graph to it, so the grid is moved off it.
    """
    height, width = (max(divisor, -(-int(side) // divisor) * divisor) for side in image_size)
    if spec["name"] == "setr":
        from udarts.baselines.setr import CPU_CONFIG, PAPER_CONFIG

        options = {**(PAPER_CONFIG if spec.get("scale") == "paper" else CPU_CONFIG), **spec.get("options", {})}
        grid = int(options["position_grid"])
        if height // divisor == grid:
            height += divisor
        if width // divisor == grid:
            width += divisor
    return height, width


# ---- export ------------------------------------------------------------------------------------


def _export_onnx(model: nn.Module, example: Tensor, path: Path, opset: int) -> None:
    import warnings

    axes = {0: "batch", 2: "height", 3: "width"}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the TorchScript-based exporter's deprecation and tracer warnings
        torch.onnx.export(
            model, (example,), str(path), dynamo=False, opset_version=opset, input_names=[INPUT_NAME],
            output_names=[OUTPUT_NAME], dynamic_axes={INPUT_NAME: axes, OUTPUT_NAME: axes}, do_constant_folding=True,
        )


def _export_program(model: nn.Module, example: Tensor, path: Path, divisor: int) -> None:
    from torch.export import Dim

    batch = Dim("batch", min=1, max=4096)
    height = Dim("height_blocks", min=1, max=65536 // divisor)
    width = Dim("width_blocks", min=1, max=65536 // divisor)
    argument = next(iter(inspect.signature(model.forward).parameters))
    program = torch.export.export(
        model, (example,), dynamic_shapes={argument: {0: batch, 2: divisor * height, 3: divisor * width}}
    )
    with open(path, "w+b") as handle:  # a handle: torch warns about a file name that does not end in .pt2
        torch.export.save(program, handle)


def _export_torchscript(model: nn.Module, example: Tensor, path: Path) -> None:
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        traced = torch.jit.trace(model, example, check_trace=False)
    traced.save(str(path))


def model_sidecar(state: dict[str, Any], model: nn.Module, fmt: str, *, source: str, opset: int | None) -> dict[str, Any]:
    """The sidecar of a model exported from checkpoint ``state`` (without the file's hash and parity)."""
    spec = state["model_spec"]
    class_names = list(state["class_names"])
    palette = state.get("palette")
    if not palette:
        from udarts.data.pairs import generated_palette

        palette = generated_palette(len(class_names))
    return {
        "format": SIDECAR_FORMAT,
        "version": SIDECAR_VERSION,
        "model_format": fmt,
        "onnx_opset": opset,
        "input": {
            "name": INPUT_NAME,
            "layout": "NCHW",
            "dtype": "float32",
            "channels": int(spec.get("in_channels", 3)),
            "colour": "RGB",
            "scale": "pixel / 255",
            "mean": list(IMAGENET_MEAN),
            "std": list(IMAGENET_STD),
            "dynamic_axes": ["batch", "height", "width"],
        },
        "output": {"name": OUTPUT_NAME, "layout": "NCHW", "dtype": "float32", "what": "class logits; arg-max over K is the class"},
        "size_rule": size_rule(model, spec),
        "image_size": [int(side) for side in state["image_size"]],
        "class_names": class_names,
        "num_classes": len(class_names),
        "ignore_index": state.get("ignore_index"),
        "palette": [[int(channel) for channel in colour] for colour in palette],
        "model_spec": spec,
        "config": state.get("config"),
        "source_checkpoint": source,
        "udarts_version": __version__,
        "torch_version": torch.__version__,
    }


def _parity(
    model: nn.Module, runner: nn.Module, channels: int, size: tuple[int, int], divisor: int, generator: torch.Generator, origin: str
) -> list[dict]:
    """Max |logit difference| between ``runner`` and ``model`` on random inputs, batch 2 at ``size`` and
    batch 1 at a second size; an error when it exceeds ``PARITY_FAILURE`` of the logits' range."""
    height, width = size
    second = (height + divisor, width + 2 * divisor) if height * width <= 512 * 512 else (divisor * 2, divisor * 3)
    differences = []
    for batch, (h, w) in ((2, size), (1, second)):
        images = torch.randn(batch, channels, h, w, generator=generator)
        with torch.no_grad():
            reference = model(images)
            difference = (runner(images) - reference).abs().max().item()
        differences.append({"batch": batch, "size": [h, w], "max_abs_logit_diff": difference,
                            "max_abs_logit": reference.abs().max().item()})
        if not difference <= PARITY_FAILURE * max(1.0, differences[-1]["max_abs_logit"]):
            raise ExportError(f"{origin}: the exported model differs from PyTorch by {difference:.3g} at batch {batch}, {h}x{w} "
                              f"(logits up to {differences[-1]['max_abs_logit']:.3g}); nothing was written")
    return differences


def export_model(
    model: nn.Module,
    state: dict[str, Any],
    fmt: str,
    out: str | os.PathLike,
    *,
    opset: int = ONNX_OPSET,
    source: str = "",
    check: bool = True,
) -> dict[str, Any]:
    """Export ``model`` (built from checkpoint ``state``) as ``fmt`` to ``out`` and write its sidecar.

    With ``check``, the exported file is run beside the PyTorch model on random inputs at the
    trace size and at a second size, batch 2 and 1, and the maximum absolute logit difference
    goes into the sidecar (``parity``); the CLI flags one above :data:`PARITY_TOLERANCE`, and one
    above :data:`PARITY_FAILURE` times the logits' magnitude is an error (nothing is written).
    Returns the sidecar.
    """
    if fmt not in EXPORT_FORMATS:
        raise ExportError(f"--format {fmt!r}: expected one of {', '.join(EXPORT_FORMATS)}")
    out = Path(out).expanduser()
    model = model.cpu().eval()
    sidecar = model_sidecar(state, model, fmt, source=source, opset=opset if fmt == "onnx" else None)
    rule = sidecar["size_rule"]
    divisor = int(rule["divisor"])
    height, width = _trace_size(sidecar["image_size"], state["model_spec"], divisor)
    generator = torch.Generator().manual_seed(0)
    example = torch.randn(2, sidecar["input"]["channels"], height, width, generator=generator)

    def write(temporary: Path) -> None:
        with torch.no_grad():
            if fmt == "onnx":
                _export_onnx(model, example, temporary, opset)
            elif fmt == "exported-program":
                _export_program(model, example, temporary, divisor)
            else:
                _export_torchscript(model, example, temporary)
        sidecar["sha256"] = file_sha256(temporary)
        if check:  # on the temporary file: a failed check leaves an existing FILE as it was
            runner = load_exported(temporary, sidecar=sidecar)
            sidecar["parity"] = _parity(model, runner, example.shape[1], (height, width), divisor, generator, str(out))

    atomic_write(out, write, make_parent=True)
    write_sidecar(out, sidecar)
    return sidecar


def export_checkpoint(checkpoint: str | os.PathLike, fmt: str, out: str | os.PathLike, *, opset: int = ONNX_OPSET) -> dict[str, Any]:
    """Rebuild the network of a ``udarts train`` checkpoint and export it (see :func:`export_model`)."""
    path = Path(checkpoint).expanduser()
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such checkpoint")
    model, state = load_trained(path, "cpu", kind="train")
    return export_model(model, state, fmt, out, opset=opset, source=str(path))


def describe_export(out: Path, sidecar: dict[str, Any]) -> Iterable[str]:
    """Lines for the CLI after an export."""
    yield f"wrote {out} ({sidecar['model_format']}" + (f", opset {sidecar['onnx_opset']}" if sidecar.get("onnx_opset") else "") + ")"
    yield f"sidecar {sidecar_path(out)}: {sidecar['num_classes']} classes, size rule: {sidecar['size_rule']['text']}"
    for item in sidecar.get("parity", []):
        size = "x".join(str(side) for side in item["size"])
        flag = "" if item["max_abs_logit_diff"] <= PARITY_TOLERANCE else f" (above {PARITY_TOLERANCE:g}: float32 rounding in a large network)"
        yield f"parity with PyTorch, batch {item['batch']} at {size}: max |logit difference| {item['max_abs_logit_diff']:.2e}{flag}"
    if "quantization" in sidecar:
        yield f"int8 ({sidecar['quantization']['mode']}) from {sidecar['quantization']['from']}"
