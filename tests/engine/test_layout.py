"""The run folder's file names live in ``udarts.engine.layout`` alone: they are pinned here (old run
folders hold them), and no other source, benchmark or test spells one out."""

import ast
import re
from pathlib import Path

from udarts.engine import layout

REPO = Path(__file__).resolve().parents[2]
PINNED = Path(__file__).resolve()


def test_the_names_are_those_of_existing_run_folders():
    assert (layout.CONFIG_FILE, layout.METRICS_LOG, layout.ALPHAS_LOG, layout.PRUNING_LOG) == (
        "config.yaml", "metrics.jsonl", "alphas.jsonl", "pruning.jsonl")
    assert (layout.GENOTYPE_FILE, layout.LAST_CHECKPOINT, layout.BEST_CHECKPOINT, layout.BEST_PENDING) == (
        "genotype.json", "last.pt", "best.pt", "best.pt.next")
    assert (layout.TENSORBOARD_DIR, layout.LOCK_FILE) == ("tb", "run.lock")
    assert layout.derived_genotype_name(1, 0) == "genotype-top1-maxid0.json"
    assert layout.derived_genotype_name(2, None, "-pt4") == "genotype-top2-pt4.json"
    assert layout.derived_genotype_name(2, None, "-os100-b8") == "genotype-top2-os100-b8.json"
    assert layout.one_shot_scores_name(2, "-os100-b8") == "one-shot-scores-top2-os100-b8.json"


def docstrings(tree: ast.AST) -> set[int]:
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)) and node.body:
            first = node.body[0]
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant):
                found.add(id(first.value))
    return found


def spelled_out(path: Path, names: re.Pattern, root: Path = REPO) -> list[str]:
    """``file:line: text`` of each string literal of ``path`` (docstrings aside) that holds a name."""
    tree = ast.parse(path.read_text())
    skipped = docstrings(tree)
    hits = [node for node in ast.walk(tree) if isinstance(node, ast.Constant) and isinstance(node.value, str)
            and id(node) not in skipped and names.search(node.value)]
    return [f"{path.relative_to(root)}:{node.lineno}: {node.value!r}" for node in sorted(hits, key=lambda n: n.lineno)]


def run_file_pattern() -> re.Pattern:
    alternatives = "|".join(re.escape(name) for name in sorted(layout.RUN_FILES, key=len, reverse=True))
    return re.compile(rf"(?<![\w-])({alternatives}|genotype-top\d|one-shot-scores-top\d)(?!\w)")


def test_no_module_but_the_layout_spells_out_a_run_file():
    names = run_file_pattern()
    sources = [path for folder in ("src", "bench", "tests") for path in sorted((REPO / folder).rglob("*.py"))]
    found = [line for path in sources if path.resolve() not in (PINNED, Path(layout.__file__).resolve())
             for line in spelled_out(path, names)]
    assert not found, "\n".join(found)


def test_the_check_sees_a_spelled_out_name(tmp_path):
    planted = tmp_path / "planted.py"
    planted.write_text('"""Reads last.pt (a docstring may name it)."""\n'
                       'path = folder / "last.pt"\nlabel = f"{folder}/metrics.jsonl"\nother = "genotype-top1.json"\n'
                       'fine = "last.ptx", "my-best.pt"\n')
    found = [line.split(": ", 1)[1] for line in spelled_out(planted, run_file_pattern(), tmp_path)]
    assert found == ["'last.pt'", "'/metrics.jsonl'", "'genotype-top1.json'"]
