"""The layering of docs/architecture.md: every module imports only its own layer and those below."""

import ast
from pathlib import Path

SOURCE = Path(__file__).resolve().parents[1] / "src" / "udarts"

# Lowest first. A module's layer is that of its longest matching prefix.
LAYERS = [
    ("udarts.io", "udarts.config", "udarts.metrics", "udarts.efficiency", "udarts.engine.layout"),
    ("udarts.ops", "udarts.space", "udarts.losses", "udarts.complexity"),
    ("udarts.nets", "udarts.baselines", "udarts.data"),
    ("udarts.genotype", "udarts.genotype_format", "udarts.models", "udarts.random_genotypes", "udarts.latency"),
    ("udarts.search", "udarts.viz"),
    ("udarts.engine",),
    ("udarts.builders", "udarts.checkpoints", "udarts.experiment"),
    ("udarts.app",),
    ("udarts.cli", "udarts.__main__"),
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
    assert not {module: length for module, length in lengths.items() if length > 400 and module != "udarts.cli"}


def import_graph() -> dict[str, set[str]]:
    """Module -> the udarts modules it imports (at its top or inside functions)."""
    modules = {module_name(path): path for path in SOURCE.rglob("*.py")}
    graph = {}
    for module, path in modules.items():
        named = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                named.update(f"{node.module}.{alias.name}" if f"{node.module}.{alias.name}" in modules else node.module
                             for alias in node.names)
            elif isinstance(node, ast.Import):
                named.update(alias.name for alias in node.names)
        graph[module] = {name for name in named if name in modules and name != module}
    return graph


def circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The import circles of ``graph``: its strongly connected parts of more than one module."""
    order, low, stack, found = {}, {}, [], []

    def visit(module: str) -> None:
        order[module] = low[module] = len(order)
        stack.append(module)
        for other in graph[module]:
            if other not in order:
                visit(other)
                low[module] = min(low[module], low[other])
            elif other in stack:
                low[module] = min(low[module], order[other])
        if low[module] == order[module]:
            part = []
            while not part or part[-1] != module:
                part.append(stack.pop())
            if len(part) > 1:
                found.append(sorted(part))

    for module in graph:
        if module not in order:
            visit(module)
    return found


def test_no_import_circle():
    assert circles(import_graph()) == []
    assert circles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]  # the checker sees one
