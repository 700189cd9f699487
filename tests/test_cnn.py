import pytest
import torch
import torch.nn.functional as F

from kernelfusion import cnn, config, data, machine, store, training


def test_shapes_and_features_are_the_flattened_second_block():
    cfg = config.load("smoke", {"cnn.channels1": 5, "cnn.channels2": 7})
    model = cnn.build(cfg.cnn, 24, seed=0)
    x = torch.rand(3, 3, 24, 24)
    assert model.conv1.weight.shape == (5, 3, 5, 5) and model.conv2.weight.shape == (7, 5, 5, 5)
    features = model.features(x)
    assert features.shape == (3, 7 * 6 * 6) == (3, model.feature_size)
    assert torch.allclose(model(x), model.head(features))
    assert torch.equal(model(x, features_only=True), features)


@pytest.mark.parametrize("preset", ["default", "paper"])
def test_batched_features_are_the_plain_layouts_numbers_and_independent_of_the_batch(preset):
    """`cnn.features` runs its batches channels-last (oneDNN's faster path). Its numbers are the
    plain layout's to float32 rounding (bit for bit on an AVX-512 CPU, within 1e-6 of the largest
    feature where oneDNN is held to AVX2), and to the bit the same whatever the batch size and
    on every call: a reordered or mis-laid-out output would differ by the features' own size."""
    cfg = config.load(preset)
    size = cfg.data.image_size
    model = cnn.build(cfg.cnn, size, seed=1).eval()
    images = torch.randint(0, 256, (70, 3, size, size), dtype=torch.uint8)
    with torch.no_grad():
        plain = model.features(images.float().div(255))
        probability = torch.softmax(model(images.float().div(255)), 1)[:, 1]
    batched = cnn.features(model, images)
    scale = float(plain.abs().max())
    torch.testing.assert_close(batched, plain, rtol=0, atol=1e-5 * scale)
    assert torch.equal(cnn._batched(model.features, model, images, "cpu", batch=16), batched)
    assert torch.equal(cnn.features(model, images), batched)
    assert torch.equal(cnn.features((model, model), images), torch.cat([batched, batched], 1))
    torch.testing.assert_close(cnn.positive_probability(model, images), probability)
    assert batched.is_contiguous()


def test_same_seed_same_initialisation():
    cfg = config.load("smoke").cnn
    a, b, c = cnn.build(cfg, 24, 3), cnn.build(cfg, 24, 3), cnn.build(cfg, 24, 4)
    assert torch.equal(a.conv1.weight, b.conv1.weight)
    assert not torch.equal(a.conv1.weight, c.conv1.weight)


def test_class_weights_balance_the_loss():
    labels = torch.tensor([0] * 10 + [1] * 90)
    weights = training.class_weights(labels)
    assert torch.allclose(weights, torch.tensor([5.0, 100 / 180]))
    assert torch.isclose((weights[labels]).sum(), torch.tensor(100.0))


def test_balanced_plan_draws_classes_equally_and_weighted_plan_is_a_permutation():
    labels = torch.tensor([0] * 20 + [1] * 380)
    gen = torch.Generator().manual_seed(0)
    balanced = training.plan_batches(labels, torch.arange(400), 5, 40, "balanced", gen)
    share = labels[balanced].float().mean()
    assert 0.4 < share < 0.6
    plain = training.plan_batches(labels, torch.arange(400), 1, 40, "weighted", gen)
    assert sorted(plain.flatten().tolist()) == list(range(400))


def _red_minority(n: int, seed: int):
    """1:9 data: the minority class is a red image, the rest noise."""
    gen = torch.Generator().manual_seed(seed)
    labels = (torch.rand(n, generator=gen) < 0.1).long()
    images = torch.randint(0, 60, (n, 3, 16, 16), dtype=torch.uint8, generator=gen)
    images[labels == 1, 0] = 250
    return images, labels


def test_training_loss_is_the_class_weighted_mean():
    """The loss a step records is sum(w_y * CE) / sum(w_y), not the plain mean: one step at a
    vanishing learning rate, checked against torch's own weighted cross-entropy."""
    images, labels = _red_minority(64, 0)
    cfg = config.load("smoke", {"cnn.lr": 1e-12, "data.image_size": 16}).cnn
    model = cnn.build(cfg, 16, 0)
    weights = training.class_weights(labels)
    plan = torch.arange(64).view(1, 1, 64)
    result = training.train_stacked(
        [model], images, labels, plan, weights[None], cfg, progress=False
    )
    logits = model(images.float() / 255)
    weighted = torch.nn.functional.cross_entropy(logits, labels, weight=weights)
    plain = torch.nn.functional.cross_entropy(logits, labels)
    assert result.losses[0, 0].item() == pytest.approx(weighted.item(), rel=1e-5)
    assert abs(weighted.item() - plain.item()) > 1e-3


def test_weighted_loss_learns_the_minority_class_on_held_out_images():
    images, labels = _red_minority(400, 0)
    held_out, held_labels = _red_minority(400, 1)
    cfg = config.load("smoke", {"cnn.lr": 0.01, "data.image_size": 16}).cnn
    plan = training.plan_batches(
        labels, torch.arange(400), 3, 32, "weighted", torch.Generator().manual_seed(0)
    )
    model = cnn.build(cfg, 16, 0)
    result = training.train_stacked(
        [model],
        images,
        labels,
        plan[None],
        training.class_weights(labels)[None],
        cfg,
        progress=False,
    )
    logits = training.predict_stacked(model, result.params, held_out)[0]
    report = training.classification_report(held_labels, logits.argmax(1), ["rest", "red"])
    assert report["classes"]["red"]["recall"] >= 0.95 and report["balanced accuracy"] > 0.95


def test_stacked_training_equals_training_alone():
    """A model trained inside a stack gets the weights it gets trained alone, same batches."""
    cfg = config.load("smoke").cnn
    torch.manual_seed(0)
    images = torch.randint(0, 255, (120, 3, 24, 24), dtype=torch.uint8)
    labels = (torch.rand(120) < 0.3).long()
    gen = torch.Generator().manual_seed(1)
    plans = torch.stack(
        [training.plan_batches(labels, torch.arange(120), 2, 16, "weighted", gen) for _ in range(3)]
    )
    weights = training.class_weights(labels).expand(3, -1)
    stacked = training.train_stacked(
        [cnn.build(cfg, 24, s) for s in range(3)],
        images,
        labels,
        plans,
        weights,
        cfg,
        progress=False,
    )
    alone = cnn.build(cfg, 24, 2)
    optimizer = torch.optim.Adam(alone.parameters(), lr=cfg.lr)
    for step in range(plans.shape[1]):
        index = plans[2, step]
        loss = F.cross_entropy(alone(images[index].float() / 255), labels[index], weight=weights[2])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    for name, value in alone.state_dict().items():
        torch.testing.assert_close(stacked.params[name][2], value, rtol=1e-4, atol=1e-6)


def _tiny_plans(models: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """96 random 24 px images, labels (40% positive) and one epoch's batches of 16 per model."""
    images = torch.randint(0, 255, (96, 3, 24, 24), dtype=torch.uint8)
    labels = (torch.rand(96, generator=torch.Generator().manual_seed(2)) < 0.4).long()
    gen = torch.Generator().manual_seed(3)
    plans = [
        training.plan_batches(labels, torch.arange(96), 1, 16, "weighted", gen)
        for _ in range(models)
    ]
    return images, labels, torch.stack(plans)


def test_training_in_stacks_equals_one_stack_and_the_rule_per_device():
    """The zoo's stacks of a few models give each model the weights one big stack gives it,
    with the losses and snapshots in the same order."""
    cfg = config.load("smoke").cnn
    images, labels, plans = _tiny_plans(5)
    weights = training.class_weights(labels).expand(5, -1)
    common = {"images": images, "labels": labels, "cfg": cfg, "snapshot_steps": (3, 6)}
    one = training.train_in_stacks(
        [cnn.build(cfg, 24, s) for s in range(5)], plans, weights, 5, progress=False, **common
    )
    parts = training.train_in_stacks(
        [cnn.build(cfg, 24, s) for s in range(5)], plans, weights, 2, progress=False, **common
    )
    for name, value in one.params.items():
        torch.testing.assert_close(parts.params[name], value, rtol=1e-4, atol=1e-6)
    torch.testing.assert_close(parts.losses, one.losses, rtol=1e-4, atol=1e-6)
    torch.testing.assert_close(parts.snapshots[6]["conv1.weight"], one.snapshots[6]["conv1.weight"])
    assert training.stack_size("cpu", 32) == training.CPU_STACK
    assert training.stack_size("cuda", 32) == 32 and training.stack_size("cpu", 32, 4) == 4


def test_models_trained_one_after_another_equal_one_stack():
    """The CPU's path (`train_each`: plain channels-last modules, one Adam each) gives each
    model the weights, losses, snapshots and per-step parameters one vectorized stack gives it;
    `train_models` takes it on a CPU unless stacks are asked for."""
    cfg = config.load("smoke").cnn
    images, labels, plans = _tiny_plans(3)
    weights = torch.stack([training.class_weights(labels), torch.ones(2), torch.tensor([2.0, 1.0])])
    seen: dict[str, list] = {"stack": [], "each": []}
    common = {"images": images, "labels": labels, "cfg": cfg, "snapshot_steps": (3, 6)}
    results = {}
    for path in seen:
        results[path] = training.train_models(
            [cnn.build(cfg, 24, s) for s in range(3)],
            plans,
            weights,
            3 if path == "stack" else 0,
            progress=False,
            on_step=lambda step, params, path=path: seen[path].append(
                (step, {k: v.clone() for k, v in params.items()})  # read at the step, as cnn's
            ),
            on_steps=(2, 6),
            **common,
        )
    stack, each = results["stack"], results["each"]
    assert set(each.params) == set(stack.params)
    for name, value in stack.params.items():
        assert each.params[name].is_contiguous()
        torch.testing.assert_close(each.params[name], value, rtol=1e-4, atol=1e-6)
    torch.testing.assert_close(each.losses, stack.losses, rtol=1e-4, atol=1e-6)
    assert each.snapshots.keys() == stack.snapshots.keys() == {3, 6}
    torch.testing.assert_close(
        each.snapshots[6]["conv2.weight"], stack.snapshots[6]["conv2.weight"], rtol=1e-4, atol=1e-6
    )
    assert [s for s, _ in seen["each"]] == [s for s, _ in seen["stack"]] == [2, 6]
    torch.testing.assert_close(
        seen["each"][0][1]["head.weight"], seen["stack"][0][1]["head.weight"], rtol=1e-4, atol=1e-6
    )
    assert not torch.equal(each.params["conv1.weight"][0], each.params["conv1.weight"][1])


def test_divergence_is_reported_with_stage_step_and_value():
    losses = torch.tensor([[0.5, 0.4, float("nan")], [0.5, 0.4, 0.3]])
    with pytest.raises(training.DivergedError, match="black zoo diverged.*model 0 at step 3.*nan"):
        training.check_finite(losses, "black zoo")
    later = torch.tensor([[0.5, 0.4, float("nan")], [0.5, float("inf"), 0.3]])  # model 1 first
    with pytest.raises(training.DivergedError, match="lr diverged: g at step 2 is inf; lower lr"):
        training.check_finite(later, "lr", ["f", "g"], "lower lr")
    cfg = config.load("smoke", {"cnn.lr": 0.5}).cnn
    images = torch.randint(0, 255, (64, 3, 24, 24), dtype=torch.uint8)
    labels = torch.randint(0, 2, (64,))
    plan = training.plan_batches(
        labels, torch.arange(64), 1, 16, "none", torch.Generator().manual_seed(0)
    )
    poisoned = torch.tensor([[float("inf"), 1.0]])
    with pytest.raises(training.DivergedError, match="step 1"):
        training.train_stacked(
            [cnn.build(cfg, 24, 0)], images, labels, plan[None], poisoned, cfg, progress=False
        )


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory):
    cfg = config.load("smoke")
    run = store.open(cfg, tmp_path_factory.mktemp("runs"))
    datasets = data.make_datasets(cfg, run, progress=False)
    return cfg, run, datasets


def test_source_cnns_share_init_report_metrics_and_round_trip(smoke_run):
    cfg, run, datasets = smoke_run
    sources = cnn.make_sources(cfg, run, datasets, progress=False)
    init = cnn.build(cfg.cnn, cfg.data.image_size, machine.init_seed(cfg))
    assert torch.equal(sources.init.conv1.weight, init.conv1.weight)
    assert not torch.equal(sources.black.conv1.weight, sources.cat.conv1.weight)
    report = sources.report
    for domain in cnn.DOMAINS:
        test = report["test"][domain]
        assert sum(map(sum, test["confusion"])) == int((datasets[domain].split == 2).sum())
        assert set(report["eval groups"][domain]) == set(data.GROUPS)
        assert len(report["history"][domain]) == cfg.cnn.epochs
    again = cnn.make_sources(cfg, run, datasets, progress=False)
    assert again.artifact.reused
    assert torch.equal(again.cat.conv2.weight, sources.cat.conv2.weight)
    assert "shared initialisation seed" in again.artifact.json("card")
