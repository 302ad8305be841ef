"""PNG figures of samples and of sample quality, drawn with matplotlib's Agg backend (no display).

- :func:`save_image_grid`: a grid of grayscale images ``(N, 1, H, W)``;
- :func:`save_scatter`: a scatter plot of 2-D points ``(N, 2)``;
- :func:`save_quality_vs_nfe`: quality (lower is better) against score evaluations per sample,
  one line per sampler family.

Each function writes one PNG and returns its path; figures are closed afterwards. matplotlib (the
``plot`` extra) is imported on the first figure, so this module imports without it; :func:`available`
says whether figures can be drawn and :data:`NO_PICTURES` is the note to show when they cannot.
"""

from __future__ import annotations

import functools
import math
import os
from collections.abc import Sequence
from pathlib import Path

import torch

from sdekit.errors import InputValueError
from sdekit_score.evaluation.data import MissingExtraError, import_extra

__all__ = ["NO_PICTURES", "available", "save_image_grid", "save_quality_vs_nfe", "save_scatter"]

NO_PICTURES = "no PNG pictures: they need matplotlib: pip install 'sdekit[plot]'"


@functools.cache
def _pyplot():
    """``matplotlib.pyplot`` on the Agg backend (no display)."""
    matplotlib = import_extra("matplotlib", "matplotlib", "plot", "drawing PNG pictures")
    matplotlib.use("Agg")
    return import_extra("matplotlib.pyplot", "matplotlib", "plot", "drawing PNG pictures")


def available() -> bool:
    """Whether matplotlib can be imported, i.e. whether the ``save_*`` functions work."""
    try:
        _pyplot()
    except MissingExtraError:
        return False
    return True


def save_image_grid(
    images: torch.Tensor,
    path: str | os.PathLike,
    *,
    data_range: tuple[float, float] = (0.0, 1.0),
    title: str | None = None,
    columns: int | None = None,
) -> Path:
    """Save grayscale images ``(N, 1, H, W)`` in ``data_range`` as one PNG grid.

    Values outside ``data_range`` are clipped; ``columns`` defaults to ``ceil(sqrt(N))``.
    """
    if images.ndim != 4 or images.shape[1] != 1:
        raise InputValueError(f"expected grayscale images (N, 1, H, W), got {tuple(images.shape)}")
    n, _, height, width = images.shape
    columns = columns or math.ceil(math.sqrt(n))
    rows = math.ceil(n / columns)
    lo, hi = data_range
    pixels = ((images.detach().cpu().float() - lo) / (hi - lo)).clamp(0.0, 1.0)
    canvas = torch.full((rows * (height + 1) + 1, columns * (width + 1) + 1), 0.25)
    for k, image in enumerate(pixels[:, 0]):
        top, left = 1 + (k // columns) * (height + 1), 1 + (k % columns) * (width + 1)
        canvas[top : top + height, left : left + width] = image
    fig, ax = _pyplot().subplots(figsize=(0.4 * columns + 0.4, 0.4 * rows + 0.8))
    ax.imshow(canvas.numpy(), cmap="gray_r", vmin=0.0, vmax=1.0, interpolation="nearest")
    ax.set_axis_off()
    if title:
        ax.set_title(title, fontsize=9)
    return _save(fig, path)


def save_scatter(
    points: torch.Tensor,
    path: str | os.PathLike,
    *,
    reference: torch.Tensor | None = None,
    title: str | None = None,
) -> Path:
    """Save 2-D points ``(N, 2)`` as a scatter plot, over ``reference`` points if given."""
    if points.ndim != 2 or points.shape[1] != 2:
        raise InputValueError(f"expected 2-D points (N, 2), got {tuple(points.shape)}")
    fig, ax = _pyplot().subplots(figsize=(4.5, 4.5))
    if reference is not None:
        ref = reference.detach().cpu().float()
        ax.scatter(ref[:, 0], ref[:, 1], s=2, c="0.75", label="target")
    xy = points.detach().cpu().float()
    ax.scatter(xy[:, 0], xy[:, 1], s=2, c="C0", label="samples")
    ax.set_aspect("equal")
    ax.legend(loc="upper right", fontsize=8, markerscale=4)
    if title:
        ax.set_title(title, fontsize=9)
    return _save(fig, path)


def save_quality_vs_nfe(
    rows: Sequence[dict],
    path: str | os.PathLike,
    *,
    metric: str = "fd",
    ylabel: str = "Fréchet distance (lower is better)",
    title: str | None = None,
) -> Path:
    """Plot ``row[metric]`` against ``row["nfe"]`` (log scale), one line per ``row["sampler"]``.

    Rows of one sampler (e.g. EM at several step counts) are joined in order of NFE; each point is
    annotated with ``row["label"]`` when present.
    """
    fig, ax = _pyplot().subplots(figsize=(6.0, 4.0))
    for k, name in enumerate(dict.fromkeys(row["sampler"] for row in rows)):
        points = sorted(
            (r["nfe"], r[metric], r.get("label", "")) for r in rows if r["sampler"] == name
        )
        ax.plot(
            [p[0] for p in points], [p[1] for p in points], marker="o", color=f"C{k}", label=name
        )
        for x, y, label in points:
            if label:
                ax.annotate(label, (x, y), textcoords="offset points", xytext=(4, 4), fontsize=7)
    ax.set_xscale("log")
    ax.set_xlabel("score evaluations per sample (NFE)")
    ax.set_ylabel(ylabel)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    if title:
        ax.set_title(title, fontsize=9)
    return _save(fig, path)


def _save(fig, path: str | os.PathLike) -> Path:
    """Write ``fig`` as a PNG at ``path`` (parents created) and close it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, format="png", dpi=120)
    _pyplot().close(fig)
    return path
