import json

import pytest
import torch

from udarts.genotype import Genotype, GenotypeError, derive, derive_cell
from udarts.nets.cell import all_edges
from udarts.nets.ushape import cell_slots
from udarts.ops import OpSettings

OPS = ("none", "conv_3x3", "mbconv_3x3", "identity")


def hand_set_alphas(num_inputs: int, num_nodes: int, strong: dict[tuple[int, int], tuple[str, float]]) -> torch.Tensor:
    """Alphas that favour ``op`` on edge (node, source) with logit ``value``; others flat.
    ``none`` gets a big logit everywhere: derivation must ignore it."""
    edges = all_edges(num_inputs, num_nodes)
    alphas = torch.zeros(len(edges), len(OPS))
    alphas[:, 0] = 10.0
    for index, edge in enumerate(edges):
        if edge in strong:
            op_name, value = strong[edge]
            alphas[index, OPS.index(op_name)] = value
    return alphas


def test_derivation_keeps_the_strongest_edges_and_ops():
    strong = {
        (0, 0): ("mbconv_3x3", 3.0),  # node 0 has one candidate edge: kept whatever its weight
        (1, 0): ("identity", 2.0),
        (1, 1): ("conv_3x3", 5.0),
        (2, 0): ("conv_3x3", 1.0),
        (2, 1): ("mbconv_3x3", 4.0),
        (2, 2): ("identity", 6.0),
    }
    cell = derive_cell("C1", hand_set_alphas(1, 3, strong), OPS, num_inputs=1, num_nodes=3, top_k=2)
    assert cell.nodes == (
        (("mbconv_3x3", 0),),
        (("identity", 0), ("conv_3x3", 1)),
        (("mbconv_3x3", 1), ("identity", 2)),  # edge from source 0 dropped: weakest
    )
    top1 = derive_cell("C1", hand_set_alphas(1, 3, strong), OPS, num_inputs=1, num_nodes=3, top_k=1)
    assert top1.nodes[2] == (("identity", 2),)


def test_derivation_of_a_two_input_decoder_cell():
    strong = {(0, 1): ("conv_3x3", 4.0), (0, 0): ("identity", 3.0), (1, 2): ("mbconv_3x3", 5.0), (1, 0): ("conv_3x3", 4.5)}
    cell = derive_cell("C6", hand_set_alphas(2, 2, strong), OPS, num_inputs=2, num_nodes=2)
    assert cell.nodes == ((("identity", 0), ("conv_3x3", 1)), (("conv_3x3", 0), ("mbconv_3x3", 2)))


def random_genotype(seed: int = 0) -> Genotype:
    torch.manual_seed(seed)
    alphas = [torch.randn(len(all_edges(slot.num_inputs, 4)), len(OPS)) for slot in cell_slots(1)]
    return derive(alphas, OPS, 4, settings=OpSettings(expand_ratio=3), search={"seed": seed, "width": 8})


def test_genotype_json_round_trips(tmp_path):
    genotype = random_genotype()
    path = genotype.save(tmp_path / "genotype.json")
    loaded = Genotype.load(path)
    assert loaded == genotype
    assert loaded.search == {"seed": 0, "width": 8}
    assert loaded.expand_ratio == 3
    data = json.loads(path.read_text())
    assert data["format"] == "udarts-genotype" and data["version"] == 1
    assert [cell["name"] for cell in data["cells"]] == [f"C{i}" for i in range(1, 9)]
    # readable: every edge on one line
    assert '["' in path.read_text().splitlines()[20]


def corrupt(tmp_path, edit) -> str:
    data = random_genotype().to_dict()
    edit(data)
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(data))
    return str(path)


@pytest.mark.parametrize(
    "edit, message",
    [
        (lambda d: d.update(format="something"), "format"),
        (lambda d: d.update(version=99), "version"),
        (lambda d: d.pop("cells"), "cells: missing"),
        (lambda d: d.update(extra=1), "extra: unknown key"),
        (lambda d: d["cells"].pop(), "expected a list of 8 cells"),
        (lambda d: d["cells"][2].update(name="C9"), r"cells\[2\].name"),
        (lambda d: d["cells"][6].update(num_inputs=1), r"cells\[6\].num_inputs"),
        (lambda d: d["cells"][0]["nodes"][1].__setitem__(0, ["conv_7x7", 0]), r"cells\[0\].nodes\[1\]\[0\]: op 'conv_7x7'"),
        (lambda d: d["cells"][0]["nodes"][1].__setitem__(0, ["conv_3x3", 5]), "source 5 out of range"),
        (lambda d: d["cells"][0]["nodes"][1].__setitem__(0, ["none", 0]), "'none' cannot be a kept edge"),
        (lambda d: d["cells"][0]["nodes"].__setitem__(1, []), r"cells\[0\].nodes\[1\]: expected a non-empty list"),
        (lambda d: d["cells"][0]["nodes"].pop(), "expected a list of 4 nodes"),
        (lambda d: d.update(op_set=["conv_3x3", "warp_9x9"]), "op_set: unknown op"),
        (lambda d: d.update(op_settings={"expand_ratio": 0}), "op_settings"),
        (lambda d: d.update(num_nodes=0), "num_nodes"),
    ],
)
def test_bad_genotypes_are_rejected_with_the_key(tmp_path, edit, message):
    path = corrupt(tmp_path, edit)
    with pytest.raises(GenotypeError, match=message) as error:
        Genotype.load(path)
    assert path in str(error.value)


def test_missing_and_non_json_files(tmp_path):
    with pytest.raises(GenotypeError, match="not found"):
        Genotype.load(tmp_path / "nope.json")
    path = tmp_path / "broken.json"
    path.write_text('{"format": "udarts-genotype", ')
    with pytest.raises(GenotypeError, match="not valid JSON"):
        Genotype.load(path)
