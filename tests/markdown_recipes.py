"""Shell recipes as the documents show them, for the tests that run them.

A recipe is a fenced ``bash`` block that a Markdown file marks on the line before it with
``<!-- test: NAME -->``. Marking a block opts it in: ``tests/test_readme.py`` then requires a
test for it (its table ``RECIPES``), so a renamed flag or command in the document fails the suite.
Commands run in-process through ``udarts.cli.main`` with flags appended that shrink them (a tiny
width, image size, epochs), exactly as written otherwise.
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
MARKER = re.compile(r"^<!-- test: ([\w-]+) -->\n+```bash\n(.*?)^```", re.S | re.M)


def documents() -> list[Path]:
    """The Markdown files whose recipes can be marked: the README and every page under docs/."""
    return [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]


def marked_blocks(path: Path) -> dict[str, str]:
    """``{name: block text}`` of the blocks ``path`` marks; a name used twice is an error."""
    blocks: dict[str, str] = {}
    for match in MARKER.finditer(path.read_text()):
        name = match.group(1)
        if name in blocks:
            raise ValueError(f"{path.name}: two blocks are marked 'test: {name}'")
        blocks[name] = match.group(2)
    return blocks


def commands(block: str) -> list[list[str]]:
    """The block's commands as argument lists: continuation lines joined, comments and blank
    lines dropped. A ``udarts`` command comes without its first word (the tests run it
    in-process); a ``torchrun ... -m udarts.cli ...`` launch comes whole (a test starts it as a
    process). Any other command is an error."""
    joined = re.sub(r"\\\n\s*", " ", block)
    argvs = []
    for line in joined.splitlines():
        words = shlex.split(line, comments=True)
        if not words:
            continue
        if words[0] == "udarts":
            argvs.append(words[1:])
        elif words[0] == "torchrun" and words[words.index("-m") + 1 if "-m" in words else 0] == "udarts.cli":
            argvs.append(words)
        else:
            raise ValueError(f"neither a udarts command nor a torchrun launch of udarts.cli, which the recipe "
                             f"tests cannot run: {line!r}")
    return argvs


def recipe(name: str, path: Path | None = None) -> list[list[str]]:
    """The commands of the block marked ``name`` in ``path`` (default: the README)."""
    path = path or REPO / "README.md"
    blocks = marked_blocks(path)
    if name not in blocks:
        raise KeyError(f"{path.name} marks no block 'test: {name}' (marked: {sorted(blocks)})")
    return commands(blocks[name])


def write_folder_dataset(root: Path, train: int = 16, val: int = 8, size: int = 64, seed: int = 0) -> Path:
    """A small dataset in the README's own-data layout (``dataset.yaml`` and ``{train,val}/{images,masks}``):
    the synthetic shapes drawn as PNG files, 3 classes (background, disc, rectangle; triangles are
    left unlabelled, drawn as background), as a user's first folder might be."""
    import numpy as np
    import torch
    from PIL import Image

    from udarts.data.synthetic import render_sample

    root.mkdir(parents=True, exist_ok=True)
    (root / "dataset.yaml").write_text(
        "classes: [background, disc, rectangle]\n"
        "splits:\n"
        "  train: {images: train/images, masks: train/masks}\n"
        "  val:   {images: val/images, masks: val/masks}\n")
    generator = torch.Generator().manual_seed(seed)
    for split, count in (("train", train), ("val", val)):
        (root / split / "images").mkdir(parents=True, exist_ok=True)
        (root / split / "masks").mkdir(parents=True, exist_ok=True)
        for index in range(count):
            image, mask = render_sample((size, size), generator, max_shapes=4, noise=0.08)
            mask = torch.where(mask == 3, 0, mask)  # triangles: unlabelled
            pixels = (image.clamp(0, 1) * 255).round().byte().permute(1, 2, 0).numpy()  # (H, W, 3)
            Image.fromarray(pixels).save(root / split / "images" / f"{split}{index:03d}.png")
            Image.fromarray(mask.numpy().astype(np.uint8), mode="L").save(root / split / "masks" / f"{split}{index:03d}.png")
    return root


def write_camvid_like(root: Path, train: int = 12, val: int = 4, size: tuple[int, int] = (32, 32), seed: int = 0) -> Path:
    """A tiny dataset in CamVid's SegNet layout (``train``, ``trainannot``, ``val``, ``valannot``
    and their lists): random RGB frames, masks of the 11 classes in horizontal bands with a void
    (11) border; half the training frames belong to sequence 0006R0 (the held-out one of the shipped
    configs), the others to 0001TP, the val frames to 0016E5."""
    import numpy as np
    from PIL import Image

    generator = np.random.default_rng(seed)
    height, width = size
    for split, count in (("train", train), ("val", val)):
        (root / split).mkdir(parents=True, exist_ok=True)
        (root / f"{split}annot").mkdir(parents=True, exist_ok=True)
        lines = []
        for index in range(count):
            sequence = "0016E5" if split == "val" else ("0006R0" if index % 2 else "0001TP")
            name = f"{sequence}_{index:05d}.png"
            pixels = generator.integers(0, 256, (height, width, 3), dtype=np.uint8)  # (H, W, 3)
            bands = generator.integers(0, 11, height // 4 + 1)
            mask = np.repeat(bands, 4)[:height, None].repeat(width, axis=1).astype(np.uint8)  # (H, W), classes 0-10
            mask[0, :] = mask[-1, :] = 11  # void border
            Image.fromarray(pixels).save(root / split / name)
            Image.fromarray(mask).save(root / f"{split}annot" / name)
            lines.append(f"{split}/{name} {split}annot/{name}")
        (root / f"{split}.txt").write_text("\n".join(lines) + "\n")
    return root
