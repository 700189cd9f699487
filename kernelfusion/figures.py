"""The figures the chapters share, and the plotly display that works in the offline book.

In a papermill kernel plotly's default output is only its own mime type, which the book's
renderer drops; `show` emits `text/html` that calls the page's local `plotly.min.js` (copied into
the book by `kernelfusion.build.book`) and keeps plotly's mime type so JupyterLab still draws it.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import plotly.graph_objects as go
import plotly.io as pio
import torch

from .data import CLASS_NAMES, GROUPS, SET_NAMES, mean_luminance
from .fusion import label as model_label
from .synthetic import COLOUR_NAMES


def show(fig: go.Figure, post_script: str | None = None) -> None:
    """Display `fig` as HTML that needs no network, plus plotly's own mime type. `post_script`
    is JavaScript run after the figure is drawn ('{plot_id}' names its div)."""
    from IPython.display import display

    html = pio.to_html(
        fig,
        include_plotlyjs=False,
        full_html=False,
        post_script=post_script,
        config={"responsive": True},
    )
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

    fig, axes = plt.subplots(1, 3, figsize=(12, 3.2), sharex=True)
    for ax, name in zip(axes, SET_NAMES, strict=True):
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


def dark_share_plot(images, threshold: float, where: str = "object"):
    """Each image's share of dark pixels (measured on `where`) with the black rule's threshold:
    by colour and object kind where the source recorded them (synthetic), else by evaluation
    group (photographs, whose colour nobody recorded)."""
    import matplotlib.pyplot as plt
    import pandas as pd
    import seaborn as sns

    measured = ~torch.isnan(images.dark_fraction)
    known = bool((images.colours[measured] >= 0).all()) and bool(measured.any())
    frame = pd.DataFrame({"share of dark pixels": images.dark_fraction[measured].numpy()})
    if known:
        frame["colour"] = [COLOUR_NAMES[i] for i in images.colours[measured].tolist()]
        frame["object"] = ["cat" if k == 1 else "other shape" for k in images.kinds[measured]]
        x, hue, order = "colour", "object", [c for c in COLOUR_NAMES if c in set(frame["colour"])]
    else:
        frame["group"] = [GROUPS[g] for g in images.groups[measured].tolist()]
        x, hue, order = "group", None, [g for g in GROUPS if g in set(frame["group"])]
    fig, ax = plt.subplots(figsize=(9, 3.4))
    sns.stripplot(
        frame,
        x=x,
        y="share of dark pixels",
        hue=hue,
        dodge=hue is not None,
        size=3,
        alpha=0.6,
        ax=ax,
        order=order,
    )
    ax.axhline(threshold, color="k", linestyle="--", linewidth=1)
    ax.text(
        0.01,
        threshold + 0.02,
        f"black rule: share >= {threshold}",
        transform=ax.get_yaxis_transform(),
    )
    ax.set_title(f"share of dark pixels in {where}, by {x}")
    fig.tight_layout()
    return fig


def training_curves(history: dict[str, list[dict]]):
    """Train loss and validation balanced accuracy per epoch, one line per CNN."""
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 3.2))
    for name, rows in history.items():
        epochs = [r["epoch"] for r in rows]
        left.plot(epochs, [r["train loss"] for r in rows], marker="o", ms=3, label=f"{name} CNN")
        right.plot(
            epochs,
            [r["val balanced accuracy"] for r in rows],
            marker="o",
            ms=3,
            label=f"{name} CNN",
        )
    left.set(xlabel="epoch", ylabel="train loss (class-weighted)", title="training loss")
    right.set(xlabel="epoch", ylabel="balanced accuracy", title="validation", ylim=(0.4, 1.02))
    right.axhline(0.5, color="grey", linestyle=":", linewidth=1)
    if not any(history.values()):  # source CNNs read from the original's published models
        for ax in (left, right):
            ax.text(
                0.5,
                0.5,
                "read, not trained here:\nno training history",
                ha="center",
                va="center",
                transform=ax.transAxes,
            )
    else:
        left.legend()
    fig.tight_layout()
    return fig


def confusion_heatmaps(matrices: dict[str, list[list[int]]], class_names: dict[str, list[str]]):
    """One annotated seaborn heatmap per confusion matrix (rows: truth, columns: prediction)."""
    import matplotlib.pyplot as plt
    import seaborn as sns

    fig, axes = plt.subplots(1, len(matrices), figsize=(3.6 * len(matrices), 3.0))
    for ax, (name, matrix) in zip(np.atleast_1d(axes), matrices.items(), strict=True):
        names = class_names[name]
        sns.heatmap(
            np.array(matrix),
            annot=True,
            fmt="d",
            cmap="Blues",
            cbar=False,
            ax=ax,
            xticklabels=names,
            yticklabels=names,
        )
        ax.set(xlabel="predicted", ylabel="true", title=name)
    fig.tight_layout()
    return fig


def value_heatmap(table, title: str = "", fmt: str = ".2f", cmap: str = "viridis", **kwargs):
    """An annotated seaborn heatmap of a pandas table."""
    import matplotlib.pyplot as plt
    import seaborn as sns

    fig, ax = plt.subplots(figsize=(1.3 * table.shape[1] + 2.5, 0.45 * table.shape[0] + 1.2))
    sns.heatmap(table, annot=True, fmt=fmt, cmap=cmap, ax=ax, **kwargs)
    ax.set_title(title)
    fig.tight_layout()
    return fig


def kernel_patches(kernels: torch.Tensor) -> torch.Tensor:
    """RGB patches (N, 3, 5, 5) in [0, 1] from layer-1 kernels, each normalised on its own."""
    low = kernels.flatten(1).min(1).values.view(-1, 1, 1, 1)
    high = kernels.flatten(1).max(1).values.view(-1, 1, 1, 1)
    return (kernels - low) / (high - low).clamp(min=1e-12)


def kernel_grids(domains: dict[str, torch.Tensor], count: int = 32, columns: int = 16):
    """Layer-1 filters as RGB patches, one titled block of rows per domain."""
    import matplotlib.pyplot as plt

    rows = int(np.ceil(count / columns))
    fig = plt.figure(figsize=(columns * 0.55, len(domains) * (rows * 0.6 + 0.4)))
    for subfigure, (name, kernels) in zip(
        np.atleast_1d(fig.subfigures(len(domains), 1)), domains.items(), strict=True
    ):
        axes = np.atleast_2d(subfigure.subplots(rows, columns))
        patches = to_display_images(kernel_patches(kernels[:count]))
        for i, ax in enumerate(axes.ravel()):
            ax.axis("off")
            if i < len(patches):
                ax.imshow(patches[i], interpolation="nearest")
        subfigure.suptitle(name, fontsize=9, x=0.02, ha="left")
    return fig


def kernel_statistics(frame):
    """Distributions of kernel norm, high-frequency share and mean weight per channel."""
    import matplotlib.pyplot as plt
    import seaborn as sns

    columns = [c for c in frame.columns if c not in ("domain", "layer")]
    fig, axes = plt.subplots(1, len(columns), figsize=(3.2 * len(columns), 3.0))
    for ax, column in zip(np.atleast_1d(axes), columns, strict=True):
        sns.violinplot(
            frame,
            x="layer",
            y=column,
            hue="domain",
            split=True,
            inner="quart",
            ax=ax,
            cut=0,
            density_norm="width",
        )
        ax.set_title(column, fontsize=9)
        ax.set_ylabel("")
        if ax is not np.atleast_1d(axes)[-1]:
            ax.get_legend().remove() if ax.get_legend() else None
    fig.tight_layout()
    return fig


def cosine_heatmap(matrix: torch.Tensor, split: int, labels=("black", "cat"), title: str = ""):
    """A cosine-similarity heatmap with a line between the two domains' blocks."""
    import matplotlib.pyplot as plt
    import seaborn as sns

    fig, ax = plt.subplots(figsize=(5.2, 4.4))
    sns.heatmap(
        matrix.numpy(),
        cmap="RdBu_r",
        vmin=-1,
        vmax=1,
        ax=ax,
        xticklabels=False,
        yticklabels=False,
        square=True,
    )
    ax.axhline(split, color="k", linewidth=1)
    ax.axvline(split, color="k", linewidth=1)
    ax.set_xlabel(f"{labels[0]} filters | {labels[1]} filters")
    ax.set_ylabel(f"{labels[0]} filters | {labels[1]} filters")
    ax.set_title(title)
    fig.tight_layout()
    return fig


def gan_losses(history: dict[str, dict[str, list[float]]], smooth: int = 25):
    """CycleGAN loss terms per layer (moving averages): adversarial, D, cycle and identity."""
    import matplotlib.pyplot as plt

    groups = {
        "generators (LSGAN)": ("loss_G_A", "loss_G_B"),
        "discriminators": ("loss_D_A", "loss_D_B"),
        "cycle (x weight)": ("loss_cycle_A", "loss_cycle_B"),
        "identity (x weight)": ("loss_idt_A", "loss_idt_B"),
    }
    names = {"A": "black->cat", "B": "cat->black"}
    if not history:  # the original's published generators: trained by the original, not here
        fig, ax = plt.subplots(figsize=(6, 1.2))
        ax.text(0.5, 0.5, "read, not trained here: no training history", ha="center")
        ax.set_axis_off()
        return fig
    fig, axes = plt.subplots(len(history), 4, figsize=(14, 2.8 * len(history)), squeeze=False)
    for row, (layer, losses) in enumerate(history.items()):
        for col, (title, keys) in enumerate(groups.items()):
            ax = axes[row, col]
            for key in keys:
                values = np.asarray(losses[key])
                window = max(1, min(smooth, len(values) // 5))
                averaged = np.convolve(values, np.ones(window) / window, mode="valid")
                label = (
                    names[key[-1]] if "D" not in key else ("D_cat" if key[-1] == "A" else "D_black")
                )
                ax.plot(averaged, label=label, linewidth=1)
            ax.set_title(f"{layer}: {title}", fontsize=9)
            ax.set_xlabel("step")
            ax.legend(fontsize=7)
    fig.tight_layout()
    return fig


def convergence_curve(curve, history: dict[str, dict[str, list[float]]], smooth: int = 25):
    """Chapter 04's convergence curve: the generated CNN's probe F1 and ROC AUC at each kept
    step of the CycleGAN's run (`gan_checks.convergence`), beside each layer's cycle loss."""
    import matplotlib.pyplot as plt

    if curve.empty:  # the original's published generators: trained by the original, not here
        fig, ax = plt.subplots(figsize=(6, 1.2))
        ax.text(0.5, 0.5, "read, not trained here: no run to follow", ha="center")
        ax.set_axis_off()
        return fig
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 3.2))
    for column, marker in (("probe F1", "o"), ("probe ROC AUC", "s")):
        left.plot(curve["step"], curve[column], marker=marker, label=f"F(cat CNN): {column}")
    left.set_xlabel("CycleGAN step")
    left.set_ylabel("on the evaluation set")
    left.set_title("the generated CNN along the run", fontsize=9)
    left.legend(fontsize=7)
    for layer, losses in history.items():
        values = np.asarray(losses["loss_cycle_B"])  # cat -> black -> cat: F's cycle
        window = max(1, min(smooth, len(values) // 5))
        averaged = np.convolve(values, np.ones(window) / window, mode="valid")
        right.plot(np.arange(window, len(values) + 1), averaged, label=layer, linewidth=1)
    right.set_xlabel("CycleGAN step")
    right.set_title("cycle loss cat -> black -> cat (x weight)", fontsize=9)
    right.legend(fontsize=7)
    fig.tight_layout()
    return fig


def thumbnails(images: torch.Tensor, scale: int = 3) -> list[str]:
    """Each uint8 image as a small PNG data URI (enlarged `scale` times, pixels kept sharp)."""
    import base64
    import io

    from PIL import Image

    uris = []
    for picture in images:
        image = Image.fromarray(picture.permute(1, 2, 0).numpy())
        image = image.resize((image.width * scale, image.height * scale), Image.Resampling.NEAREST)
        buffer = io.BytesIO()
        image.save(buffer, format="PNG", optimize=True)
        uris.append("data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode())
    return uris


THUMBNAIL_SCRIPT = """
var gd = document.getElementById('{plot_id}');
var thumbs = %s;
var box = document.createElement('img');
box.className = 'kf-thumbnail';
box.style.cssText = 'position:absolute;display:none;width:96px;height:96px;' +
  'image-rendering:pixelated;border:2px solid #333;pointer-events:none;z-index:20;background:#fff';
gd.style.position = 'relative';
gd.appendChild(box);
gd.on('plotly_hover', function (event) {
  var point = event.points[0];
  if (point.customdata === undefined) { return; }
  box.src = thumbs[point.customdata];
  box.style.left = (point.xaxis.l2p(point.x) + point.xaxis._offset + 12) + 'px';
  box.style.top = (point.yaxis.l2p(point.y) + point.yaxis._offset + 12) + 'px';
  box.style.display = 'block';
});
gd.on('plotly_unhover', function () { box.style.display = 'none'; });
"""


def umap_explorer(
    embeddings: dict[str, np.ndarray],
    groups: np.ndarray,
    group_names,
    title: str = "UMAP of each model's features",
):
    """One interactive figure: a dropdown picks the model, colours are the evaluation groups,
    and hovering a point shows its image (see `show_umap_explorer`)."""
    import plotly.express as px

    colours = px.colors.qualitative.D3
    fig = go.Figure()
    keys = list(embeddings)  # model ids (or any names), shown by their labels
    names = [model_label(k) for k in keys]
    for m, name in enumerate(names):
        xy = np.asarray(embeddings[keys[m]])
        for g, group in enumerate(group_names):
            members = np.nonzero(groups == g)[0]
            fig.add_trace(
                go.Scatter(
                    x=xy[members, 0],
                    y=xy[members, 1],
                    mode="markers",
                    name=group,
                    legendgroup=group,
                    showlegend=True,
                    visible=m == 0,
                    customdata=members,
                    marker={"size": 6, "opacity": 0.8, "color": colours[g % len(colours)]},
                    hovertemplate=f"{group}<br>image %{{customdata}}<extra>{name}</extra>",
                )
            )
    per = len(group_names)
    buttons = [
        {
            "label": name,
            "method": "update",
            "args": [
                {"visible": [i // per == m for i in range(per * len(names))]},
                {"title.text": f"{title}: {name}"},
            ],
        }
        for m, name in enumerate(names)
    ]
    fig.update_layout(
        title=f"{title}: {names[0]}",
        height=560,
        margin={"l": 10, "r": 10, "t": 90, "b": 10},
        updatemenus=[
            {
                "buttons": buttons,
                "x": 0.0,
                "xanchor": "left",
                "y": 1.13,
                "yanchor": "top",
                "direction": "down",
            }
        ],
        xaxis_title="UMAP 1",
        yaxis_title="UMAP 2",
        legend_title="group",
    )
    return fig


def show_umap_explorer(fig: go.Figure, images: torch.Tensor) -> None:
    """Show `umap_explorer`'s figure with image thumbnails on hover (in the built book)."""
    show(fig, post_script=THUMBNAIL_SCRIPT % json.dumps(thumbnails(images)))
