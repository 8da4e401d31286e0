"""``udarts --version`` and ``udarts env`` (alias ``doctor``): the report pasted into bug reports
and BENCHMARKS.md entries."""

import json
import re
from importlib import metadata

import pytest
import torch

from udarts import __version__
from udarts.app.environment import environment, render
from udarts.cli import main


def test_version_flag_prints_the_package_version(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["--version"])
    assert exit_.value.code == 0
    assert capsys.readouterr().out.strip() == f"udarts {__version__}"
    assert __version__ == metadata.version("udarts")  # the installed metadata and the module agree


@pytest.mark.parametrize("command", ["env", "doctor"])
def test_env_prints_versions_machine_threads_and_bf16(command, capsys):
    assert main([command]) == 0
    lines = capsys.readouterr().out.splitlines()
    keys = [line.split(":")[0] for line in lines]
    assert keys == ["udarts", "python", "libraries", "cpu", "cpu bf16", "threads", "gpu", "memory", "load average (1, 5, 15 min)"]
    text = "\n".join(lines)
    assert lines[0].startswith(f"udarts: {__version__}")
    assert f"torch {torch.__version__}" in text and f"torchvision {metadata.version('torchvision')}" in text
    assert "segmentation-models-pytorch " in text and "onnxruntime " in text
    assert f"torch {torch.get_num_threads()} intra-op" in text
    assert f"torch kernels {torch.backends.cpu.get_cpu_capability()}" in text
    if not torch.cuda.is_available():
        assert lines[keys.index("gpu")].startswith("gpu: none")


def test_env_json_holds_the_same_facts(capsys):
    assert main(["env", "--json"]) == 0
    facts = json.loads(capsys.readouterr().out)
    assert facts["udarts"] == __version__ and facts["libraries"]["torch"] == torch.__version__
    assert facts["threads"]["torch_intra_op"] == torch.get_num_threads()
    assert facts["cpu"]["cores"] >= 1 and facts["cuda"]["available"] == torch.cuda.is_available()
    assert len(render(facts)) == 9  # the JSON round trip renders as the live facts do


def test_render_names_missing_libraries_gpus_and_unknown_bf16():
    facts = environment()
    facts["libraries"]["onnxruntime"] = None
    facts["cpu"].update(bf16_supported=False, bf16_flags=[])
    facts["cuda"].update(available=True, bf16_supported=True, built_with="12.4",
                         gpus=[{"index": 0, "name": "NVIDIA H200", "memory_gb": 139.8, "capability": "9.0"}])
    facts["load_average"] = None
    lines = render(facts)
    assert "onnxruntime not installed" in lines[2]
    assert lines[4] == "cpu bf16: no native bf16 (emulated, slow)"
    assert lines[6] == "gpu: cuda:0 NVIDIA H200 (139.8 GB, sm 9.0); bf16 yes"
    assert lines[-1] == "load average: unknown"
    facts["cpu"]["bf16_supported"] = None
    assert render(facts)[4] == "cpu bf16: unknown"
    assert re.match(r"cpu: .+, \d+ cores \(\d+ usable\), torch kernels \w+", lines[3])
