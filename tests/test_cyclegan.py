import dataclasses

import pytest
import torch
import torch.nn.functional as F

from kernelfusion import (
    alignment,
    config,
    cyclegan,
    data,
    gan_checks,
    networks,
    stage_keys,
    store,
    zoo,
)
from kernelfusion import words as words_module
from kernelfusion.training import DivergedError


@pytest.mark.parametrize("arch", ["mlp", "conv"])
@pytest.mark.parametrize("channels", [3, 8])
def test_network_shapes_per_layer(arch, channels):
    cfg = config.load("smoke", {"gan.arch": arch}).gan
    nets = networks.make_networks(cfg, channels, seed=0)
    x = torch.randn(7, channels * 25)
    assert nets["G"](x).shape == nets["F"](x).shape == (7, channels * 25)
    assert nets["D_A"](x).shape == nets["D_B"](x).shape == (7, 1)


def test_normalisation_round_trip_and_unit_vectors():
    kernels = torch.randn(20, 4, 5, 5) * torch.logspace(-3, 1, 20).view(-1, 1, 1, 1) + 0.3
    vectors, scale = alignment.normalise(kernels)
    assert torch.allclose(vectors.norm(dim=1), torch.ones(20), atol=1e-5)
    assert torch.allclose(vectors.mean(1), torch.zeros(20), atol=1e-5)
    torch.testing.assert_close(alignment.restore(vectors, scale, (4, 5, 5)), kernels)


def test_identity_translation_returns_the_source_kernels():
    cfg = config.load("smoke").gan
    nets = networks.make_networks(cfg, 3, 0)
    nets["G"] = torch.nn.Identity()
    layer = cyclegan.LayerGan(nets, {}, 3)
    kernels = torch.randn(5, 3, 5, 5)
    torch.testing.assert_close(layer.translate(kernels, "black->cat"), kernels)


def test_weight_matching_undoes_a_permutation():
    reference = torch.randn(6, 3, 5, 5)
    perm = torch.tensor([3, 0, 5, 1, 4, 2])
    shuffled = reference[perm]
    found = alignment.matching_permutation(shuffled, reference)
    assert torch.equal(shuffled[found], reference)
    layer2 = torch.randn(2, 6, 5, 5)  # input channels in the shuffled order
    aligned = alignment.align_layer2(
        layer2, torch.tensor([[0, 1, 0], [0, 1, 1]]), {(0, 1): shuffled}, reference
    )
    assert torch.equal(aligned, layer2[:, found])


def test_activation_matching_undoes_a_permutation_whatever_each_filters_scale_and_offset():
    """Matching by responses to images (gan.align_by = activations) finds a permutation that
    rescaled and shifted filters hide from weight matching."""
    gen = torch.Generator().manual_seed(0)
    reference = torch.randn(6, 3, 5, 5, generator=gen)
    images = torch.rand(32, 3, 16, 16, generator=gen)
    perm = torch.tensor([3, 0, 5, 1, 4, 2])
    scale = torch.tensor([0.1, 5.0, 1.0, 0.3, 2.0, 0.7]).view(-1, 1, 1, 1)
    shuffled = reference[perm] * scale + 0.3 * torch.randn(6, 1, 1, 1, generator=gen)
    found = alignment.matching_permutation(shuffled, reference, images)
    assert torch.equal(found[torch.argsort(found)], torch.arange(6))
    assert torch.equal(perm[found], torch.arange(6))  # shuffled[found] is reference's order
    layer2 = torch.randn(2, 6, 5, 5)
    aligned = alignment.align_layer2(
        layer2, torch.tensor([[0, 1, 0], [0, 1, 1]]), {(0, 1): shuffled}, reference, images
    )
    assert torch.equal(aligned, layer2[:, found])


def test_pool_returns_batch_until_full_then_mixes():
    pool = cyclegan.ImagePool(4, 2, "cpu")
    gen = torch.Generator().manual_seed(0)
    first = torch.ones(4, 2)
    assert torch.equal(pool.query(first, gen), first) and pool.filled == 4
    second = torch.zeros(64, 2)
    mixed = pool.query(second, gen)
    assert 0 < (mixed[:, 0] == 1).sum() <= 4  # stored samples come back, each at most once
    assert (pool.samples == 0).all(1).sum() == (mixed[:, 0] == 1).sum()


def test_lr_schedule_constant_then_linear_to_zero():
    cfg = config.load("smoke", {"gan.steps": 100, "gan.decay_steps": 40}).gan
    assert cyclegan.lr_factor(0, cfg) == cyclegan.lr_factor(59, cfg) == 1.0
    assert cyclegan.lr_factor(80, cfg) == pytest.approx(0.5)
    assert cyclegan.lr_factor(100, cfg) == 0.0


def _domains(n=64, channels=3):
    gen = torch.Generator().manual_seed(0)
    black, _ = alignment.normalise(torch.randn(n, channels, 5, 5, generator=gen))
    cat, _ = alignment.normalise(torch.randn(n, channels, 5, 5, generator=gen) + 0.5)
    return black, cat


def test_optimisation_steps_reduce_the_cycle_loss_on_a_batch():
    cfg = config.load("smoke", {"gan.batch_size": 64, "gan.lr": 1e-3, "gan.decay_steps": 0}).gan
    black, cat = _domains()
    trainer = cyclegan._Trainer(cfg, black, cat, 3, seed=0, device="cpu")
    G, Fn = trainer.nets["G"], trainer.nets["F"]

    def cycle():
        with torch.no_grad():
            return float(F.l1_loss(Fn(G(black)), black) + F.l1_loss(G(Fn(cat)), cat))

    before = cycle()
    trainer.train_step()
    after_one = cycle()
    for _ in range(9):
        trainer.train_step()
    assert after_one < before and cycle() < 0.9 * before
    assert trainer.step == 10 and torch.isfinite(trainer.losses[:10]).all()


def test_resume_from_checkpoint_equals_uninterrupted(tmp_path):
    cfg = config.load(
        "smoke",
        {"gan.steps": 40, "gan.decay_steps": 20, "gan.checkpoint_every": 10, "gan.pool_size": 8},
    ).gan
    black, cat = _domains()
    whole = cyclegan.train_layer(cfg, black, cat, 3, 0, "cpu", tmp_path / "a", progress=False)
    cyclegan.train_layer(
        cfg, black, cat, 3, 0, "cpu", tmp_path / "b", progress=False, stop_after=25
    )  # "interrupted": the last checkpoint is at step 20
    resumed = cyclegan.train_layer(cfg, black, cat, 3, 0, "cpu", tmp_path / "b", progress=False)
    for name in ("G", "F", "D_A", "D_B"):
        for key, value in whole.nets[name].state_dict().items():
            torch.testing.assert_close(resumed.nets[name].state_dict()[key], value, rtol=0, atol=0)
    assert resumed.history == whole.history
    # F kept along the run (chapter 04's curve) survives the interruption: steps 10 and 20
    # were kept before it, 30 after
    assert list(resumed.snapshots) == cyclegan.curve_steps(cfg) == [10, 20, 30]
    for step, state in whole.snapshots.items():
        for key, value in state.items():
            torch.testing.assert_close(resumed.snapshots[step][key], value, rtol=0, atol=0)
    final = whole.nets["F"].state_dict()
    assert not all(torch.equal(whole.snapshots[30][k], v) for k, v in final.items())


def test_bfloat16_passes_train_float32_generators_that_a_seed_repeats():
    """gan.precision = bfloat16: the passes run under autocast (the run differs from a float32
    one), the networks, their translations and the losses stay float32, the same seed gives
    the same weights, and the stages are keyed apart from float32 ones."""
    runs = {}
    for precision in ("float32", "bfloat16", "bfloat16"):
        cfg = config.load(
            "smoke", {"gan.steps": 30, "gan.decay_steps": 10, "gan.precision": precision}
        )
        black, cat = _domains()
        gan = cyclegan.train_layer(cfg.gan, black, cat, 3, 0, "cpu", progress=False)
        runs.setdefault(precision, []).append(cyclegan.net_tensors(gan.nets))
        assert all(v.dtype == torch.float32 for v in runs[precision][-1].values())
        assert gan.translate(torch.randn(4, 3, 5, 5), "cat->black").dtype == torch.float32
        assert all(torch.isfinite(torch.tensor(v)).all() for v in gan.history.values())
    (single,), (first, again) = runs["float32"], runs["bfloat16"]
    assert all(torch.equal(first[k], again[k]) for k in first)
    assert not all(torch.equal(first[k], single[k]) for k in first)
    # the rounding moves the weights, not the training: close to the float32 run's
    assert all(torch.allclose(first[k], single[k], atol=0.05) for k in first)
    stages = ("cyclegan-conv1", "cyclegan-conv2", "cyclegan")
    made = {
        p: [stage_keys.stage_key(config.load("smoke", {"gan.precision": p}), s) for s in stages]
        for p in ("float32", "bfloat16")
    }
    assert all(a != b for a, b in zip(made["float32"], made["bfloat16"], strict=True))


def test_nan_losses_stop_training_with_step_and_term():
    cfg = config.load("smoke", {"gan.steps": 20, "gan.decay_steps": 0, "gan.log_every": 5}).gan
    black, cat = _domains()
    black[3] = float("nan")
    with pytest.raises(
        DivergedError, match=r"CycleGAN conv1 diverged: loss_\w+ at step \d+ is nan"
    ):
        cyclegan.train_layer(cfg, black, cat, 3, 0, "cpu", stage="CycleGAN conv1", progress=False)


# Of the untrained networks' cycle error: 60 smoke steps measured 0.83-0.89 over 2 seeds.
CYCLE_BOUND = 0.95


def test_stage_trains_both_layers_reuses_and_evaluates(tmp_path):
    cfg = config.load("smoke")
    run = store.open(cfg, tmp_path)
    datasets = data.make_datasets(cfg, run, progress=False)
    kernels = zoo.make_zoo(cfg, run, datasets, progress=False)
    gan = cyclegan.make_translator(cfg, run, datasets, kernels, progress=False)
    assert set(gan.layers) == {"conv1", "conv2"}
    assert (run.root / "checkpoints").is_dir()  # where the GAN saved its resumable state
    assert not list((run.root / "checkpoints").glob("cyclegan-*"))  # removed once sealed
    again = cyclegan.make_translator(cfg, run, datasets, kernels, progress=False)
    assert again.artifact.reused and again.reused and not gan.reused
    assert set(gan.history) == {"conv1", "conv2"}  # each layer's losses, as logged
    # arms that change only layer 2 (or drop it) train no layer-1 CycleGAN: they reuse this one
    for change in ({"gan.align_layer2": False}, {"gan.layers": "conv1"}):
        arm_cfg = config.load("smoke", change)
        arm = cyclegan.make_translator(arm_cfg, store.open(arm_cfg, tmp_path), datasets, kernels)
        assert arm.layer_artifacts["conv1"].reused and arm.layer_artifacts["conv1"].folder == (
            gan.layer_artifacts["conv1"].folder
        )
        assert set(arm.layers) == ({"conv1"} if "gan.layers" in change else {"conv1", "conv2"})
    identity = config.load("smoke", {"gan.identity_weight": 2.0})  # read by both layers
    arm = cyclegan.make_translator(identity, store.open(identity, tmp_path), datasets, kernels)
    assert not arm.layer_artifacts["conv1"].reused
    source = gan.kernels["cat"]["conv2"][:4]
    torch.testing.assert_close(
        again.translate("conv2", source, "cat->black"), gan.translate("conv2", source, "cat->black")
    )
    results = gan_checks.evaluate(gan)
    assert results["conv1"]["share classified cat: real cat"] >= 0.5
    for layer in ("conv1", "conv2"):  # training shortened the cycle of untrained nets
        black, _ = alignment.normalise(gan.kernels["black"][layer])
        nets = networks.make_networks(cfg.gan, gan.kernels["black"][layer].shape[1], 0)
        with torch.no_grad():
            untrained = float((nets["F"](nets["G"](black)) - black).abs().mean())
        assert results[layer]["cycle L1 black->cat->black"] < CYCLE_BOUND * untrained, layer


def test_damaged_checkpoint_is_not_trusted(tmp_path):
    cfg = config.load(
        "smoke", {"gan.steps": 30, "gan.decay_steps": 10, "gan.checkpoint_every": 10}
    ).gan
    black, cat = _domains()
    whole = cyclegan.train_layer(cfg, black, cat, 3, 0, "cpu", tmp_path / "a", progress=False)
    cyclegan.train_layer(
        cfg, black, cat, 3, 0, "cpu", tmp_path / "b", progress=False, stop_after=15
    )
    state = tmp_path / "b" / "state.safetensors"
    state.write_bytes(state.read_bytes()[:100])  # truncated on disk
    with pytest.warns(UserWarning, match="checkpoint .* is unreadable .* training from step 0"):
        again = cyclegan.train_layer(cfg, black, cat, 3, 0, "cpu", tmp_path / "b", progress=False)
    assert again.history == whole.history


def test_whole_layer_samples_keep_each_models_filters_in_order():
    """Per-filter kernel sets of 2 models x 2 steps x 3 filters become 4 layers of shape
    (C_in, C_out, 5, 5); a (model, step) with a filter missing is left out."""
    index = torch.tensor([[m, s, f] for m in range(2) for s in (5, 9) for f in range(3)])
    kernels = torch.randn(len(index), 4, 5, 5)
    samples, sample_index = alignment.layer_samples(kernels, index)
    assert samples.shape == (4, 4, 3, 5, 5) and sample_index[:, 2].tolist() == [-1] * 4
    assert torch.equal(samples[1][:, 2], kernels[5])  # model 0, step 9, filter 2
    partial, partial_index = alignment.layer_samples(kernels[1:], index[1:])
    assert len(partial) == 3 and partial_index[0, :2].tolist() == [0, 9]


def test_conv3d_networks_translate_a_whole_layer_of_a_cnn():
    cfg = config.load("smoke", {"gan.sample": "layer", "gan.arch": "conv3d"}).gan
    shape = (4, 8, 5, 5)  # layer 2 of the smoke CNN, (C_in, C_out, 5, 5)
    nets = networks.make_networks(cfg, shape, seed=0)
    x = torch.randn(3, 4 * 8 * 25)
    assert nets["G"](x).shape == (3, 800) and nets["D_A"](x).shape == (3, 1)
    layer = cyclegan.LayerGan(nets, {}, shape)
    gan = cyclegan.KernelGan({"conv2": layer}, {}, torch.zeros(4, 3, 5, 5), {}, sample="layer")
    weights = torch.randn(8, 4, 5, 5)  # a CNN's conv2.weight, (C_out, C_in, 5, 5)
    assert gan.translate("conv2", weights, "cat->black").shape == weights.shape
    nets["F"] = torch.nn.Identity()
    torch.testing.assert_close(gan.translate("conv2", weights, "cat->black"), weights)
    with pytest.raises(config.ConfigError, match="'gan.arch' is out of range.*conv3d"):
        config.load("smoke", {"gan.arch": "conv3d"})


@pytest.mark.slow
def test_paper_preset_scaled_down_runs_the_pipeline_and_chapter_04(tmp_path, monkeypatch):
    """The GPU user's path, first run here and not on a workstation: the `paper` preset end to
    end with only its counts scaled down (the smoke preset's counts and a few GAN steps); its
    design kept: the original's CNN (6 and 16 channels, no padding, centred inputs) on 32 px
    images, zoos of different sizes, whole layers as samples and the Conv3d translator. Chapter
    04 says what one sample is."""
    from kernelfusion import pipeline
    from kernelfusion.build import book

    monkeypatch.setenv("KERNELFUSION_RUNS", str(tmp_path / "runs"))
    design = ("data.image_size", "cnn.channels1", "cnn.channels2", "zoo.snapshots")
    counts = {k: v for k, v in config.PRESETS["smoke"].items() if k not in design}
    overrides = counts | {
        "zoo.cat_models": 3,  # the paper's zoos differ in size (2,749 and 1,749)
        "zoo.stack": 4,  # the zoo as vectorized stacks, as a GPU trains it (a CPU: one by one)
        "gan.hidden": 8,
        "gan.steps": 12,
        "gan.decay_steps": 6,
        "gan.checkpoint_every": 6,
        "gan.log_every": 3,
    }
    cfg = config.load("paper", overrides)
    assert (cfg.gan.sample, cfg.gan.arch, cfg.cnn.padding, cfg.data.image_size) == (
        "layer",
        "conv3d",
        0,
        32,
    )
    done = pipeline.run(cfg, store.open(cfg), progress=False)
    assert "gen_f" in done.metrics.values["models"]
    assert done.models.cnns["gen_f"].conv1.weight.shape == (6, 3, 5, 5)
    assert [done.zoo.summary[d]["models"] for d in ("black", "cat")] == [4, 3]
    result = book.make_book("paper", overrides, tmp_path / "book", only="04", log=lambda *a, **k: 0)
    page = (result.index_html.parent / "notebooks" / "04_cyclegan.html").read_text()
    assert "one sample is one whole conv layer" in page and "conv3d" in page
    # the first page pastes chapter 07's numbers: without chapter 07 it says so, and builds
    intro = (result.index_html.parent / "book" / "intro.html").read_text()
    assert "(chapter 07 is not in this build)" in intro


def test_set_networks_ignore_the_order_of_a_layers_filters():
    """The permutation-equivariant generator (gan.arch = set) reorders its output with its
    input's filters; its discriminator's score does not change."""
    cfg = config.load("smoke", {"gan.sample": "layer", "gan.arch": "set"}).gan
    shape = (4, 6, 5, 5)
    nets = networks.make_networks(cfg, shape, 0)
    x = torch.randn(3, *shape)
    perm = torch.randperm(shape[1], generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        out = nets["G"](x.flatten(1)).view(3, *shape)
        torch.testing.assert_close(
            nets["G"](x[:, :, perm].flatten(1)).view(3, *shape), out[:, :, perm]
        )
        torch.testing.assert_close(nets["D_A"](x[:, :, perm].flatten(1)), nets["D_A"](x.flatten(1)))
        other = torch.randn(3, *shape)
        assert not torch.allclose(nets["G"](other.flatten(1)), out.flatten(1))


def test_whole_aligned_layers_put_each_models_filters_in_the_references_order():
    index = torch.tensor([[m, 0, f] for m in range(2) for f in range(3)])
    kernels = torch.randn(6, 4, 5, 5)
    reference = kernels[3:][torch.tensor([2, 0, 1])]  # model 1's filters, in another order
    samples, _ = alignment.layer_samples(kernels, index, reference)
    assert torch.equal(samples[1].transpose(0, 1), reference)


def test_whole_layers_with_the_set_generator_run_the_pipeline(tmp_path):
    """gan.arch = set end to end: the CycleGAN on whole (unaligned) layers, the generated CNN
    scored with the rest."""
    from kernelfusion import pipeline

    cfg = config.load("smoke", {"gan.sample": "layer", "gan.arch": "set"})
    metrics = pipeline.run(cfg, store.open(cfg, tmp_path), progress=False).metrics.values
    assert 0 <= metrics["models"]["gen_f"]["linear probe"]["roc auc"] <= 1


def test_chapter_04_speaks_of_training_only_where_a_cyclegan_is_trained():
    trained = config.load("smoke", {"gan.precision": "float32"})
    words = words_module.training_words(trained)
    steps = f"{trained.gan.steps} steps per layer, the last {trained.gan.decay_steps}"
    assert steps in words["settings_text"]
    assert words["settings_text"].endswith("in float32 throughout")
    assert f"at {trained.gan.curve_points} evenly spaced steps" in words["steps_text"]
    published = dataclasses.replace(trained.gan, source="original")  # the `original` preset's
    read = words_module.training_words(dataclasses.replace(trained, gan=published))
    assert read.keys() == words.keys()
    assert not any("steps per layer" in text or "Adam at" in text for text in read.values())
