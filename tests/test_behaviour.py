"""The functional loss (training the translator on what the generated CNN does) and its
control (the same loss on a CNN's own weights, without a generator)."""

from __future__ import annotations

import torch

from kernelfusion import (
    alignment,
    behaviour,
    cnn,
    config,
    cyclegan,
    fusion,
    networks,
    pipeline,
    store,
)
from kernelfusion.cnn import SourceCNNs


def _sources(cfg, scale: float = 100.0) -> SourceCNNs:
    """Two different CNNs whose heads are scaled up, so that their outputs are confident
    (the soft targets are far from 1/2, as a trained CNN's are; at 20 the behaviour term
    fell by 2-6% in 60 steps, too close to the test's 5%, and by 19-23% at 100)."""
    models = []
    for seed in (1, 2):
        model = cnn.build(cfg.cnn, cfg.data.image_size, seed)
        with torch.no_grad():
            model.head.weight.mul_(scale)
        models.append(model.eval())
    init = cnn.build(cfg.cnn, cfg.data.image_size, 3)
    return SourceCNNs(black=models[0], cat=models[1], init=init, report={})


def _images(seed: int = 5) -> torch.Tensor:
    """200 smooth random images (6x6 noise scaled up to 24x24, uint8): structure at the
    scale of the CNNs' 5x5 filters, unlike pixel noise."""
    small = torch.randint(0, 256, (200, 3, 6, 6), generator=torch.Generator().manual_seed(seed))
    return torch.nn.functional.interpolate(small.float(), size=24, mode="bilinear").to(torch.uint8)


def _gan(cfg) -> cyclegan.KernelGan:
    """A KernelGan of untrained networks over random kernel sets of the smoke shapes."""
    c1 = cfg.cnn.channels1
    gen = torch.Generator().manual_seed(0)
    kernels = {
        d: {
            "conv1": torch.randn(40, 3, 5, 5, generator=gen),
            "conv2": torch.randn(40, c1, 5, 5, generator=gen),
        }
        for d in ("black", "cat")
    }
    layers = {
        layer: cyclegan.LayerGan(networks.make_networks(cfg.gan, channels, 0), {}, channels)
        for layer, channels in (("conv1", 3), ("conv2", c1))
    }
    reference = torch.randn(c1, 3, 5, 5, generator=gen)
    return cyclegan.KernelGan(layers, kernels, reference, {})


def test_the_behaviour_term_falls_and_trains_the_generators_through_the_weights():
    cfg = config.load("smoke", {"gan.functional_weight": 10.0, "gan.functional_steps": 60})
    sources, gan = _sources(cfg), _gan(cfg)
    images = _images()
    nets, history = behaviour.train_phase(cfg, gan, sources, images, "cpu", progress=False)
    term = torch.tensor(history["functional"])
    assert len(term) == 60 and term[-10:].mean() < 0.95 * term[:10].mean()
    for layer in ("conv1", "conv2"):
        for name in ("G", "F"):  # the generators moved; the discriminators stayed frozen
            before = gan.layers[layer].nets[name].state_dict()
            after = nets[layer][name].state_dict()
            assert any(not torch.equal(before[k], after[k]) for k in before), (layer, name)
        for name in ("D_A", "D_B"):
            before = gan.layers[layer].nets[name].state_dict()
            assert all(torch.equal(before[k], v) for k, v in nets[layer][name].state_dict().items())
    again, _ = behaviour.train_phase(cfg, gan, sources, images, "cpu", progress=False)
    first, second = nets["conv2"]["F"].state_dict(), again["conv2"]["F"].state_dict()
    assert all(torch.equal(first[k], second[k]) for k in first)  # same seed, same numbers


def test_the_distilled_control_changes_only_conv_weights_and_keeps_its_concept():
    cfg = config.load("smoke", {"gan.functional_steps": 60})
    sources = _sources(cfg)
    images = _images()
    model = behaviour.distilled(cfg, sources, images, "cat", "cpu")
    assert torch.equal(model.head.weight, sources.cat.head.weight)
    assert not torch.equal(model.conv2.weight, sources.cat.conv2.weight)
    x = images[:64]
    agree = (
        behaviour.soft_targets(model, x).argmax(1)
        == behaviour.soft_targets(sources.cat, x).argmax(1)
    ).float()
    assert agree.mean() >= 0.9  # L_keep: it still says what the cat CNN says


def test_whole_aligned_layers_with_the_functional_loss_run_end_to_end(tmp_path):
    """The pipeline with both new paths on: whole aligned layers as the CycleGAN's samples and
    the functional phase after it (a stage of its own, started from the cached CycleGAN)."""
    cfg = config.load(
        "smoke",
        {"gan.sample": "layer", "gan.align_outputs": True, "gan.functional_weight": 10.0},
    )
    run = store.open(cfg, tmp_path)
    metrics = pipeline.run(cfg, run, progress=False).metrics.values
    assert {"gen_f", "distilled"} <= set(metrics["models"])
    assert (run.run_dir / "functional").exists() and (run.run_dir / "rivals").exists()
    plain = config.with_overrides(cfg, {"gan.functional_weight": 0.0})
    plain_run = store.open(plain, tmp_path)
    from kernelfusion import data

    data.make_datasets(plain, plain_run, progress=False)
    gan = pipeline.run(plain, plain_run, progress=False, until="gan").gan
    assert gan.artifact.reused  # the functional arm's CycleGAN is the plain one
    assert gan.reference2 is not None and gan.kernels["black"]["conv2"].dim() == 5
    # the functional phase moved both layers' F from the plain CycleGAN's
    tuned = pipeline.run(cfg, run, progress=False, until="gan").gan
    for layer, layer_gan in tuned.layers.items():
        before = gan.layers[layer].nets["F"].state_dict()
        after = layer_gan.nets["F"].state_dict()
        assert any(not torch.equal(before[k], after[k]) for k in before), layer


def test_layer_two_aligned_by_activations_runs_end_to_end(tmp_path):
    """gan.align_by = activations through the pipeline: the CycleGAN keeps the images its
    layer-1 matching used, and the generated CNN is put back in its own channel order. In
    float32 (`--set gan.precision=float32`, the choice for a CPU without bfloat16
    instructions): that user path end to end too, where every other run is in bfloat16."""
    cfg = config.load("smoke", {"gan.align_by": "activations", "gan.precision": "float32"})
    run = store.open(cfg, tmp_path)
    metrics = pipeline.run(cfg, run, progress=False).metrics.values
    assert "gen_f" in metrics["models"]
    from kernelfusion import data

    datasets = data.make_datasets(cfg, run, progress=False)
    gan = pipeline.run(cfg, run, progress=False, until="gan").gan
    assert gan.artifact.reused and 0 < len(gan.match_images) <= alignment.MATCH_IMAGES
    sources = cnn.make_sources(cfg, run, datasets, progress=False)
    same = fusion.map_filters(sources.cat, gan, lambda layer, kernels: kernels)
    x = datasets.eval.images[:8].float().div(255)
    torch.testing.assert_close(same(x), sources.cat(x))  # wiring unchanged
