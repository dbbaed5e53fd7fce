"""PNG figures of the report tables. Each function takes the table it draws and returns the PNG bytes, so that
the caller writes them (atomically) wherever it wants.

matplotlib is imported inside the functions: ``import avs`` and every command that draws nothing stay as fast
as before. Figures are drawn on a ``Figure`` with the Agg canvas directly, never through pyplot, so no GUI
backend is ever chosen and no global figure state is kept between calls.
"""

from __future__ import annotations

import io

import numpy as np
import pandas as pd


def _figure(width: float, height: float):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _png(fig) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    return buf.getvalue()


def grouped_bars(
    df: pd.DataFrame, title: str, ylabel: str, errors: pd.DataFrame | None = None, xlabel: str | None = None
) -> bytes:
    """One group of bars per row of ``df``, one bar per column (a legend names the columns); ``errors`` (same
    shape) draws error bars."""
    n_rows, n_cols = df.shape
    fig = _figure(max(6.0, 0.25 * n_rows * max(n_cols, 1) + 2.0), 4.0)
    ax = fig.add_subplot()
    x = np.arange(n_rows)
    width = 0.8 / max(n_cols, 1)
    for j, col in enumerate(df.columns):
        err = None if errors is None else errors[col].to_numpy(dtype=float)
        ax.bar(
            x + (j - (n_cols - 1) / 2) * width,
            df[col].to_numpy(dtype=float),
            width,
            yerr=err,
            label=str(col),
            capsize=2 if err is not None else 0,
        )
    ax.set_xticks(x, [str(i) for i in df.index], rotation=90 if n_rows > 12 else 0)
    ax.set_ylabel(ylabel)
    if xlabel:
        ax.set_xlabel(xlabel)
    ax.set_title(title)
    if n_cols > 1:
        ax.legend(fontsize="small")
    return _png(fig)


def per_topic_bars(infap: pd.DataFrame, title: str) -> bytes:
    """infAP per topic (rows) and run (columns)."""
    return grouped_bars(infap, title, "infAP", xlabel="topic")


def label_bars(means: pd.DataFrame, title: str) -> bytes:
    """Mean infAP per label (rows) and run (columns)."""
    return grouped_bars(means, title, "mean infAP")


def attention_bars(stats: pd.DataFrame, title: str) -> bytes:
    """Mean ± std attention weight per feature, one panel per side (``stats``: rows of side, feature, mean,
    std over all spaces, as ``avs.eval.diagnostics.WeightStats.overall`` gives them)."""
    sides = list(dict.fromkeys(stats["side"]))
    fig = _figure(max(6.0, 1.0 * len(stats) + 2.0), 3.5)
    axes = fig.subplots(1, len(sides), squeeze=False)[0]
    for ax, side in zip(axes, sides):
        part = stats[stats["side"] == side]
        ax.bar(part["feature"].astype(str), part["mean"], yerr=part["std"], capsize=3)
        ax.set_title(f"{side} features")
        ax.set_ylim(0, max(1.0, float((part["mean"] + part["std"]).max()) * 1.05))
        ax.set_ylabel("attention weight")
    fig.suptitle(title)
    return _png(fig)


def heatmap(matrix: pd.DataFrame, title: str) -> bytes:
    """A square matrix with values in [0, 1] written in the cells (inter-space Jaccard)."""
    n = len(matrix)
    fig = _figure(max(4.0, 0.6 * n + 2.0), max(3.5, 0.6 * n + 1.5))
    ax = fig.add_subplot()
    values = matrix.to_numpy(dtype=float)
    im = ax.imshow(values, vmin=0.0, vmax=1.0, cmap="viridis")
    labels = [str(c) for c in matrix.columns]
    ax.set_xticks(range(n), labels)
    ax.set_yticks(range(n), [str(i) for i in matrix.index])
    for i in range(n):
        for j in range(n):
            ax.text(
                j,
                i,
                f"{values[i, j]:.2f}",
                ha="center",
                va="center",
                fontsize=8,
                color="black" if values[i, j] > 0.5 else "white",
            )
    fig.colorbar(im, ax=ax)
    ax.set_title(title)
    return _png(fig)


__all__ = ["grouped_bars", "per_topic_bars", "label_bars", "attention_bars", "heatmap"]
