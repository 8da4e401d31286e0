"""The plotting modules and the comparison's bookkeeping helpers, on hand-made inputs."""

import math

import numpy as np
import pytest
import torch
from PIL import Image

from udarts.app.compare import ComparisonError, Statistic, config_differences, format_statistic, parse_entries
from udarts.engine.layout import GENOTYPE_FILE
from udarts.genotype import derive
from udarts.space import all_edges, cell_slots, nodes_for_edges
from udarts.viz.alphas import edge_labels, mean_weights_over_epochs, plot_alpha_history, plot_final_alphas
from udarts.viz.curves import mean_curve, plot_comparison_curves, plot_run_curves
from udarts.viz.figures import is_png
from udarts.viz.genotype_plot import input_names, plot_genotype
from udarts.viz.predictions import plot_predictions

OPS = ["none", "conv_3x3", "identity"]


def alpha_records(epochs=3, num_nodes=3):
    generator = torch.Generator().manual_seed(0)
    records = []
    for epoch in range(1, epochs + 1):
        cells = {}
        for slot in cell_slots(1):
            logits = torch.randn(len(all_edges(slot.num_inputs, num_nodes)), len(OPS), generator=generator)
            cells[slot.name] = torch.softmax(logits, dim=-1).tolist()
        records.append({"epoch": epoch, "op_names": OPS, "cells": cells})
    return records


def test_input_and_edge_names_follow_the_u_wiring():
    assert input_names("C1") == ["stem"]
    assert input_names("C3") == ["C2 ↓"]
    assert input_names("C5") == ["C4"]
    assert input_names("C6") == ["C3 skip", "C5 ↑"]
    assert input_names("C8") == ["C1 skip", "C7 ↑"]
    assert nodes_for_edges(2, 2 + 3 + 4) == 3
    assert edge_labels("C6", 2, 5) == ["C3 skip → n0", "C5 ↑ → n0", "C3 skip → n1", "C5 ↑ → n1", "n0 → n1"]
    with pytest.raises(ValueError):
        nodes_for_edges(1, 2)


def test_alpha_plots_and_mean_weights(tmp_path):
    records = alpha_records()
    epochs, weights = mean_weights_over_epochs(records, "C7")
    assert epochs == [1, 2, 3] and weights.shape == (len(OPS), 3)
    assert weights[:, 1] == pytest.approx(np.asarray(records[1]["cells"]["C7"]).mean(axis=0))
    assert weights.sum(axis=0) == pytest.approx(np.ones(3))
    genotype = derive([torch.log(torch.tensor(records[-1]["cells"][slot.name])) for slot in cell_slots(1)], OPS, 3)
    assert is_png(plot_final_alphas(records, tmp_path / "final.png", genotype))
    assert is_png(plot_alpha_history(records, tmp_path / "history.png"))
    assert is_png(plot_genotype(genotype, tmp_path / "cells.png"))
    with pytest.raises(ValueError, match="no alpha records"):
        plot_alpha_history([], tmp_path / "empty.png")


def test_curves_average_seeds_and_skip_missing_values(tmp_path):
    runs = [
        [{"epoch": 1, "train_loss": 1.0, "val_miou": 0.2}, {"epoch": 2, "train_loss": 0.5, "val_miou": 0.4}],
        [{"epoch": 1, "train_loss": 3.0, "val_miou": None}, {"epoch": 2, "train_loss": 0.7, "val_miou": 0.6}],
    ]
    epochs, means, stds = mean_curve(runs, "train_loss")
    assert list(epochs) == [1, 2] and means == pytest.approx([2.0, 0.6]) and stds[0] == pytest.approx(math.sqrt(2))
    epochs, means, stds = mean_curve(runs, "val_miou")
    assert means == pytest.approx([0.2, 0.5]) and stds[0] == 0.0
    assert is_png(plot_comparison_curves({"a": runs, "b": runs[:1]}, tmp_path / "cmp.png", title="t"))
    assert is_png(plot_run_curves(runs[1], tmp_path / "run.png"))
    with pytest.raises(ValueError):
        plot_run_curves([], tmp_path / "none.png")


def test_predictions_grid(tmp_path):
    images = [np.full((16, 24, 3), 100, dtype=np.uint8) for _ in range(2)]
    masks = [np.zeros((16, 24), dtype=np.int64), np.ones((16, 24), dtype=np.int64)]
    path = plot_predictions(images, masks, {"m1": masks, "m2": masks[::-1]}, [(0, 0, 0), (255, 0, 0)], tmp_path / "p.png",
                            class_names=["bg", "fg"])
    with Image.open(path) as picture:
        assert picture.format == "PNG" and picture.width > picture.height
    with pytest.raises(ValueError, match="m1: 1 predicted masks for 2 images"):
        plot_predictions(images, masks, {"m1": masks[:1]}, [(0, 0, 0), (255, 0, 0)], tmp_path / "q.png")


def test_statistics_and_formatting():
    two = Statistic.of([0.5, 0.7])
    assert two.mean == pytest.approx(0.6) and two.std == pytest.approx(math.sqrt(0.02))
    assert format_statistic(two, scale=100, digits=2) == "60.00 ± 14.14"
    one = Statistic.of([0.25])
    assert one.std is None and format_statistic(one, digits=3) == "0.250"


def test_config_differences_name_nested_keys():
    assert config_differences({"a": 1, "b": {"c": 2, "d": 3}}, {"a": 1, "b": {"c": 5, "d": 3}}) == ["b.c: 2 -> 5"]
    assert config_differences({"device": "cpu", "x": 1}, {"device": "cuda", "x": 1}) == []
    assert config_differences({"b": {"c": 2}}, {"b": {"c": 9}}, ignore=("b.c",)) == []


def test_model_entries_and_labels():
    entries = parse_entries(["unet", "wide=unet"], [f"runs/search-a/{GENOTYPE_FILE}", "b.json"], {"wide": {"width": 32}})
    assert [(entry.label, entry.model) for entry in entries] == [
        ("unet", "unet"), ("wide", "unet"), ("searchnet-search-a", "searchnet"), ("searchnet-b", "searchnet")]
    assert entries[1].options == {"width": 32} and entries[0].options == {}
    assert parse_entries([], [f"x/{GENOTYPE_FILE}"])[0].label == "searchnet"
    with pytest.raises(ComparisonError, match="--genotypes"):
        parse_entries(["searchnet"])
    with pytest.raises(ComparisonError, match="label"):
        parse_entries(["a b=unet"])
    with pytest.raises(ComparisonError, match="no model options"):
        parse_entries([], ["g.json"], {"searchnet": {"width": 3}})
