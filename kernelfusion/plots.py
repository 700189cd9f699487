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

from .replication import spread_label, spread_summary


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


def dark_share_plot(images, threshold: float, where: str = "object"):
    """Each image's share of dark pixels (measured on `where`) with the black rule's threshold:
    by colour and object kind where the source recorded them (synthetic), else by evaluation
    group (photographs, whose colour nobody recorded)."""
    import matplotlib.pyplot as plt
    import pandas as pd
    import seaborn as sns

    from .data import GROUPS
    from .synthetic import COLOUR_NAMES

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
    names = list(embeddings)
    for m, name in enumerate(names):
        xy = np.asarray(embeddings[name])
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


def results_plot(summary, metrics: list[str], title: str = "") -> go.Figure:
    """Mean and 95% interval per model, one panel per metric, reference values dashed; hover a
    point for the mean, the interval and the number of seeds."""
    from plotly.subplots import make_subplots

    from .fusion import MODELS

    fig = make_subplots(rows=1, cols=len(metrics), shared_yaxes=True, subplot_titles=metrics)
    order = [m for m in [*MODELS, "p(black) x p(cat)"] if m in set(summary["model"])]
    for col, metric in enumerate(metrics, 1):
        part = summary[summary["metric"] == metric].set_index("model")
        models = [m for m in order if m in part.index]
        rows = part.loc[models]
        fig.add_trace(
            go.Scatter(
                x=rows["mean"],
                y=models,
                mode="markers",
                marker={"size": 8},
                error_x={"type": "data", "array": rows["ci95"].fillna(0)},
                customdata=np.stack([rows["ci95"], rows["seeds"]], 1),
                hovertemplate="%{y}<br>mean %{x:.3f} ± %{customdata[0]:.3f}"
                " (95% interval, %{customdata[1]} seeds)<extra></extra>",
                showlegend=False,
            ),
            row=1,
            col=col,
        )
        for name, row in part[part.index.str.startswith("reference")].iterrows():
            fig.add_vline(
                x=row["mean"],
                line_dash="dash",
                line_color="grey",
                row=1,
                col=col,
                annotation_text=name.replace("reference: ", ""),
                annotation_textangle=-90,
                annotation_font_size=9,
            )
        fig.update_xaxes(range=[0, 1], row=1, col=col)
    fig.update_yaxes(autorange="reversed")
    fig.update_layout(
        height=140 + 28 * len(order), title=title, margin={"l": 10, "r": 10, "t": 60, "b": 10}
    )
    return fig


def differences_plot(tables: dict[str, object], title: str = "") -> go.Figure:
    """Paired differences (model minus rival, mean and 95% interval over seeds), one panel per
    metric, a line at zero; hover gives the interval, the Holm-adjusted p-value and the
    verdict. `tables`: metric -> the table of `analysis.paired_differences`."""
    from plotly.subplots import make_subplots

    metrics = [m for m, t in tables.items() if len(t)]
    fig = make_subplots(
        rows=1,
        cols=len(metrics),
        shared_yaxes=True,
        subplot_titles=metrics,
        horizontal_spacing=0.04,
    )
    colours = {"better": "#2a9d8f", "worse": "#e76f51", "not distinguishable": "#6c757d"}
    for col, metric in enumerate(metrics, 1):
        table = tables[metric]
        for verdict, colour in colours.items():
            part = table[table["verdict"] == verdict]
            fig.add_trace(
                go.Scatter(
                    x=part["difference"],
                    # descriptive rivals are corrected in their own family: say so on the axis
                    y=[
                        f"{r} (descriptive)" if role == "descriptive" else r
                        for r, role in zip(part.index, part["role"], strict=True)
                    ],
                    mode="markers",
                    name=verdict,
                    legendgroup=verdict,
                    showlegend=col == 1,
                    marker={"color": colour, "size": 8},
                    error_x={"type": "data", "array": part["ci95"].fillna(0)},
                    customdata=np.stack([part["low"], part["high"], part["p (Holm)"]], 1)
                    if len(part)
                    else None,
                    hovertemplate="%{y}: %{x:+.3f} [%{customdata[0]:+.3f}, %{customdata[1]:+.3f}]"
                    "<br>p (Holm) %{customdata[2]:.3g}<extra>" + verdict + "</extra>",
                ),
                row=1,
                col=col,
            )
        fig.add_vline(x=0, line_color="black", line_width=1, row=1, col=col)
    fig.update_yaxes(autorange="reversed")
    n = max((len(t) for t in tables.values()), default=1)
    fig.update_layout(
        height=200 + 28 * n,
        title=title,
        margin={"l": 10, "r": 10, "t": 80, "b": 10},
        legend={"orientation": "h", "y": -0.08, "x": 0},  # below: the panels keep the width
    )
    fig.update_annotations(font_size=11)
    return fig


def label_efficiency_plot(summary, models: list[str], metric: str = "probe F1") -> go.Figure:
    """Probe `metric` against labelled images per group (log axis), mean and 95% interval over
    seeds, one line per model."""
    part = summary[summary["metric"].str.startswith(f"{metric} @ ")]
    fig = go.Figure()
    for model in models:
        rows = part[part["model"] == model].copy()
        if rows.empty:
            continue
        rows["n"] = rows["metric"].str.split("@ ").str[1].astype(int)
        rows = rows.sort_values("n")
        fig.add_trace(
            go.Scatter(
                x=rows["n"],
                y=rows["mean"],
                mode="lines+markers",
                name=model,
                error_y={"type": "data", "array": rows["ci95"].fillna(0)},
                customdata=np.stack([rows["ci95"], rows["seeds"]], 1),
                hovertemplate=model + ": %{y:.3f} ± %{customdata[0]:.3f} with %{x} labels per"
                " group (%{customdata[1]} seeds)<extra></extra>",
            )
        )
    fig.update_xaxes(type="log", title="labelled images per group")
    fig.update_yaxes(title=f"black-cat {metric}")
    fig.update_layout(height=460, margin={"l": 10, "r": 10, "t": 40, "b": 10})
    return fig


def spread_plot(frame) -> go.Figure:
    """The original protocol's accuracy for each source model, per kind (one point per model;
    hover for its number and its best random state), with calling nothing a black cat dashed."""
    import plotly.express as px

    fig = px.strip(
        frame,
        x="accuracy",
        y="label",
        hover_data={"model": True, "best accuracy": ":.3f", "label": False},
        labels={"label": "", "accuracy": "accuracy, mean over K-means random states"},
    )
    fig.add_vline(
        x=frame.attrs["call nothing"],
        line_dash="dash",
        line_color="grey",
        annotation_text="call nothing a black cat",
        annotation_font_size=9,
    )
    fig.update_xaxes(range=[0, 1])
    fig.update_layout(height=420, margin={"l": 10, "r": 10, "t": 30, "b": 10})
    return fig


def ablation_plot(long, model: str = "generated F(cat CNN)") -> go.Figure:
    """For one generated model: each variant's paired difference with each rival (mean and 95%
    interval over the arm's seeds), one panel per metric, a line at zero."""
    import plotly.express as px

    part = long[long["model"] == model].copy()
    part["plus"] = part["high"] - part["difference"]
    fig = px.scatter(
        part,
        x="difference",
        y="variant",
        color="rival",
        facet_col="metric",
        error_x="plus",
        hover_data={
            "low": ":+.3f",
            "high": ":+.3f",
            "p (Holm)": ":.3g",
            "verdict": True,
            "seeds": True,
            "plus": False,
        },
        labels={"difference": f"{model} minus rival", "variant": ""},
    )
    fig.update_traces(marker={"size": 8})
    fig.add_vline(x=0, line_color="black", line_width=1)
    fig.update_layout(
        height=180 + 40 * part["variant"].nunique(),
        margin={"l": 10, "r": 10, "t": 40, "b": 10},
        legend={"orientation": "h", "y": -0.15, "x": 0},
    )
    fig.for_each_annotation(lambda a: a.update(text=a.text.replace("metric=", "")))
    return fig


def showcase_plot(shown, spread, claim: float):
    """The original's protocol in one picture: each showcase model's accuracy at the
    original's random states (dot) and its range over other states (bar); below, the
    translated zoo models' 5-95% range with its median; calling nothing a black cat dashed,
    the original's claimed accuracy dotted."""
    import matplotlib.pyplot as plt

    rows = [
        (label, r["accuracy at its states"], r["lowest"], r["highest"])
        for label, r in shown.iterrows()
    ]
    table = spread_summary(spread)
    for direction in ("cat->black", "black->cat"):
        label = spread_label(direction, "generated")
        r = table.loc[label]
        rows.append(
            (
                f"{label}: {int(r['models'])} models, median and 5-95%",
                r["median accuracy"],
                r["5% accuracy"],
                r["95% accuracy"],
            )
        )
    fig, ax = plt.subplots(figsize=(7.5, 0.38 * len(rows) + 1.0))
    for y, (label, value, low, high) in enumerate(rows):
        colour = "C3" if label.startswith("generated") else "C0"
        ax.plot([low, high], [y, y], color=colour, linewidth=3, alpha=0.35)
        ax.plot(value, y, "o", color=colour)
    ax.set_yticks(range(len(rows)), [r[0] for r in rows], fontsize=8)
    ax.invert_yaxis()
    ax.axvline(shown.attrs["call nothing"], color="grey", linestyle="--", linewidth=1)
    ax.axvline(claim, color="black", linestyle=":", linewidth=1)
    ax.text(shown.attrs["call nothing"], -0.9, "call nothing\na black cat", fontsize=7, ha="center")
    ax.text(claim, -0.9, "original's\nclaim", fontsize=7, ha="center")
    ax.set_xlim(0.3, 1.0)
    ax.set_xlabel("accuracy under the original protocol (dot: its random states; bar: others)")
    fig.tight_layout()
    return fig
