"""Latency on the user's device: a lookup table of SEARCH-Net's parts (``table``), measured on a
runtime (``measure``), and the predictor that sums it over a genotype."""

from udarts.latency.table import RUNTIMES, LatencyShape, LatencyTable, LatencyTableError, mismatches

__all__ = ["RUNTIMES", "LatencyShape", "LatencyTable", "LatencyTableError", "mismatches"]
