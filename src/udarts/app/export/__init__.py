"""Export a trained network to a self-describing model file, and run such a file.

``udarts export CKPT --format onnx|exported-program|torchscript --out FILE`` writes

* ``FILE``: the network, with a dynamic batch and dynamic height and width:

  - ``onnx``: an ONNX model (opset :data:`~udarts.app.export.sidecar.ONNX_OPSET`), input
    ``images`` float32 ``(B, 3, H, W)``, output ``logits`` float32 ``(B, K, H, W)``; written by
    PyTorch's TorchScript-based exporter (``torch.onnx.export(..., dynamo=False)``), which needs
    neither onnxscript nor a GPU;
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
runner here (:class:`~udarts.app.export.runtime.ExportedSegmenter`) pads and crops exactly as
PyTorch does (``"pad": true`` in the sidecar's ``size_rule``), and another runtime must do the
same. SEARCH-Net has ``"pad": false``: other sizes are an error, naming the file and the rule.

Bad files are errors of type :class:`ExportError` (a :class:`~udarts.config.ConfigError`, so the
CLI prints one line and exits with status 2): a missing sidecar, a sidecar of another tool, a
model file that does not match its sidecar's SHA-256 (a foreign or changed file), a corrupt ONNX
file, and an input size the network cannot take.

The modules: :mod:`~udarts.app.export.sidecar` (the sidecar, the size rule, :class:`ExportError`),
:mod:`~udarts.app.export.formats` (writing the files), :mod:`~udarts.app.export.runtime` (loading
and running them) and :mod:`~udarts.app.export.quantize` (int8 ONNX copies). The names used
outside this package (the CLI, tests, benchmarks) are importable from ``udarts.app.export``
itself; the rest from their modules.
"""

from __future__ import annotations

from udarts.app.export.formats import describe_export, export_checkpoint, export_model
from udarts.app.export.quantize import quantize_onnx
from udarts.app.export.runtime import load_exported, load_for_inference
from udarts.app.export.sidecar import ExportError, sidecar_path

__all__ = [
    "describe_export", "export_checkpoint", "export_model", "quantize_onnx", "load_exported", "load_for_inference",
    "ExportError", "sidecar_path",
]
