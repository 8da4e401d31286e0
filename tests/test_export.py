"""Export (ONNX, torch.export, TorchScript): parity with PyTorch on real frames, the CLI, bad files.

Networks are built from specs at tiny widths with random weights (parity needs no training).
"""

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")

from udarts.app.export import ExportError, export_model, load_exported, sidecar_path  # noqa: E402
from udarts.cli import main  # noqa: E402
from udarts.config import resolve  # noqa: E402
from udarts.data.factory import build_split  # noqa: E402
from udarts.data.transforms import eval_transform  # noqa: E402
from udarts.engine.layout import BEST_CHECKPOINT  # noqa: E402
from udarts.engine.runs import save_checkpoint  # noqa: E402
from udarts.models import build_model  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
GENOTYPE = json.loads((REPO / "configs" / "genotypes" / "pets-cpu-w8-seed0.json").read_text())
CLASSES = [f"class{i}" for i in range(11)]

# tiny widths; the smp encoders keep their ResNet-18 (their structure decides the size rule)
SPECS = {
    "searchnet": {"name": "searchnet", "genotype": GENOTYPE, "width": 4},
    "unet": {"name": "unet", "scale": "cpu", "options": {"width": 4}},
    "unet_resnet34": {"name": "unet_resnet34", "scale": "cpu", "options": {"decoder_channels": [32, 16, 16, 8, 8]}},
    "unetpp": {"name": "unetpp", "scale": "cpu", "options": {"decoder_channels": [32, 16, 16, 8, 8]}},
    "fpn": {"name": "fpn", "scale": "cpu", "options": {"decoder_pyramid_channels": 32, "decoder_segmentation_channels": 32}},
    "deeplabv3": {"name": "deeplabv3", "scale": "cpu", "options": {"decoder_channels": 32}},
    "setr": {"name": "setr", "scale": "cpu",
             "options": {"embed_dim": 32, "depth": 1, "num_heads": 2, "decoder_channels": 16, "position_grid": 8}},
}
# two sizes per model that its rule allows (the divisor: 8, 16, 32, 32, 32, 16, 8), not all multiples of 32
SIZES = {
    "searchnet": [(96, 128), (40, 56)],
    "unet": [(96, 128), (48, 80)],
    "unet_resnet34": [(96, 128), (64, 160)],
    "unetpp": [(96, 128), (64, 160)],
    "fpn": [(96, 128), (64, 160)],
    "deeplabv3": [(96, 128), (48, 80)],
    "setr": [(96, 128), (40, 56)],
}
DIVISORS = {"searchnet": 8, "unet": 16, "unet_resnet34": 32, "unetpp": 32, "fpn": 32, "deeplabv3": 16, "setr": 8}


def _state(name: str, image_size=(96, 128), config=None) -> dict:
    spec = {**SPECS[name], "in_channels": 3, "num_classes": len(CLASSES)}
    return {"kind": "train", "epoch": 1, "model_spec": spec, "class_names": CLASSES, "ignore_index": 11,
            "palette": [[10 * i, 20 * i, 5 * i] for i in range(len(CLASSES))], "image_size": list(image_size),
            "config": config}


def _model(name: str) -> torch.nn.Module:
    torch.manual_seed(0)
    model = build_model(_state(name)["model_spec"]).eval()
    # non-trivial BatchNorm statistics, so that eval-mode normalisation is exercised
    for module in model.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            module.running_mean.uniform_(-0.2, 0.2)
            module.running_var.uniform_(0.5, 1.5)
    return model


@pytest.fixture(scope="module")
def camvid_frames(shared_data):
    """Three real CamVid val frames as uint8 (3, H, W) tensors."""
    folder = shared_data / "camvid" / "val"
    paths = sorted(folder.glob("*.png"))[:3]
    if not paths:
        pytest.skip(f"no CamVid val frames in {folder}")
    return [torch.from_numpy(np.asarray(Image.open(path).convert("RGB")).copy()).permute(2, 0, 1) for path in paths]


def _batch(frames, size):
    return torch.stack([eval_transform(size)(frame)[0] for frame in frames])


@pytest.mark.slow
@pytest.mark.parametrize("name", list(SPECS))
def test_onnx_matches_pytorch_on_camvid_frames_at_two_sizes(name, camvid_frames, tmp_path):
    model = _model(name)
    out = tmp_path / f"{name}.onnx"
    sidecar = export_model(model, _state(name), "onnx", out, check=False)
    assert sidecar["size_rule"]["divisor"] == DIVISORS[name] and sidecar["onnx_opset"] == 17
    assert sidecar["size_rule"]["pad"] == (name != "searchnet")
    exported = load_exported(out)
    for batch_size, size in zip((3, 1), SIZES[name]):
        images = _batch(camvid_frames[:batch_size], size)
        with torch.no_grad():
            reference, logits = model(images), exported(images)
        assert logits.shape == reference.shape == (batch_size, len(CLASSES), *size)
        assert (logits - reference).abs().max().item() <= 1e-4, size
        assert (logits.argmax(1) == reference.argmax(1)).float().mean().item() >= 0.9999, size


@pytest.mark.slow
@pytest.mark.parametrize("fmt, name", [("torchscript", "searchnet"), ("exported-program", "setr"), ("torchscript", "deeplabv3")])
def test_torch_formats_match_pytorch_at_two_sizes(fmt, name, camvid_frames, tmp_path):
    model = _model(name)
    out = tmp_path / f"{name}.{'pt2' if fmt == 'exported-program' else 'ts'}"
    export_model(model, _state(name), fmt, out, check=False)
    exported = load_exported(out)
    for batch_size, size in zip((2, 1), SIZES[name]):
        images = _batch(camvid_frames[:batch_size], size)
        with torch.no_grad():
            difference = (exported(images) - model(images)).abs().max().item()
        assert difference <= 1e-4, (fmt, size)


def test_baseline_runner_pads_sizes_off_the_divisor_like_pytorch(tmp_path):
    model = _model("unet_resnet34")
    export_model(model, _state("unet_resnet34"), "onnx", tmp_path / "u.onnx", check=False)
    images = torch.randn(1, 3, 72, 100)  # not multiples of 32: PyTorch pads and crops, so does the runner
    with torch.no_grad():
        assert (load_exported(tmp_path / "u.onnx")(images) - model(images)).abs().max().item() <= 1e-4


def _synthetic_checkpoint(tmp_path: Path) -> Path:
    config = resolve(None, [({"data": {"name": "synthetic", "image_size": [32, 32], "num_samples": 16, "batch_size": 4},
                              "progress": False}, "test")]).to_dict()
    state = _state("searchnet", (32, 32), config)
    dataset = build_split("synthetic", "val", root=None, image_size=(32, 32), augment=False, num_samples=16)
    state.update(class_names=list(dataset.class_names), ignore_index=dataset.ignore_index,
                 palette=[[10 * i, 20 * i, 5 * i] for i in range(len(dataset.class_names))])
    state["model_spec"]["num_classes"] = len(dataset.class_names)
    torch.manual_seed(0)
    model = build_model(state["model_spec"]).eval()
    state["model"] = model.state_dict()
    path = tmp_path / BEST_CHECKPOINT
    save_checkpoint(state, path)
    return path


@pytest.mark.slow
def test_cli_export_then_eval_and_predict_give_the_checkpoints_outputs(tmp_path, capsys):
    checkpoint = _synthetic_checkpoint(tmp_path)
    onnx_file = tmp_path / "net.onnx"
    assert main(["export", str(checkpoint), "--out", str(onnx_file)]) == 0
    assert "max |logit difference|" in capsys.readouterr().out
    sidecar = json.loads(sidecar_path(onnx_file).read_text())
    assert sidecar["model_spec"]["genotype"]["cells"] == GENOTYPE["cells"] and sidecar["input"]["std"][0] == 0.229

    for source, name in ((checkpoint, "pt"), (onnx_file, "onnx")):
        assert main(["eval", str(source), "--no-progress", "--json", str(tmp_path / f"{name}.json")]) == 0
    from_checkpoint, from_onnx = (json.loads((tmp_path / f"{n}.json").read_text()) for n in ("pt", "onnx"))
    assert from_onnx["miou"] == from_checkpoint["miou"] and from_onnx["pixel_accuracy"] == from_checkpoint["pixel_accuracy"]
    assert from_onnx["loss"] == pytest.approx(from_checkpoint["loss"], abs=1e-5)

    images = tmp_path / "images"
    images.mkdir()
    generator = np.random.default_rng(0)
    for index in range(2):
        Image.fromarray(generator.integers(0, 256, (37, 45, 3), dtype=np.uint8)).save(images / f"im{index}.png")
    for source, name in ((checkpoint, "pt"), (onnx_file, "onnx")):
        assert main(["predict", str(source), str(images), "--out", str(tmp_path / f"pred-{name}"), "--no-progress"]) == 0
    for index in range(2):
        masks = [np.asarray(Image.open(tmp_path / f"pred-{n}" / f"im{index}_mask.png")) for n in ("pt", "onnx")]
        assert (masks[0] == masks[1]).all(axis=-1).mean() >= 0.9999

    # int8 (static, calibrated on the two images): written beside, with its sidecar, and evaluated
    assert main(["export", str(checkpoint), "--out", str(onnx_file), "--quantize", "static", "--calib", str(images)]) == 0
    int8 = tmp_path / "net-int8-static.onnx"
    assert json.loads(sidecar_path(int8).read_text())["quantization"]["calibration"]["images"] == 2
    import onnx

    assert any(node.op_type == "QuantizeLinear" for node in onnx.load(int8).graph.node)
    assert main(["eval", str(int8), "--no-progress", "--json", str(tmp_path / "int8.json")]) == 0
    assert 0 <= json.loads((tmp_path / "int8.json").read_text())["miou"] <= 1

    # the torch formats load in eval too
    traced = tmp_path / "net.ts"
    assert main(["export", str(checkpoint), "--format", "torchscript", "--out", str(traced)]) == 0
    assert main(["eval", str(traced), "--no-progress", "--json", str(tmp_path / "ts.json")]) == 0
    assert json.loads((tmp_path / "ts.json").read_text())["miou"] == from_checkpoint["miou"]


def test_bad_exported_files_are_one_line_errors_naming_the_file_and_rule(tmp_path, capsys):
    model = _model("searchnet")
    good = tmp_path / "net.onnx"
    export_model(model, _state("searchnet", (32, 32)), "onnx", good, check=False)
    with pytest.raises(ExportError, match=r"net\.onnx: input size 36x44 is not allowed: height and width must be multiples of 8"):
        load_exported(good)(torch.randn(1, 3, 36, 44))

    missing = tmp_path / "alone.onnx"
    missing.write_bytes(good.read_bytes())
    with pytest.raises(ExportError, match=r"alone\.onnx: its sidecar .*alone\.onnx\.json is missing"):
        load_exported(missing)

    sidecar = json.loads(sidecar_path(good).read_text())
    corrupt = tmp_path / "corrupt.onnx"
    corrupt.write_bytes(b"\x08\x07garbage" * 50)
    sidecar_path(corrupt).write_text(json.dumps({**sidecar, "sha256": None}))
    with pytest.raises(ExportError, match=r"corrupt\.onnx: not a readable ONNX model"):
        load_exported(corrupt)
    sidecar_path(corrupt).write_text(json.dumps(sidecar))  # the sidecar of another file
    with pytest.raises(ExportError, match=r"corrupt\.onnx: the file does not match its sidecar"):
        load_exported(corrupt)

    import onnx
    from onnx import TensorProto, helper

    foreign = tmp_path / "foreign.onnx"
    graph = helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "foreign",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 8, 8])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 3, 8, 8])])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), foreign)
    sidecar_path(foreign).write_text(json.dumps({**sidecar, "sha256": None}))
    with pytest.raises(ExportError, match=r"foreign\.onnx: inputs \['x'\] / outputs \['y'\] do not match its sidecar"):
        load_exported(foreign)
    sidecar_path(foreign).write_text(json.dumps({"format": "something-else"}))
    with pytest.raises(ExportError, match=r"foreign\.onnx\.json: not a udarts export sidecar"):
        load_exported(foreign)

    # through the CLI: one line on stderr, exit status 2
    assert main(["predict", str(missing), str(tmp_path), "--out", str(tmp_path / "p")]) == 2
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and "alone.onnx.json is missing" in error
