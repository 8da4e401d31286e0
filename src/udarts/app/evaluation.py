"""What `udarts eval` prints and writes: the per-class table and the metrics JSON."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from udarts.io import atomic_write_text


def format_eval_table(metrics: dict[str, Any]) -> str:
    """Per-class IoU, mIoU and pixel accuracy as a Markdown table (percent)."""
    lines = ["| class | IoU % |", "|---|---|"]
    for name, iou in metrics["iou_per_class"].items():
        lines.append(f"| {name} | {'n/a (absent)' if iou is None or iou != iou else f'{100 * iou:.2f}'} |")
    lines.append(f"| **mIoU** | **{100 * metrics['miou']:.2f}** |")
    lines.append(f"| pixel accuracy | {100 * metrics['pixel_accuracy']:.2f} |")
    return "\n".join(lines)


def write_metrics(result: dict[str, Any], path: str | Path | None) -> str:
    """The metrics as JSON (NaN as null), printed as a table; written to ``path`` if given."""
    print(format_eval_table(result))
    text = json.dumps({key: (None if isinstance(v, float) and v != v else v) for key, v in result.items()}, indent=2)
    if path is not None:
        atomic_write_text(path, text + "\n", make_parent=True)
        print(f"metrics written to {path}")
    else:
        print(text)
    return text
