"""The original's own protocol, as it ran it: its showcase model at its fixed random states, and
the spread over many source models of the zoo.

The original judged one generated CNN (made from source model 1234) by one run of its protocol:
features of its 89 test photographs, a 2-D UMAP of them alone (`random_state=47`), K-means with
2 clusters (`random_state=1`), the cluster holding most black cats called "black cat", and the
accuracy of that call. `showcase` repeats exactly that for this run's generated CNNs and their
controls, then over other random states; `protocol_spread` runs the protocol (over
`analysis.protocol_states` random states) on `analysis.protocol_models` source models of each
zoo, translated and not, beside same-size noise and a random CNN, with paired differences.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch

from . import original
from .cnn import build, features, load_state
from .config import Config, resolve_device
from .cyclegan import KernelGan
from .data import Datasets
from .evaluate import protocol_run, protocol_sample
from .fusion import Models, generated, label, with_noise
from .machine import derive_seed, generator
from .measures import BLACK_CAT, as_original_ran_it
from .progress import bar as progress_bar
from .stage_keys import stage_key
from .stats import holm, paired_t_p, t_interval, verdicts_from
from .store import Store
from .training import unstack
from .words import source_words

# --- the showcase: the original's one model, as it ran it ---------------------------------------

# The models the showcase judges (ids of models.MODELS), in the order of its table.
SHOWCASE = ("gen_f", "gen_g", "cat", "black", "noise", "random")


def make_showcase(
    cfg: Config, store: Store, datasets: Datasets, models: Models, *, progress: bool = True
) -> pd.DataFrame:
    """Each model of SHOWCASE under the original protocol on the protocol's images (every
    photograph at the `original` preset), at the original's fixed random states
    (`original.PROTOCOL_STATES`) and over `analysis.protocol_states` other pairs of random
    states (UMAP and K-means): one row per model, with the images' "call nothing" accuracy."""
    device = resolve_device(cfg.device)

    def build_stage(writer) -> None:
        groups, images, reference = protocol_images(cfg, datasets)
        rows = []
        for key in progress_bar(SHOWCASE, desc="showcase", progress=progress):
            x = features(models.cnns[key], images, device).numpy()
            name = label(key)  # the random streams' names, from when models were keyed so
            fixed = as_original_ran_it(
                x, groups, original.PROTOCOL_STATES["umap"], original.PROTOCOL_STATES["kmeans"]
            )
            states = [
                as_original_ran_it(
                    x,
                    groups,
                    derive_seed(cfg.seed, "showcase umap", name, i) % 2**31,
                    derive_seed(cfg.seed, "showcase k-means", name, i) % 2**31,
                )["accuracy"]
                for i in range(cfg.analysis.protocol_states)
            ]
            # the spread's protocol on the same features, so the two tables compare
            spread_like = protocol_run(x, groups, cfg, cfg.seed, "showcase", name)
            rows.append(
                {
                    "model": key,
                    "accuracy at its states": fixed["accuracy"],
                    "precision at its states": fixed["precision"],
                    "recall at its states": fixed["recall"],
                    "mean over states": float(np.mean(states)),
                    "lowest": float(np.min(states)),
                    "highest": float(np.max(states)),
                    "spread's protocol": spread_like["accuracy"],
                }
            )
        states = cfg.analysis.protocol_states
        writer.save_json("showcase", {"rows": rows, "states": states} | reference)

    artifact = store.stage(
        "showcase",
        stage_key(cfg, "showcase"),
        build_stage,
        inputs=[datasets.artifact, models.artifact],
    )
    result = artifact.json("showcase")
    frame = pd.DataFrame(result["rows"]).set_index("model")
    frame.attrs |= {k: v for k, v in result.items() if k != "rows"}
    return frame


def protocol_images(cfg: Config, datasets) -> tuple[np.ndarray, torch.Tensor, dict]:
    """The original protocol's images (`evaluate.protocol_sample` of the whole evaluation set,
    the labelled part included: every photograph at `original`), their groups, and what the
    tables say of them: their count, the black cats among them, and the accuracy of calling
    none a black cat."""
    all_groups = datasets.eval.groups.numpy()
    chosen = protocol_sample(len(all_groups), cfg, cfg.seed)
    groups = all_groups[chosen]
    reference = {
        "call nothing": float(np.mean(groups != BLACK_CAT)),
        "images": int(len(chosen)),
        "black cats": int((groups == BLACK_CAT).sum()),
    }
    return groups, datasets.eval.images[torch.as_tensor(chosen)], reference


# --- the spread over source models ---------------------------------------------------------------

DIRECTIONS = {"cat->black": "cat", "black->cat": "black"}  # translation -> the zoo it reads
KINDS = ("generated", "source", "noise", "random")
CONTROLS = ("source", "noise", "random")


def spread_label(direction: str, kind: str) -> str:
    """The display label of one kind of model in the spread."""
    domain = DIRECTIONS[direction]
    net = "F" if direction == "cat->black" else "G"
    return {
        "generated": f"generated {net}(zoo {domain} CNN)",
        "source": f"zoo {domain} CNN (unchanged)",
        "noise": f"zoo {domain} CNN + same-size noise",
        "random": f"random CNN (beside the {domain} zoo)",
    }[kind]


def make_spread(
    cfg: Config, store: Store, datasets: Datasets, gan: KernelGan, *, progress: bool = True
) -> pd.DataFrame:
    """The original protocol (2-means on a label-free UMAP of the protocol's images'
    features, `evaluate.protocol_sample`, the cluster with most black cats called "black
    cat", `analysis.protocol_states` K-means random states) run as the original ran it, on one
    source model at a time: `analysis.protocol_models` models of the cat zoo translated by F
    and as many of the black zoo translated by G (the original ran both, its models A and B),
    each beside itself unchanged, itself plus noise of the translation's size, and a random
    CNN. The original reported one source model (its number 1234); this is the spread its
    number came from. Returns a long table: direction, kind, model number, mean and best
    accuracy over the states."""
    device = resolve_device(cfg.device)

    def build_stage(writer) -> None:
        groups, images, reference = protocol_images(cfg, datasets)
        rows = []
        for direction, domain in DIRECTIONS.items():
            params = gan.zoo_artifact.tensors(f"{domain}_models")
            numbers = gan.zoo_artifact.json("summary")[domain].get("model numbers")
            count = len(params["conv1.weight"])
            rng = generator(cfg.seed, "protocol spread", *(() if domain == "cat" else (domain,)))
            chosen = torch.randperm(count, generator=rng)[: cfg.analysis.protocol_models]
            desc = f"protocol per {domain} model"
            for k in progress_bar(chosen.tolist(), desc=desc, progress=progress):
                source = load_state(cfg, unstack(params, k))
                translated = generated(source, gan, direction)
                tag = (k,) if domain == "cat" else (domain, k)
                models = {
                    "generated": translated,
                    "source": source,
                    "noise": with_noise(
                        source, translated, derive_seed(cfg.seed, "spread noise", *tag)
                    ),
                    "random": build(
                        cfg.cnn, cfg.data.image_size, derive_seed(cfg.seed, "spread random", *tag)
                    ),
                }
                for kind, model in models.items():
                    x = features(model, images, device).numpy()
                    result = protocol_run(x, groups, cfg, cfg.seed, "spread", *tag, kind)
                    rows.append(
                        {
                            "direction": direction,
                            "kind": kind,
                            "model": numbers[k] if numbers else k,
                            "accuracy": result["accuracy"],
                            "best accuracy": result["best accuracy"],
                        }
                    )
        writer.save_json("spread", {"rows": rows} | reference)

    artifact = store.stage(
        "protocol-spread",
        stage_key(cfg, "protocol-spread"),
        build_stage,
        inputs=[datasets.artifact, gan.artifact],
    )
    spread = artifact.json("spread")
    frame = pd.DataFrame(spread["rows"])
    pairs = zip(frame["direction"], frame["kind"], strict=True)
    frame["label"] = [spread_label(d, k) for d, k in pairs]
    frame.attrs |= {"call nothing": spread["call nothing"], "images": spread["images"]}
    return frame


def spread_summary(frame: pd.DataFrame) -> pd.DataFrame:
    """Per direction and kind: the median accuracy over source models, its 5-95% range, the
    best single model's best state, and the share of models whose mean accuracy beats calling
    nothing a black cat."""
    rows = {}
    for direction in DIRECTIONS:
        for kind in KINDS:
            part = frame[(frame["direction"] == direction) & (frame["kind"] == kind)]
            rows[spread_label(direction, kind)] = {
                "models": int(len(part)),
                "median accuracy": float(part["accuracy"].median()),
                "5% accuracy": float(part["accuracy"].quantile(0.05)),
                "95% accuracy": float(part["accuracy"].quantile(0.95)),
                "best model, best state": float(part["best accuracy"].max()),
                "share above calling nothing": float(
                    (part["accuracy"] > frame.attrs["call nothing"]).mean()
                ),
            }
    return pd.DataFrame(rows).T


def spread_differences(frame: pd.DataFrame) -> pd.DataFrame:
    """Per direction, the generated CNN's accuracy minus each control's, paired by source
    model: the mean difference over models, its unadjusted 95% t-interval, the paired t-test's
    p-value Holm-adjusted over the six comparisons (a secondary family of its own), and the
    verdict read from that adjusted p-value. A constant difference has no spread: no evidence
    (p = 1). The random CNN is a different network per source model: paired by position."""
    rows = []
    for direction in DIRECTIONS:
        part = frame[frame["direction"] == direction]
        wide = part.pivot_table(index="model", columns="kind", values="accuracy")
        for control in CONTROLS:
            differences = (wide["generated"] - wide[control]).to_numpy(dtype=float)
            mean, half = t_interval(differences)
            low, high = mean - half, mean + half
            rows.append(
                {
                    "generated": spread_label(direction, "generated"),
                    "control": spread_label(direction, control),
                    "models": len(differences),
                    "difference": mean,
                    "low": low,
                    "high": high,
                    "p": paired_t_p(differences),
                }
            )
    table = pd.DataFrame(rows)
    table["p (Holm)"] = holm(table["p"].tolist())
    table["verdict"] = verdicts_from(table["difference"], table["p (Holm)"])
    return table


# --- what the chapters glue ---------------------------------------------------------------------

SHOWCASE_KEYS = {  # glue key part -> showcase model id
    "gen": "gen_f",
    "gen_g": "gen_g",
    "cat": "cat",
    "black": "black",
    "noise": "noise",
    "random": "random",
}
DIRECTION_KEYS = {"cat->black": "f", "black->cat": "g"}


def glue_values(cfg: Config, shown: pd.DataFrame, spread: pd.DataFrame) -> dict:
    """Every number and word the chapters say about the showcase and the spread, by glue
    key: `show_<model>_<fixed|mean|low|high>`, `spread_<f|g>_<kind>_<median|low|high|best|
    above>`, `diff_<f|g>_<control>[_low|_high|_verdict]`, the references, and
    `show_rank`: the share of the spread's translated cat models that the showcase's
    F(cat CNN) beats under the same protocol."""
    values: dict = {
        "show_images": shown.attrs["images"],
        # what one photograph more or less called right moves an accuracy by
        "show_one_image": 1 / shown.attrs["images"],
        "show_black_cats": shown.attrs["black cats"],
        "show_nothing": shown.attrs["call nothing"],
        "show_states": shown.attrs["states"],
        "show_source": source_words(cfg),
        "show_umap_state": original.PROTOCOL_STATES["umap"],
        "show_kmeans_state": original.PROTOCOL_STATES["kmeans"],
        "show_claim": original.CLAIM["accuracy"],
        "spread_models": int(spread[spread["direction"] == "cat->black"]["model"].nunique()),
        "spread_images": spread.attrs["images"],
        "spread_nothing": spread.attrs["call nothing"],
    }
    for key, model in SHOWCASE_KEYS.items():
        row = shown.loc[model]
        values |= {
            f"show_{key}_fixed": float(row["accuracy at its states"]),
            f"show_{key}_mean": float(row["mean over states"]),
            f"show_{key}_low": float(row["lowest"]),
            f"show_{key}_high": float(row["highest"]),
        }
    gap = values["show_gen_fixed"] - values["show_claim"]
    values["show_claim_word"] = "above" if gap > 0 else "below"
    values["show_claim_gap"] = abs(gap)
    table = spread_summary(spread)
    for direction, d in DIRECTION_KEYS.items():
        for kind in KINDS:
            row = table.loc[spread_label(direction, kind)]
            values |= {
                f"spread_{d}_{kind}_median": float(row["median accuracy"]),
                f"spread_{d}_{kind}_low": float(row["5% accuracy"]),
                f"spread_{d}_{kind}_high": float(row["95% accuracy"]),
                f"spread_{d}_{kind}_best": float(row["best model, best state"]),
                f"spread_{d}_{kind}_above": float(row["share above calling nothing"]),
            }
    for row in spread_differences(spread).itertuples():
        direction = "cat->black" if row.generated.startswith("generated F") else "black->cat"
        control = next(c for c in CONTROLS if spread_label(direction, c) == row.control)
        key = f"diff_{DIRECTION_KEYS[direction]}_{control}"
        values |= {
            key: float(row.difference),
            f"{key}_low": float(row.low),
            f"{key}_high": float(row.high),
            f"{key}_verdict": row.verdict,
        }
    generated = spread[(spread["direction"] == "cat->black") & (spread["kind"] == "generated")]
    mine = float(shown.loc["gen_f", "spread's protocol"])
    values["show_rank"] = float((generated["accuracy"] < mine).mean())
    return values


def showcase_table(shown: pd.DataFrame) -> pd.DataFrame:
    """The showcase as readers see it: models by their labels."""
    return shown.rename(index=label)
