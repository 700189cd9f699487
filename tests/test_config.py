import dataclasses

import pytest

from kernelfusion import config
from kernelfusion.config import ConfigError


def test_presets_load_and_differ_in_scale():
    smoke, default, paper = (config.load(p) for p in ("smoke", "default", "paper"))
    assert smoke.data.cat_count < default.data.cat_count < paper.data.cat_count
    assert (paper.data.black_count, paper.data.black_random_count) == (1745, 81)
    assert (paper.data.cat_count, paper.data.cat_random_count) == (29843, 562)
    assert len({smoke.hash, default.hash, paper.hash}) == 3


def test_overrides_dotted_and_nested_are_the_same():
    a = config.load("smoke", {"data.image_size": 32, "seed": 3})
    b = config.load("smoke", {"data": {"image_size": 32}, "seed": 3})
    assert a == b and a.data.image_size == 32 and a.seed == 3
    assert a.hash != config.load("smoke").hash


def test_same_config_same_hash_and_int_becomes_float():
    a = config.load("default", {"data.dark_luminance": 0.2})
    b = config.load("default", {"data.dark_luminance": 0.2})
    assert a.hash == b.hash
    assert config.load("default", {"data.dark_fraction": 1}).data.dark_fraction == 1.0


def test_unknown_key_names_the_key_and_lists_valid_ones():
    with pytest.raises(ConfigError, match=r"unknown override 'data\.imagesize'.*data\.image_size"):
        config.load("default", {"data.imagesize": 32})


def test_unknown_preset_lists_presets():
    with pytest.raises(ConfigError, match="unknown preset 'huge'.*smoke, default, paper"):
        config.load("huge")


@pytest.mark.parametrize(
    "key, value, message",
    [
        ("data.image_size", "32", "must be an integer"),
        ("data.image_size", 32.0, "must be an integer"),
        ("seed", True, "must be an integer"),
        ("data.black_cats_in_training", 1, "must be true or false"),
        ("data.dark_luminance", "dark", "must be a number"),
    ],
)
def test_wrong_type_is_refused(key, value, message):
    with pytest.raises(ConfigError, match=f"'{key}' {message}"):
        config.load("default", {key: value})


@pytest.mark.parametrize(
    "key, value",
    [
        ("data.image_size", 8),
        ("data.cat_count", -5),
        ("seed", -1),
        ("data.dark_luminance", 1.5),
        ("data.val_fraction", 0.0),
        ("device", "tpu"),
    ],
)
def test_out_of_range_is_refused(key, value):
    with pytest.raises(ConfigError, match=f"'{key}' is out of range"):
        config.load("default", {key: value})


def test_folds_only_where_every_seed_scores_the_same_photographs():
    """The photograph is the unit only where the photographs are the same in every seed: on
    drawn images each seed draws new ones, and per-image scores of different seeds would be
    paired as if they were one photograph's."""
    with pytest.raises(ConfigError, match="'analysis.folds' is out of range.*data.source = orig"):
        config.load("default", {"analysis.folds": 5})
    assert config.load("original", {"data.root": "x", "zoo.root": "x"}).analysis.folds == 5


def test_choice_and_dependent_values():
    with pytest.raises(ConfigError, match="choose one of synthetic, folder, oxford_pets"):
        config.load("default", {"data.source": "web"})
    with pytest.raises(ConfigError, match="'data.root' is out of range.*a data folder"):
        config.load("default", {"data.source": "folder"})


def test_whole_layer_options_need_whole_layers():
    with pytest.raises(
        ConfigError, match="'gan.align_outputs' is out of range.*gan.sample = layer"
    ):
        config.load("default", {"gan.align_outputs": True})
    with pytest.raises(ConfigError, match="'gan.arch' is out of range.*set with gan.sample"):
        config.load("default", {"gan.arch": "set"})
    assert config.load("default", {"gan.sample": "layer", "gan.arch": "set"}).gan.arch == "set"


def test_preset_values_cannot_be_overridden_by_preset_key():
    with pytest.raises(ConfigError, match="unknown override 'preset'"):
        config.load("default", {"preset": "paper"})


def test_cuda_on_cpu_machine_is_a_clear_error(monkeypatch):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert config.resolve_device("auto") == "cpu"
    with pytest.raises(ConfigError, match="CUDA is not available.*device='auto' or 'cpu'"):
        config.resolve_device("cuda")


def test_every_valid_key_is_a_field():
    keys = config.valid_keys()
    assert "data.image_size" in keys and "seed" in keys and "preset" not in keys
    assert len(keys) == len(set(keys))
    defaults = config.Config()
    for key in keys:  # each key is settable, to its own default, without changing the config
        section, _, name = key.rpartition(".")
        value = getattr(getattr(defaults, section) if section else defaults, name)
        assert config.load("default", {key: value}) == config.load("default"), key
    assert dataclasses.is_dataclass(defaults.data)


@pytest.mark.parametrize("preset", list(config.PRESETS))
def test_no_headline_or_confirmation_seed_chose_a_setting(preset):
    """A setting chosen on some seeds is never judged or confirmed on them: the seeds every
    chapter's verdict reads lie apart from each setting's seeds, at every preset."""
    from kernelfusion import ablation, pipeline

    overrides = {"data.root": "x", "zoo.root": "x"} if preset == "original" else {}
    cfg = config.load(preset, overrides)
    used = set(pipeline.seeds(cfg)) | set(ablation.selection_seeds(cfg))
    used |= set(ablation.confirmation_seeds(cfg))
    assert used <= config.book_seeds(cfg)
    for setting, seeds in config.CHOSEN_ON.items():
        assert not used & set(seeds), (preset, setting)
    assert not used & set(config.TUNING_SEEDS)
