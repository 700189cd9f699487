"""Every stage's cache key, in one place: which config sections and fields each stage reads,
its code version, and the torch thread class (`threads_class`). The store names a stage's
artifact by its key (`store.stage_hash`); a change to anything a stage reads makes it again.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from .config import Config


@dataclass(frozen=True)
class StageSpec:
    """What one stage's cache key is made of: the config sections it reads whole, single fields
    of other sections, fields of those sections it does not read, and its code version (bumped
    when its outputs change for the same config). Every key also holds the seed and the thread
    class (`threads_class`)."""

    sections: tuple[str, ...]
    version: int
    fields: tuple[str, ...] = ()  # "section.field" read from a section not read whole
    leave_out: tuple[str, ...] = ()  # "section.field" of `sections` the stage does not read
    # "section.field" left out while at its default: keys made before the field existed stay
    omit_at_default: tuple[str, ...] = ()


# gan.* settings no CycleGAN stage reads: the functional phase's, the published source, and
# how many runs train as one stack (a member's numbers differ from a lone run's in rounding
# only, as a GPU's differ from a CPU's: the device is not in any key either)
_NOT_GAN_TRAINING = ("gan.functional_weight", "gan.functional_steps", "gan.source", "gan.stack")

# Every stage's key, in one place (the data stage's is `data._data_key`: its section and the
# image generator's version, without a thread class: decoding and drawing use no threads).
STAGE_KEYS: dict[str, StageSpec] = {
    # 2: seeds from derive_seed; 3: trained one model after another on a CPU (`train_each`)
    "sources": StageSpec(("cnn",), 3),
    # 5: published models' accuracy one at a time; 6: trained one after another on a CPU
    "zoo": StageSpec(("cnn", "zoo"), 6),
    # One CycleGAN per layer, each keyed by the settings that layer reads: layer 1 does not
    # read which layers are translated nor the layer-2 alignment (an arm changing only those
    # reuses the reference's layer 1). The functional phase is a stage of its own.
    # 2: the step of issue 24 (batched calls, frozen critics, fused Adam: rounded differently)
    "cyclegan-conv1": StageSpec(
        ("gan",),
        2,
        leave_out=(*_NOT_GAN_TRAINING, "gan.layers", "gan.align_layer2"),
        omit_at_default=("gan.align_outputs", "gan.align_by"),
    ),
    "cyclegan-conv2": StageSpec(
        ("gan",),
        2,
        leave_out=(*_NOT_GAN_TRAINING, "gan.layers"),
        omit_at_default=("gan.align_outputs", "gan.align_by"),
    ),
    # the layers' CycleGANs together. 2: seeds from derive_seed; 3: gathered from the
    # per-layer stages
    "cyclegan": StageSpec(
        ("gan",),
        3,
        leave_out=_NOT_GAN_TRAINING,
        omit_at_default=("gan.align_outputs", "gan.align_by"),
    ),
    # 3: generator_losses with batched calls
    "functional": StageSpec((), 3, fields=("gan.functional_weight", "gan.functional_steps")),
    # the distilled control takes as many steps as the functional phase would; 2: model ids;
    # 3: the oracle trained as a plain module on a CPU (`train_each`)
    "rivals": StageSpec(("fusion", "cnn"), 3, fields=("gan.functional_steps",)),
    "models": StageSpec(("fusion", "cnn"), 5),  # 5: model ids, the stage renamed from fusion
    # 4: the original protocol label-free, its reference on its own images; 5: views = probe
    # computes the linear probe alone (no label-efficiency curve); 6: views = probe scores
    # the generated CNNs and the decisive rivals alone (`evaluate.scored`)
    "metrics": StageSpec(("analysis",), 6),
    "showcase": StageSpec(("analysis",), 2),  # 2: model ids
    "protocol-spread": StageSpec(("analysis",), 3),  # 3: both zoos
}


def stage_key(cfg: Config, stage: str) -> dict[str, Any]:
    """The cache key of `stage` for `cfg`, from its entry in STAGE_KEYS."""
    spec = STAGE_KEYS[stage]
    defaults = Config()
    key: dict[str, Any] = {}
    for name in spec.sections:
        section = dataclasses.asdict(getattr(cfg, name))
        for dotted in spec.leave_out:
            if dotted.startswith(f"{name}."):
                del section[dotted.split(".", 1)[1]]
        for dotted in spec.omit_at_default:
            part, field_name = dotted.split(".", 1)
            if part == name and section[field_name] == getattr(getattr(defaults, part), field_name):
                del section[field_name]
        key[name] = section
    for dotted in spec.fields:
        part, field_name = dotted.split(".", 1)
        key[dotted] = getattr(getattr(cfg, part), field_name)
    return key | {"seed": cfg.seed, "version": spec.version, "threads": threads_class()}


def threads_class() -> str:
    """The part of torch's intra-op thread count that can change a stage's numbers: all of it.
    On the project's 2-core CPU, the source CNNs and the oracle trained at 1 and at 2 threads
    differ in their last bits (oneDNN's convolution splits its weight-gradient reductions by
    thread; with oneDNN off they agree, at 1.7x the training time), so a one-thread worker
    and a two-thread chapter each keep their own stages. Keys made before this rule said
    "1-4" and are made again once."""
    import torch

    return str(torch.get_num_threads())
