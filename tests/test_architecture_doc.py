"""docs/architecture.md tells the truth about the layers and the modules (pure text, no imports of udarts).

The doc's fenced ``layers`` block must list exactly ``LAYERS`` of tests/test_architecture.py, lowest
first; its "Modules" section must name every module under src/udarts, by its path relative to
src/udarts, once, in a table under the heading of the module's layer, and name no other module.
"""

import importlib.util
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "architecture.md"
SOURCE = ROOT / "src" / "udarts"


def _architecture_test():
    spec = importlib.util.spec_from_file_location("udarts_test_architecture", ROOT / "tests" / "test_architecture.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


ARCHITECTURE = _architecture_test()


def doc_layers(text: str) -> list[tuple[str, ...]]:
    """The layers of the doc's ```layers block: one line each, its dotted names in order."""
    blocks = re.findall(r"^```layers\n(.*?)^```", text, flags=re.MULTILINE | re.DOTALL)
    assert len(blocks) == 1, "docs/architecture.md needs exactly one ```layers block"
    return [tuple(re.findall(r"\budarts(?:\.\w+)*", line)) for line in blocks[0].splitlines() if line.strip()]


def doc_modules(text: str) -> dict[str, list[int]]:
    """Module path (relative to src/udarts) -> the layers (1-based) whose table rows name it, from
    the "## Modules" section, where each layer is a ``### N. name`` heading over a table."""
    section = re.search(r"^## Modules\n(.*?)(?=^## |\Z)", text, flags=re.MULTILINE | re.DOTALL)
    assert section, "docs/architecture.md needs a '## Modules' section"
    found: dict[str, list[int]] = {}
    layer = None
    for line in section.group(1).splitlines():
        heading = re.match(r"### (\d+)\.", line)
        if heading:
            layer = int(heading.group(1))
        row = re.match(r"\|\s*`([^`]+\.py)`\s*\|", line)
        if row:
            assert layer is not None, f"{row.group(1)}: a module row before the first layer heading"
            found.setdefault(row.group(1), []).append(layer)
    return found


def source_modules() -> dict[str, str]:
    """Path relative to src/udarts -> dotted module name, for every module of the package."""
    return {path.relative_to(SOURCE).as_posix(): ARCHITECTURE.module_name(path) for path in SOURCE.rglob("*.py")}


def test_the_doc_lists_the_layers_of_the_layer_test():
    assert doc_layers(DOC.read_text()) == [tuple(layer) for layer in ARCHITECTURE.LAYERS]


def test_the_doc_places_every_module_once_in_its_layer():
    text = DOC.read_text()
    documented, modules = doc_modules(text), source_modules()
    missing = sorted(set(modules) - set(documented) - {"__init__.py"})
    stale = sorted(set(documented) - set(modules))
    assert not missing, f"modules under src/udarts that docs/architecture.md does not name: {missing}"
    assert not stale, f"docs/architecture.md names modules that do not exist: {stale}"
    twice = {path: layers for path, layers in documented.items() if len(layers) > 1}
    assert not twice, f"named in more than one row: {twice}"
    misplaced = {path: (layers[0], ARCHITECTURE.layer_of(modules[path]) + 1) for path, layers in documented.items()
                 if layers[0] != ARCHITECTURE.layer_of(modules[path]) + 1}
    assert not misplaced, f"module: (its row's layer, its layer in LAYERS): {misplaced}"
    assert "`__init__.py`" in text.split("## Modules", 1)[1], "the package's own __init__.py is not named"


def test_the_checks_see_a_missing_module_and_a_changed_layer():
    text = DOC.read_text()
    assert "search/parts.py" not in doc_modules(text.replace("| `search/parts.py` |", "| search/parts.py |"))
    changed = doc_layers(text.replace(" udarts.engine.layout\n", "\n", 1))
    assert changed != [tuple(layer) for layer in ARCHITECTURE.LAYERS]
