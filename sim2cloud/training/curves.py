"""The training-curves picture: losses, mAP and precision/recall per epoch, from the metric history.

Drawn with matplotlib's Agg backend and its bundled DejaVu font, so nothing is downloaded; written beside the
history in SageMaker's output data (``output.tar.gz``) so a person can see at a glance whether training
converged.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

CURVES_NAME = "training_curves.png"

_PANELS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("train losses", ("box_loss", "cls_loss", "dfl_loss")),
    ("val losses", ("val_box_loss", "val_cls_loss", "val_dfl_loss")),
    ("mAP", ("mAP50", "mAP50-95")),
    ("precision / recall", ("precision", "recall")),
)


def write_training_curves(history: Sequence[dict[str, float]], out_path: Path) -> Path | None:
    """Draw one panel per metric group against the epoch; None when there is no epoch to draw."""
    entries = [entry for entry in history if "epoch" in entry]
    if not entries:
        return None
    import matplotlib

    matplotlib.use("Agg")  # headless, and never the interactive backends' font discovery
    import matplotlib.pyplot as plt

    epochs = [entry["epoch"] for entry in entries]
    figure, axes = plt.subplots(1, len(_PANELS), figsize=(4 * len(_PANELS), 3.2), dpi=100)
    for axis, (title, names) in zip(axes, _PANELS, strict=True):
        for name in names:
            points = [(e, entry[name]) for e, entry in zip(epochs, entries, strict=True) if name in entry]
            if points:
                axis.plot([p[0] for p in points], [p[1] for p in points], marker="o", markersize=2, label=name)
        axis.set_title(title)
        axis.set_xlabel("epoch")
        axis.grid(alpha=0.3)
        if axis.lines:
            axis.legend(fontsize=7)
    figure.tight_layout()
    out_path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(out_path)
    plt.close(figure)
    return out_path
