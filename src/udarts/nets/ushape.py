"""The U-shaped wiring of the paper's search space (its Figure 2), written once.

Eight cells over four scales (the slots of ``udarts.space.cell_slots``); scale ``s`` has width ``width * 2**s`` and resolution ``1 / 2**s``:

    stem -> C1 (1)   ------------------------------ skip ----------------------------> C8 (1)   -> head
              C2 (1/2) --------------------- skip ---------------------> C7 (1/2)
                         C3 (1/4) ---------- skip -----------> C6 (1/4)
                                    C4 (1/8) -----------> C5 (1/8)

Encoder cells C1..C4 take one input: the stem (C1) or the previous encoder cell's output,
downsampled. C5 takes C4's output (same scale). Decoder cells C6..C8 take two inputs, in this
order: input 0 = the skip from the encoder cell of the same scale, input 1 = the previous
decoder cell's output, upsampled.

Resampling (a documented choice): down = 2x2 max pooling then a 1x1 conv-BN-ReLU to the new
width (as UNet pools); up = 2x bilinear upsampling then a 1x1 conv-BN-ReLU (cheaper than a
transposed conv and free of checkerboard artefacts). Inputs must have sides divisible by 8
(three halvings); other sizes raise a ``ValueError`` naming the size.

The supernet and SEARCH-Net differ only in ``make_cell``, so both share this module's state-dict
names and topology.
"""

from __future__ import annotations

from typing import Callable

from torch import Tensor, nn

from udarts.ops import ConvBnAct
from udarts.space import DOWNSAMPLING, NUM_SCALES, CellSlot, cell_slots


class Downsample(nn.Sequential):
    def __init__(self, in_channels: int, out_channels: int, affine: bool) -> None:
        super().__init__(nn.MaxPool2d(2), ConvBnAct(in_channels, out_channels, 1, affine=affine))


class Upsample(nn.Sequential):
    def __init__(self, in_channels: int, out_channels: int, affine: bool) -> None:
        super().__init__(
            nn.Upsample(scale_factor=2, mode="bilinear", align_corners=False),
            ConvBnAct(in_channels, out_channels, 1, affine=affine),
        )


MakeCell = Callable[[CellSlot], nn.Module]


class UShapedNet(nn.Module):
    """Stem, eight cells wired as a U, and a 1x1 classifier head.

    ``make_cell(slot)`` returns a module called as ``cell(list_of_inputs) -> (B, C, H, W)``.
    """

    def __init__(self, in_channels: int, num_classes: int, width: int, make_cell: MakeCell, affine: bool = True) -> None:
        super().__init__()
        if width < 1 or num_classes < 1 or in_channels < 1:
            raise ValueError(f"width, num_classes and in_channels must be >= 1, got {width}, {num_classes}, {in_channels}")
        self.in_channels = in_channels
        self.num_classes = num_classes
        self.width = width
        self.slots = cell_slots(width)
        widths = [width * 2**scale for scale in range(NUM_SCALES)]
        self.stem = ConvBnAct(in_channels, width, 3, affine=affine)
        # downsample[s] feeds encoder cell s (s >= 1) from encoder cell s - 1
        self.downsample = nn.ModuleList(Downsample(widths[s - 1], widths[s], affine) for s in range(1, NUM_SCALES))
        # upsample[k] feeds decoder scale s = NUM_SCALES - 2 - k from the decoder cell one scale below
        self.upsample = nn.ModuleList(
            Upsample(widths[s + 1], widths[s], affine) for s in reversed(range(NUM_SCALES - 1))
        )
        self.cells = nn.ModuleList(make_cell(slot) for slot in self.slots)  # state-dict keys: udarts.space.cell_state_key
        self.head = nn.Conv2d(width, num_classes, 1)

    def forward(self, x: Tensor) -> Tensor:
        height, width = x.shape[-2:]
        if height % DOWNSAMPLING or width % DOWNSAMPLING:
            raise ValueError(
                f"input size {height}x{width} is not divisible by {DOWNSAMPLING} in both sides "
                f"(the U has {NUM_SCALES - 1} halvings); resize or crop the input"
            )
        skips = []
        out = self.stem(x)  # (B, w, H, W)
        for scale in range(NUM_SCALES):  # encoder C1..C4
            if scale > 0:
                out = self.downsample[scale - 1](out)  # (B, w*2^s, H/2^s, W/2^s)
            out = self.cells[scale]([out])
            skips.append(out)
        out = self.cells[NUM_SCALES]([out])  # C5 at 1/8: (B, 8w, H/8, W/8)
        for step, scale in enumerate(reversed(range(NUM_SCALES - 1))):  # decoder C6..C8
            up = self.upsample[step](out)  # (B, w*2^s, H/2^s, W/2^s)
            out = self.cells[NUM_SCALES + 1 + step]([skips[scale], up])
        return self.head(out)  # (B, num_classes, H, W)
