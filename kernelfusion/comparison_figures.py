"""The results' figures (chapters 05-09): models and metrics with their intervals over seeds,
paired differences, label efficiency, the ablation's arms, and the original protocol's showcase
and spread. Models arrive keyed by id and are drawn with their labels.
"""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go

from .fusion import MODELS
from .fusion import label as model_label
from .original_protocol import spread_label, spread_summary
from .report import SHOWN_METRICS


def results_plot(summary, metrics: list[str], title: str = "") -> go.Figure:
    """Mean and 95% interval per model, one panel per metric, reference values dashed; hover a
    point for the mean, the interval and the number of seeds."""
    from plotly.subplots import make_subplots

    fig = make_subplots(rows=1, cols=len(metrics), shared_yaxes=True, subplot_titles=metrics)
    order = [m for m in [*MODELS, "and"] if m in set(summary["model"])]
    for col, metric in enumerate(metrics, 1):
        part = summary[summary["metric"] == metric].set_index("model")
        models = [m for m in order if m in part.index]
        rows = part.loc[models]
        fig.add_trace(
            go.Scatter(
                x=rows["mean"],
                y=[model_label(m) for m in models],
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


def rival_differences_plot(tables: dict[str, object], model: str) -> go.Figure:
    """Chapter 07's figure for one generated CNN (an id): its paired differences with every
    rival on the metrics of `report.SHOWN_METRICS`."""
    shown = {metric: tables[metric] for metric in SHOWN_METRICS}
    return differences_plot(shown, title=f"{model_label(model)} minus each rival")


def differences_plot(tables: dict[str, object], title: str = "") -> go.Figure:
    """Paired differences (model minus rival, mean and 95% interval over seeds), one panel per
    metric, a line at zero; hover gives the interval, the Holm-adjusted p-value and the
    verdict. `tables`: metric -> the table of `stats.paired_differences`."""
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
                        f"{model_label(r)} (descriptive)"
                        if role == "descriptive"
                        else model_label(r)
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
        margin={"l": 10, "r": 10, "t": 80, "b": 60},
        # in the figure's bottom margin, below the x axes: inside the plot area it sat on them
        legend={"orientation": "h", "yref": "container", "y": 0, "yanchor": "bottom", "x": 0},
    )
    fig.update_annotations(font_size=11)
    return fig


def label_efficiency_plot(summary, models: list[str], metric: str = "probe F1") -> go.Figure:
    """Probe `metric` against labelled images per group (log axis), mean and 95% interval over
    seeds, one line per model."""
    part = summary[summary["metric"].str.startswith(f"{metric} @ ")]
    fig = go.Figure()
    for key in models:
        rows = part[part["model"] == key].copy()
        if rows.empty:
            continue
        model = model_label(key)
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


def ablation_plot(long, model: str = "gen_f") -> go.Figure:
    """For one generated model: each variant's paired difference with each rival (mean and 95%
    interval over the arm's seeds), one panel per metric, a line at zero."""
    import plotly.express as px

    part = long[long["model"] == model].copy()
    part["plus"] = part["high"] - part["difference"]
    part["rival"] = part["rival"].map(model_label)
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
        labels={"difference": f"{model_label(model)} minus rival", "variant": ""},
    )
    fig.update_traces(marker={"size": 8})
    fig.add_vline(x=0, line_color="black", line_width=1)
    fig.update_layout(
        height=280 + 40 * part["variant"].nunique(),
        margin={"l": 10, "r": 10, "t": 40, "b": 120},  # the x-axis title, then the legend
        # in the figure's bottom margin, below the x-axis title: inside the plot area it sat on it
        legend={"orientation": "h", "yref": "container", "y": 0, "yanchor": "bottom", "x": 0},
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
        (model_label(key), r["accuracy at its states"], r["lowest"], r["highest"])
        for key, r in shown.iterrows()
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
