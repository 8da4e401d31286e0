"""udarts: differentiable architecture search for semantic segmentation in a U-shaped search space.

The package implements the method of the paper in ``shared/paper`` (DARTS applied to a U-shaped
space of 8 search cells over 4 scales; the network it finds is called SEARCH-Net).
"""

__version__ = "0.1.0"
