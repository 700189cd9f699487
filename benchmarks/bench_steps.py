"""How many CycleGAN steps: the generated CNN's probe F1 and ROC AUC (the numbers chapter 08's
arms are compared on) at a few step counts, per seed, and each count's paired difference from
the preset's own `gan.steps` (the learning rate decays over the last half of every run, as the
book's does). A step count is worth its time when fewer steps lose F1 and more gain none.

`python -m benchmarks steps [preset] [arm] [steps,...] [seeds] [key=value,...]`: by default the
default preset's reference arm at 500,750,1000,1500 steps (the preset's own 1,000 among them)
and the seeds kept for choosing settings (`config.TUNING_SEEDS`, which no chapter reads: a
count chosen here is not confirmed on the seeds that chose it), in the runs folder the book
uses (its data, CNNs and zoo are reused; every count is a run of its own). Runs two at a time,
one torch thread each. The last word sets more values on top of the arm (e.g.
`gan.hidden=128`: a narrower GAN at the same counts; compare its rows with a run without it)."""

from __future__ import annotations

import dataclasses
import time

import numpy as np

from kernelfusion import ablation, config, pipeline
from kernelfusion.__main__ import parse_override

from .common import table


def run(
    preset: str = "default",
    arm: str = "reference",
    steps: str = "500,750,1000,1500",
    seeds: str = ",".join(str(s) for s in config.TUNING_SEEDS),
    sets: str = "",
) -> None:
    base = config.load(preset)
    counts = [int(s) for s in steps.split(",")]
    chosen = [int(s) for s in seeds.split(",")]
    extra = dict(parse_override(word) for word in sets.split(",") if word)
    overrides = ablation.overrides(arm, base) | extra | {"analysis.views": "probe"}
    configs, cells = [], []
    for count in counts:
        cfg = config.with_overrides(
            base, overrides | {"gan.steps": count, "gan.decay_steps": count // 2}
        )
        for seed in chosen:
            configs.append(dataclasses.replace(cfg, seed=seed))
            cells.append((count, seed))
    started = time.perf_counter()
    found = dict(zip(cells, pipeline.run_many(configs), strict=True))
    seconds = time.perf_counter() - started

    def probe(count: int, key: str) -> list[float]:
        return [found[count, s]["models"]["gen_f"]["linear probe"][key] for s in chosen]

    rows = []
    for count in counts:
        row: dict = {"steps": count}
        for metric, key in (("F1", "f1"), ("AUC", "roc auc")):
            values = probe(count, key)
            row[f"gen_f {metric}"] = float(np.mean(values))
            row[f"per seed {metric}"] = " ".join(f"{v:.3f}" for v in values)
            if base.gan.steps in counts:  # paired with the preset's own count when it ran
                diffs = np.subtract(values, probe(base.gan.steps, key))
                row[f"minus {base.gan.steps} {metric}"] = float(diffs.mean())
                row[f"seeds lower {metric}"] = int((diffs < 0).sum())
        rows.append(row)
    table(
        f"{preset} preset, arm {arm!r}{' with ' + sets if sets else ''}: gen_f's probe at each "
        f"gan.steps (seeds {seeds}; "
        f"{seconds:.0f} s here, cached runs read)",
        rows,
    )
