"""The figures the chapters share, and the plotly display that works in the offline book.

In a papermill kernel plotly's default output is only its own mime type, which the book's
renderer drops; `show` emits `text/html` that calls the page's local `plotly.min.js` (copied into
the book by `kernelfusion.book`) and keeps plotly's mime type so JupyterLab still draws it.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import plotly.graph_objects as go
import plotly.io as pio
import torch


def show(fig: go.Figure) -> None:
    """Display `fig` as HTML that needs no network, plus plotly's own mime type."""
    from IPython.display import display

    html = pio.to_html(fig, include_plotlyjs=False, full_html=False, config={"responsive": True})
    bundle = {"text/html": html, "application/vnd.plotly.v1+json": json.loads(fig.to_json())}
    display(bundle, raw=True)


def plotly_js_path() -> Path:
    """The installed plotly's own `plotly.min.js` (the book serves this copy, not a CDN)."""
    path = Path(pio.__file__).resolve().parent.parent / "package_data" / "plotly.min.js"
    if not path.is_file():
        raise FileNotFoundError(f"plotly.min.js not found at {path}: reinstall plotly")
    return path


def to_display_images(images: torch.Tensor) -> np.ndarray:
    """(N, 3, H, W) uint8 or float in [0, 1] -> (N, H, W, 3) float array for imshow."""
    array = images.detach().cpu()
    if array.dtype == torch.uint8:
        array = array.float() / 255
    return array.clamp(0, 1).permute(0, 2, 3, 1).numpy()


def image_grid(
    images: torch.Tensor,
    titles: list[str] | None = None,
    columns: int = 8,
    size: float = 1.2,
    title: str = "",
):
    """A matplotlib figure of `images` in a grid, with optional per-image titles."""
    import matplotlib.pyplot as plt

    pictures = to_display_images(images)
    rows = max(1, int(np.ceil(len(pictures) / columns)))
    fig, axes = plt.subplots(rows, columns, figsize=(columns * size, rows * size * 1.2 + 0.4))
    for index, ax in enumerate(np.asarray(axes).ravel()):
        ax.axis("off")
        if index < len(pictures):
            ax.imshow(pictures[index], interpolation="nearest")
            if titles:
                ax.set_title(titles[index], fontsize=8)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig


def scatter(x, y, color, hover: list[str] | None = None, title: str = "", labels=None):
    """An interactive plotly scatter coloured by a categorical `color`."""
    import plotly.express as px

    fig = px.scatter(
        x=x, y=y, color=[str(c) for c in color], hover_name=hover, title=title, labels=labels
    )
    fig.update_traces(marker={"size": 6, "opacity": 0.8})
    fig.update_layout(height=420, margin={"l": 10, "r": 10, "t": 40, "b": 10})
    return fig


def bar(rows: list[dict], x: str, y: str, color: str, title: str = "", log_y: bool = False):
    """An interactive grouped plotly bar chart of `rows` (a list of dicts)."""
    import plotly.express as px

    fig = px.bar(rows, x=x, y=y, color=color, barmode="group", log_y=log_y, title=title)
    fig.update_layout(height=420, margin={"l": 10, "r": 10, "t": 40, "b": 10})
    return fig


def sample_grid(images, by: torch.Tensor, names, per_class: int = 8, title: str = ""):
    """Rows of the first `per_class` images of each class in `by`, labelled with `names`."""
    import matplotlib.pyplot as plt

    rows = [(by == c).nonzero().flatten()[:per_class] for c in range(len(names))]
    fig, axes = plt.subplots(len(rows), per_class, figsize=(per_class * 1.0, len(rows) * 1.1))
    axes = np.atleast_2d(axes)
    for r, index in enumerate(rows):
        pictures = to_display_images(images.images[index])
        for c in range(per_class):
            ax = axes[r, c]
            ax.set_xticks([])
            ax.set_yticks([])
            for spine in ax.spines.values():
                spine.set_visible(False)
            if c < len(pictures):
                ax.imshow(pictures[c], interpolation="nearest")
        axes[r, 0].set_ylabel(names[r], rotation=0, ha="right", va="center", fontsize=9)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig


def brightness_histograms(datasets):
    """Mean image luminance per class, for each of the three sets (what makes 'black' black)."""
    import matplotlib.pyplot as plt
    import pandas as pd
    import seaborn as sns

    from .data import CLASS_NAMES, SETS, mean_luminance

    fig, axes = plt.subplots(1, 3, figsize=(12, 3.2), sharex=True)
    for ax, name in zip(axes, SETS, strict=True):
        part = datasets[name]
        frame = pd.DataFrame(
            {
                "mean luminance": mean_luminance(part.images).numpy(),
                "class": [CLASS_NAMES[name][i] for i in part.labels.tolist()],
            }
        )
        sns.histplot(
            frame,
            x="mean luminance",
            hue="class",
            stat="density",
            common_norm=False,
            element="step",
            bins=30,
            ax=ax,
        )
        ax.set_title(f"{name} set")
    fig.tight_layout()
    return fig


def dark_share_by_colour(images, colour_names, threshold: float):
    """Each object's share of dark pixels, by colour, with the black rule's threshold."""
    import matplotlib.pyplot as plt
    import pandas as pd
    import seaborn as sns

    has_object = ~torch.isnan(images.dark_fraction)
    frame = pd.DataFrame(
        {
            "share of dark pixels": images.dark_fraction[has_object].numpy(),
            "colour": [colour_names[i] for i in images.colours[has_object].tolist()],
            "object": [
                "cat" if k == 1 else "other shape" for k in images.kinds[has_object].tolist()
            ],
        }
    )
    fig, ax = plt.subplots(figsize=(9, 3.4))
    sns.stripplot(
        frame,
        x="colour",
        y="share of dark pixels",
        hue="object",
        dodge=True,
        size=3,
        alpha=0.6,
        ax=ax,
        order=[c for c in colour_names if c in set(frame["colour"])],
    )
    ax.axhline(threshold, color="k", linestyle="--", linewidth=1)
    ax.text(
        0.01,
        threshold + 0.02,
        f"black rule: share >= {threshold}",
        transform=ax.get_yaxis_transform(),
    )
    fig.tight_layout()
    return fig
