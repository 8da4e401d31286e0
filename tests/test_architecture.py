"""The layering of docs/architecture.md: every module imports only its own layer and those below."""

import ast
from pathlib import Path

SOURCE = Path(__file__).resolve().parents[1] / "src" / "udarts"

# Lowest first. A module's layer is that of its longest matching prefix.
LAYERS = [
    ("udarts.io", "udarts.config", "udarts.metrics", "udarts.efficiency"),
    ("udarts.ops", "udarts.space", "udarts.losses", "udarts.complexity"),
    ("udarts.nets", "udarts.baselines", "udarts.data"),
    ("udarts.genotype", "udarts.genotype_format", "udarts.models", "udarts.random_genotypes", "udarts.latency"),
    ("udarts.search", "udarts.viz"),
    ("udarts.engine",),
    ("udarts.builders", "udarts.checkpoints", "udarts.experiment"),
    ("udarts.app",),
    ("udarts.cli",),
]


def layer_of(module: str) -> int:
    matches = [(len(prefix), rank) for rank, prefixes in enumerate(LAYERS) for prefix in prefixes
               if module == prefix or module.startswith(prefix + ".")]
    assert matches, f"{module} is in no layer of LAYERS (docs/architecture.md)"
    return max(matches)[1]


def imports_of(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
        elif isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
    return {name for name in names if name.startswith("udarts.")}


def module_name(path: Path) -> str:
    parts = path.relative_to(SOURCE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def test_no_module_imports_a_higher_layer():
    upward = []
    for path in sorted(SOURCE.rglob("*.py")):
        module = module_name(path)
        if module == "udarts":
            continue
        for name in imports_of(path):
            if layer_of(name) > layer_of(module):
                upward.append(f"{module} -> {name}")
    assert not upward, upward


def test_the_layer_checker_sees_an_upward_import():
    assert layer_of("udarts.nets.searchnet") < layer_of("udarts.genotype")
    assert layer_of("udarts.viz.curves") < layer_of("udarts.engine.runs") < layer_of("udarts.app.compare.plan")


def test_no_module_is_over_400_lines_and_the_cli_under_450():
    lengths = {module_name(path): len(path.read_text().splitlines()) for path in SOURCE.rglob("*.py")}
    assert lengths["udarts.cli"] < 450
    assert not {module: length for module, length in lengths.items() if length > 400}
