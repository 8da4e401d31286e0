"""Export a trained network to a self-describing model file, and run such a file.

``udarts export CKPT --format onnx|exported-program|torchscript --out FILE`` writes

* ``FILE``: the network, with a dynamic batch and dynamic height and width:

  - ``onnx``: an ONNX model (opset :data:`ONNX_OPSET`), input ``images`` float32 ``(B, 3, H, W)``,
    output ``logits`` float32 ``(B, K, H, W)``; written by PyTorch's TorchScript-based exporter
    (``torch.onnx.export(..., dynamo=False)``), which needs neither onnxscript nor a GPU;
  - ``exported-program``: a ``torch.export`` program (``torch.export.save``, load it with
    ``torch.export.load(FILE).module()``), whose height and width are declared as multiples of
    the size divisor, so other sizes are refused by the program itself;
  - ``torchscript``: a traced TorchScript module (``torch.jit.load(FILE)``).

* ``FILE.json``: the sidecar (always beside the file, for every format) with everything needed
  to predict with the file alone: the class names, their colours, the ignore index, the input
  normalisation (RGB scaled to [0, 1], then ``(x - mean) / std`` per channel), the size rule, the
  model spec (for SEARCH-Net its whole genotype), the training image size and config, the file's
  SHA-256 and the parity measured at export.

The size rule. Every network takes sides that are multiples of its ``divisor``:

==================  =========================================================================
model               divisor
==================  =========================================================================
SEARCH-Net          8 (three 2x poolings); other sizes are refused, as in PyTorch
``unet``            16 (four 2x poolings)
``unet_resnet34``,  the encoder's output stride: 32 for the 5-stage ResNets
``unetpp``, ``fpn``
``deeplabv3``       the encoder's output stride: 8 at ``paper`` scale, 16 at ``cpu`` scale
``setr``            the patch size: 16 at ``paper`` scale, 8 at ``cpu`` scale
==================  =========================================================================

The PyTorch baselines zero-pad other sizes on the bottom/right up to the next multiple and crop
the logits back (:mod:`udarts.baselines.padding`); the exported graphs contain no padding, so the
runner here (:class:`ExportedSegmenter`) pads and crops exactly as PyTorch does (``"pad": true``
in the sidecar's ``size_rule``), and another runtime must do the same. SEARCH-Net has
``"pad": false``: other sizes are an error, naming the file and the rule.

Bad files are errors of type :class:`ExportError` (a :class:`~udarts.config.ConfigError`, so the
CLI prints one line and exits with status 2): a missing sidecar, a sidecar of another tool, a
model file that does not match its sidecar's SHA-256 (a foreign or changed file), a corrupt ONNX
file, and an input size the network cannot take.
"""

from __future__ import annotations

import hashlib
import inspect
import json
import os
import tempfile
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np
import torch
from torch import Tensor, nn

from udarts import __version__
from udarts.baselines.padding import crop_to_size, pad_to_multiple
from udarts.config import ConfigError
from udarts.data.transforms import IMAGENET_MEAN, IMAGENET_STD

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
        from udarts.nets.ushape import DOWNSAMPLING

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


def _atomic_target(out: Path) -> Path:
    out.parent.mkdir(parents=True, exist_ok=True)
    handle, name = tempfile.mkstemp(prefix=f".{out.stem}.", suffix=f".tmp{out.suffix}", dir=out.parent)
    os.close(handle)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(name, 0o666 & ~umask)  # mkstemp's 0600 would survive the rename
    return Path(name)


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
    torch.export.save(program, str(path))


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


def _write_sidecar(path: Path, sidecar: dict[str, Any]) -> Path:
    target = sidecar_path(path)
    temporary = _atomic_target(target)
    temporary.write_text(json.dumps(sidecar, indent=2) + "\n")
    os.replace(temporary, target)
    return target


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
    temporary = _atomic_target(out)
    try:
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
        os.replace(temporary, out)
    finally:
        temporary.unlink(missing_ok=True)
    _write_sidecar(out, sidecar)
    return sidecar


def export_checkpoint(checkpoint: str | os.PathLike, fmt: str, out: str | os.PathLike, *, opset: int = ONNX_OPSET) -> dict[str, Any]:
    """Rebuild the network of a ``udarts train`` checkpoint and export it (see :func:`export_model`)."""
    from udarts.engine.runs import load_checkpoint
    from udarts.models import build_model

    path = Path(checkpoint).expanduser()
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such checkpoint")
    state = load_checkpoint(path, map_location="cpu")
    if not isinstance(state, dict) or state.get("kind") != "train" or "model_spec" not in state:
        raise ExportError(f"{path}: not a training checkpoint of udarts (export needs a 'udarts train' checkpoint)")
    model = build_model(state["model_spec"])
    model.load_state_dict(state["model"])
    return export_model(model, state, fmt, out, opset=opset, source=str(path))


# ---- loading and running ------------------------------------------------------------------------


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
            network = torch.export.load(str(path)).module()
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


# ---- int8 quantisation -------------------------------------------------------------------------


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

    from udarts.engine.predict import list_images

    path, out = Path(path).expanduser(), Path(out).expanduser()
    if mode not in QUANTIZE_MODES:
        raise ExportError(f"--quantize {mode!r}: expected one of {', '.join(QUANTIZE_MODES)}")
    sidecar = read_sidecar(path)
    if sidecar["model_format"] != "onnx":
        raise ExportError(f"{path}: --quantize needs --format onnx")
    if mode == "static" and calib is None:
        raise ExportError("--quantize static needs --calib DIR, a folder of calibration images")
    temporary = _atomic_target(out)
    prepared = _atomic_target(out.with_name(out.name + ".prep"))
    try:
        try:
            quant_pre_process(str(path), str(prepared), skip_symbolic_shape=True)
            source = prepared
        except Exception:  # pre-processing is an optimisation only
            source = path
        if mode == "dynamic":
            quantize_dynamic(str(source), str(temporary), weight_type=QuantType.QInt8)
            calibration = None
        else:
            images = list_images(calib)[:max_images]
            reader = _FolderCalibration(images, sidecar["image_size"], sidecar["input"]["name"])
            quantize_static(
                str(source), str(temporary), reader, quant_format=QuantFormat.QDQ, per_channel=True,
                activation_type=QuantType.QInt8, weight_type=QuantType.QInt8,
            )
            calibration = {"folder": str(calib), "images": len(images), "method": "MinMax"}
        os.replace(temporary, out)
    finally:
        temporary.unlink(missing_ok=True)
        prepared.unlink(missing_ok=True)
    quantized = dict(sidecar)
    quantized.pop("parity", None)
    quantized["quantization"] = {"mode": mode, "weights": "int8", "from": path.name, "calibration": calibration}
    quantized["sha256"] = file_sha256(out)
    _write_sidecar(out, quantized)
    return quantized


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
