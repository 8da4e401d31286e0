"""The search space's structure (``udarts.space``) and the layering it anchors."""

import ast
from pathlib import Path

import pytest
import torch

import udarts
from udarts.genotype import architecture_from_state
from udarts.search.supernet import SuperNet, search_op_names
from udarts.space import (
    DOWNSAMPLING,
    NUM_CELLS,
    all_edges,
    cell_slots,
    cell_state_key,
    cell_tensors,
    nodes_for_edges,
    spec_edges,
    spec_ops,
)

PACKAGE = Path(udarts.__file__).parent


def test_the_u_has_eight_slots_and_three_halvings():
    slots = cell_slots(4)
    assert len(slots) == NUM_CELLS == 8 and DOWNSAMPLING == 8
    assert [slot.name for slot in slots] == [f"C{index}" for index in range(1, 9)]
    assert [slot.num_inputs for slot in slots] == [1, 1, 1, 1, 1, 2, 2, 2]
    assert [slot.role for slot in slots] == ["encoder"] * 4 + ["decoder"] * 4


def test_edges_of_a_full_dag_and_of_a_cell_spec():
    assert all_edges(2, 2) == [(0, 0), (0, 1), (1, 0), (1, 1), (1, 2)]
    assert nodes_for_edges(2, 5) == 2
    with pytest.raises(ValueError, match="full DAG"):
        nodes_for_edges(2, 4)
    spec = [[("conv_3x3", 0)], [("identity", 0), ("mbconv_3x3", 1)]]
    assert spec_edges(spec) == [(0, 0), (1, 0), (1, 1)]
    assert spec_ops(spec) == ["conv_3x3", "identity", "mbconv_3x3"]


@pytest.mark.parametrize("mode, prunable", [("darts", False), ("pc_darts", True)])
def test_state_dict_keys_of_the_architecture_tensors_match_the_supernet(mode, prunable):
    model = SuperNet(3, 2, 4, num_nodes=2, op_names=search_op_names(("conv_3x3", "identity")), mode=mode,
                     partial_channel_k=2, prunable=prunable)
    state = model.state_dict()
    for slot, cell in zip(model.slots, model.cells):
        torch.testing.assert_close(state[cell_state_key(slot.index, "alphas")], cell.alphas.detach())
    assert (cell_tensors(state, "betas") is not None) == (mode == "pc_darts")
    assert (cell_tensors(state, "op_mask") is not None) == prunable
    architecture = architecture_from_state(state, num_nodes=2)
    assert len(architecture["alphas"]) == NUM_CELLS
    with pytest.raises(ValueError, match="architecture tensor"):
        cell_state_key(0, "gammas")


def imported_modules(path: Path) -> set[str]:
    modules = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module:
            modules.add(node.module)
        elif isinstance(node, ast.Import):
            modules.update(alias.name for alias in node.names)
    return {module for module in modules if module.startswith("udarts")}


def test_layers_ops_space_nets_genotype():
    """ops -> space -> nets -> genotype -> search: no module imports from a layer above it."""
    assert imported_modules(PACKAGE / "space.py") == set()
    for path in (PACKAGE / "nets").glob("*.py"):
        assert all(module in ("udarts.ops", "udarts.space") or module.startswith("udarts.nets")
                   for module in imported_modules(path)), path
    for name in ("genotype.py", "genotype_format.py"):
        allowed = {"udarts", "udarts.ops", "udarts.space", "udarts.io", "udarts.genotype_format"}
        assert imported_modules(PACKAGE / name) <= allowed, name
