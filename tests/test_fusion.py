import copy
import dataclasses

import pytest
import torch

from kernelfusion import alignment, behaviour, cnn, config, fusion
from kernelfusion import fusion as registry


class _Gan:
    """A KernelGan stand-in with real structure: identity or a known map per layer."""

    def __init__(self, reference, function=None, reference2=None, match_images=None):
        self.reference, self.reference2, self.match_images = reference, reference2, match_images
        self.published = False
        self.function = function or (lambda layer, k, direction: k.clone())
        self.kernels = {
            "black": {
                "conv1": torch.randn(20, 3, 5, 5),
                "conv2": torch.randn(20, reference.shape[0], 5, 5),
            }
        }

    def translate(self, layer, kernels, direction):
        return self.function(layer, kernels, direction)


def _model(seed=0):
    cfg = config.load("smoke")
    return cnn.build(cfg.cnn, cfg.data.image_size, seed)


def test_identity_generators_return_the_source_cnn_exactly():
    source = _model()
    reference = _model(5).conv1.weight.detach()
    out = fusion.generated(source, _Gan(reference), "cat->black")
    for key, value in source.state_dict().items():
        assert torch.equal(out.state_dict()[key], value), key
    x = torch.rand(4, 3, 24, 24)
    assert torch.equal(out(x), source(x))


def test_translation_is_filter_wise_in_place_and_keeps_wiring():
    source = _model()
    reference = source.conv1.weight.detach()[torch.tensor([2, 0, 3, 1])]  # another order
    seen = {}

    def mark(layer, kernels, direction):
        seen[layer] = kernels.clone()
        return kernels * 2.0

    out = fusion.generated(source, _Gan(reference, mark), "cat->black")
    w1, w2 = source.conv1.weight.detach(), source.conv2.weight.detach()
    assert torch.equal(out.conv1.weight, 2 * w1)  # each filter in its own position
    assert torch.equal(out.conv2.weight, 2 * w2)  # channels back in the model's own order
    perm = alignment.matching_permutation(source.conv1.weight.detach(), reference)
    assert torch.equal(seen["conv2"], w2[:, perm])  # the GAN saw the reference order
    assert torch.equal(w1[perm], reference)
    assert torch.equal(out.head.weight, source.head.weight)


def _permuted_twin(model):
    """The same function as `model` with its hidden channels in another order."""
    p1 = torch.randperm(model.conv1.out_channels, generator=torch.Generator().manual_seed(1))
    p2 = torch.randperm(model.conv2.out_channels, generator=torch.Generator().manual_seed(2))
    state = {k: v.clone() for k, v in model.state_dict().items()}
    state["conv1.weight"], state["conv1.bias"] = state["conv1.weight"][p1], state["conv1.bias"][p1]
    state["conv2.weight"] = state["conv2.weight"][p2][:, p1]
    state["conv2.bias"] = state["conv2.bias"][p2]
    head = state["head.weight"]
    state["head.weight"] = head.view(head.shape[0], len(p2), -1)[:, p2].flatten(1)
    twin = copy.deepcopy(model)
    twin.load_state_dict(state)
    return twin


@pytest.mark.parametrize("by", ["weights", "activations"])
def test_whole_aligned_layers_hand_a_permuted_twin_the_same_layers(by):
    """With `reference2` (gan.align_outputs), each layer reaches the translator in the
    reference's filter order: a model and its channel-permuted twin (the same function) are
    handed identical layers, and a translation that depends on a filter's position gives both
    the same generated function."""
    source = _model()
    twin = _permuted_twin(source)
    x = torch.rand(4, 3, 24, 24)
    torch.testing.assert_close(twin(x), source(x))
    reference = source.conv1.weight.detach()[torch.tensor([1, 3, 0, 2])]
    perm = alignment.matching_permutation(source.conv1.weight.detach(), reference)
    reference2 = source.conv2.weight.detach()[:, perm].flip(0)

    def positional(layer, kernels, direction):  # filter i moves by 0.01 * i
        shift = 0.01 * torch.arange(len(kernels), dtype=kernels.dtype)
        return kernels + shift.view(-1, 1, 1, 1)

    seen = []

    def recording(layer, kernels, direction):
        seen.append((layer, kernels.clone()))
        return positional(layer, kernels, direction)

    images = (
        torch.rand(16, 3, 24, 24, generator=torch.Generator().manual_seed(3))
        if by == "activations"
        else None
    )
    outputs = [
        fusion.generated(m, _Gan(reference, recording, reference2, images), "cat->black")
        for m in (source, twin)
    ]
    half = len(seen) // 2
    for (layer, a), (_, b) in zip(seen[:half], seen[half:], strict=True):
        torch.testing.assert_close(a, b, msg=layer)
    torch.testing.assert_close(seen[0][1], reference)
    torch.testing.assert_close(seen[1][1], reference2)
    torch.testing.assert_close(outputs[0](x), outputs[1](x))
    # without output alignment the twin's layers arrive in its own order: a different function
    unaligned = [
        fusion.generated(m, _Gan(reference, positional), "cat->black") for m in (source, twin)
    ]
    assert not torch.allclose(unaligned[0](x), unaligned[1](x))


def test_noise_control_moves_each_filter_as_far_as_the_translation():
    source = _model()
    translated = fusion.generated(
        source, _Gan(source.conv1.weight.detach(), lambda layer, k, d: k + 0.1), "cat->black"
    )
    noisy = fusion.with_noise(source, translated, seed=0)
    for layer in ("conv1", "conv2"):
        a = translated.state_dict()[f"{layer}.weight"] - source.state_dict()[f"{layer}.weight"]
        b = noisy.state_dict()[f"{layer}.weight"] - source.state_dict()[f"{layer}.weight"]
        torch.testing.assert_close(a.flatten(1).norm(dim=1), b.flatten(1).norm(dim=1))
        assert not torch.allclose(a, b)


def test_average_and_task_arithmetic():
    a, b, init = _model(1), _model(2), _model(3)
    average = fusion.combine(a, b, init, None)
    arithmetic = fusion.combine(a, b, init, 1.0)
    wa, wb, w0 = a.conv1.weight, b.conv1.weight, init.conv1.weight
    torch.testing.assert_close(average.conv1.weight, (wa + wb) / 2)
    torch.testing.assert_close(arithmetic.conv1.weight, wa + wb - w0)


def test_other_zoo_control_draws_real_zoo_filters():
    source = _model()
    gan = _Gan(source.conv1.weight.detach())
    out = fusion.other_zoo_filters(source, gan, "black", seed=0)
    pool = torch.nn.functional.normalize(gan.kernels["black"]["conv1"].flatten(1), dim=1)
    drawn = out.conv1.weight.detach().flatten(1)
    for row in torch.nn.functional.normalize(drawn, dim=1):  # a real zoo filter's direction
        assert (pool @ row).max() == pytest.approx(1.0, abs=1e-5)
    # at the norm of the source filter it replaces, position by position
    torch.testing.assert_close(
        drawn.norm(dim=1), source.conv1.weight.detach().flatten(1).norm(dim=1)
    )


def _permuted(model, perm1, perm2):
    """The same function as `model` with its hidden channels in another order."""
    state = {k: v.clone() for k, v in model.state_dict().items()}
    state["conv1.weight"], state["conv1.bias"] = (
        state["conv1.weight"][perm1],
        state["conv1.bias"][perm1],
    )
    state["conv2.weight"] = state["conv2.weight"][:, perm1][perm2]
    state["conv2.bias"] = state["conv2.bias"][perm2]
    head = state["head.weight"]
    state["head.weight"] = head.view(head.shape[0], len(perm2), -1)[:, perm2].flatten(1)
    out = _model()
    out.load_state_dict(state)
    return out


def test_aligned_merge_undoes_a_channel_permutation():
    """Merging a CNN with a channel-shuffled copy of itself gives the CNN back; plain averaging
    does not."""
    torch.manual_seed(0)
    a = _model(4)
    b = _permuted(a, torch.tensor([2, 0, 3, 1]), torch.randperm(a.conv2.out_channels))
    x = torch.rand(6, 3, 24, 24)
    torch.testing.assert_close(b(x), a(x))  # the same function, other channel order
    images = torch.randint(0, 256, (64, 3, 24, 24), dtype=torch.uint8)
    merged = fusion.aligned_merge(a, b, images)
    for key, value in a.state_dict().items():
        torch.testing.assert_close(merged.state_dict()[key], value)
    plain = fusion.combine(a, b, a, None)
    assert not torch.allclose(plain.conv1.weight, a.conv1.weight)


class _ZooArtifact:
    """A zoo artifact's `<domain>_models` tensors: stacked state dicts of its final models."""

    def __init__(self, black, cat):
        self.models = {"black": black, "cat": cat}

    def tensors(self, name):
        models = self.models[name.removesuffix("_models")]
        return {k: torch.stack([m.state_dict()[k] for m in models]) for k in models[0].state_dict()}


def test_nearest_zoo_model_finds_a_channel_shuffled_copy():
    cfg = config.load("smoke")
    target = _model(9)
    copy = _permuted(target, torch.tensor([1, 0, 3, 2]), torch.arange(target.conv2.out_channels))
    zoo = _ZooArtifact([_model(1), _model(2)], [_model(3), copy, _model(5)])
    nearest, found = fusion.nearest_zoo_model(cfg, target, zoo)
    assert (found["domain"], found["model"]) == ("cat", 1)
    assert found["relative distance"] == pytest.approx(0.0, abs=1e-6)
    torch.testing.assert_close(nearest.conv1.weight, copy.conv1.weight)


def test_the_oracle_never_sees_a_scored_image(tmp_path):
    """Replacing every evaluated image by noise leaves the oracle's weights unchanged."""
    from kernelfusion import data, store

    cfg = config.load("smoke", {"cnn.epochs": 1})
    datasets = data.make_datasets(cfg, store.open(cfg, tmp_path), progress=False)
    first = fusion.train_oracle(cfg, datasets, "cpu", progress=False)
    scored = datasets.eval.split != 0
    datasets.eval.images[scored] = torch.randint(
        0, 256, datasets.eval.images[scored].shape, dtype=torch.uint8
    )
    second = fusion.train_oracle(cfg, datasets, "cpu", progress=False)
    for key, value in first.state_dict().items():
        assert torch.equal(second.state_dict()[key], value), key


def test_no_label_free_model_sees_a_scored_image(tmp_path):
    """Replacing every scored evaluation image by noise leaves the weights of the generated
    CNNs (from a CycleGAN with the functional phase), the distilled CNN and the merges
    unchanged: the label-free paths read no evaluation image."""
    from kernelfusion import cnn, cyclegan, data, pipeline, store

    cfg = config.load("smoke", {"gan.functional_weight": 10.0, "gan.functional_steps": 20})
    run = store.open(cfg, tmp_path)
    datasets = data.make_datasets(cfg, run, progress=False)
    sources = cnn.make_sources(cfg, run, datasets, progress=False)
    gan = pipeline.run(cfg, run, progress=False, until="gan").gan

    def label_free(datasets) -> dict[str, torch.nn.Module]:
        parts = registry.Parts(cfg, datasets, sources, None, "cpu", False)
        registry.build_into(registry.GAN_FREE, parts)
        nets, _ = behaviour.train_phase(
            cfg, gan, sources, behaviour.unlabelled(cfg, datasets), "cpu", progress=False
        )
        tuned = dataclasses.replace(
            gan,
            layers={
                layer: cyclegan.LayerGan(nets[layer], g.history, g.channels)
                for layer, g in gan.layers.items()
            },
        )
        parts.gan = tuned
        registry.build_into(registry.FROM_GAN, parts)
        kept = ("merge", "average", "arithmetic", "distilled", *registry.FROM_GAN)
        return {name: parts.built[name] for name in kept}

    first = label_free(datasets)
    scored = datasets.eval.split != 0
    datasets.eval.images[scored] = torch.randint(
        0, 256, datasets.eval.images[scored].shape, dtype=torch.uint8
    )
    second = label_free(datasets)
    assert {"gen_f", "gen_g", "merge"} <= set(first)
    for name, model in first.items():
        for key, value in model.state_dict().items():
            assert torch.equal(second[name].state_dict()[key], value), (name, key)
