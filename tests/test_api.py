"""The Python API example of docs/usage.md runs as written (search -> derive -> train -> evaluate)."""

import re
from pathlib import Path

import pytest

from udarts.engine.layout import BEST_CHECKPOINT, GENOTYPE_FILE

USAGE = Path(__file__).resolve().parents[1] / "docs" / "usage.md"


def api_example() -> str:
    text = USAGE.read_text()
    section = text[text.index("## Python API"):]
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)


@pytest.mark.slow
def test_the_usage_page_python_example_runs(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    exec(compile(api_example(), "docs/usage.md (Python API)", "exec"), {})
    printed = capsys.readouterr().out
    miou = re.search(r"val mIoU (\d+\.\d) \(best epoch on val: (\d+\.\d)\)", printed)
    assert miou is not None, printed
    assert (tmp_path / "runs/api/search" / GENOTYPE_FILE).is_file() and (tmp_path / "runs/api/top1.json").is_file()
    assert (tmp_path / "runs/api/train" / BEST_CHECKPOINT).is_file()
    # the best checkpoint was chosen on val, so evaluating it on val gives the best epoch's mIoU
    assert miou.group(1) == miou.group(2)
    top1 = (tmp_path / "runs/api/top1.json").read_text()
    assert '"top_k": 1' in top1
