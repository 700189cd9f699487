import pytest
import torch

from kernelfusion import config, data, store, training, zoo


def test_kernel_sets_keep_model_step_and_filter_order():
    k, c1, c2 = 2, 3, 4
    snapshots = {
        step: {
            "conv1.weight": torch.arange(k * c1 * 75).float().view(k, c1, 3, 5, 5) + step,
            "conv2.weight": torch.zeros(k, c2, c1, 5, 5) + step,
        }
        for step in (5, 9)
    }
    sets, available = zoo.extract_kernel_sets(snapshots)
    assert available == k * 2 * c2
    assert sets.kernels["conv1"].shape == (k * 2 * c1, 3, 5, 5)
    assert sets.kernels["conv2"].shape == (k * 2 * c2, c1, 5, 5)
    for row, (model, step, filt) in enumerate(sets.index["conv1"].tolist()):
        assert torch.equal(sets.kernels["conv1"][row], snapshots[step]["conv1.weight"][model, filt])
    assert sets.index["conv1"][:4].tolist() == [[0, 5, 0], [0, 5, 1], [0, 5, 2], [0, 9, 0]]


def test_kernel_set_subset_is_seeded_sorted_and_warns_when_short():
    snapshots = {
        1: {"conv1.weight": torch.randn(4, 5, 3, 5, 5), "conv2.weight": torch.randn(4, 6, 5, 5, 5)}
    }
    a, _ = zoo.extract_kernel_sets(snapshots, keep=7, seed=3)
    b, _ = zoo.extract_kernel_sets(snapshots, keep=7, seed=3)
    assert torch.equal(a.index["conv2"], b.index["conv2"]) and len(a.kernels["conv1"]) == 7
    rows = a.index["conv2"].tolist()
    assert rows == sorted(rows)
    with pytest.warns(UserWarning, match="gives only 20 sets for conv1"):
        zoo.extract_kernel_sets(snapshots, keep=100)


def test_snapshot_schedule_spans_second_half():
    assert training.snapshot_schedule(100, 3) == (50, 75, 100)
    assert training.snapshot_schedule(10, 1) == (10,)


def test_zoo_trains_saves_and_reloads(tmp_path):
    cfg = config.load("smoke", {"zoo.kernel_sets": 10})
    run = store.open(cfg, tmp_path)
    datasets = data.make_datasets(cfg, run, progress=False)
    first = zoo.make_zoo(cfg, run, datasets, progress=False)
    assert first.black.kernels["conv1"].shape == (10, 3, 5, 5)
    assert first.cat.kernels["conv2"].shape == (10, cfg.cnn.channels1, 5, 5)
    assert len(first.summary["black"]["val accuracy"]) == cfg.zoo.models
    assert not torch.equal(first.black.kernels["conv1"], first.cat.kernels["conv1"])
    again = zoo.make_zoo(cfg, run, datasets, progress=False)
    assert again.artifact.reused
    assert torch.equal(again.cat.index["conv2"], first.cat.index["conv2"])
    stacked = again.artifact.tensors("black_models")
    assert stacked["conv1.weight"].shape[0] == cfg.zoo.models
    # both zoos take the same number of steps though their sets differ in size
    unequal = zoo.zoo_steps(config.load("smoke", {"zoo.equal_steps": False}), datasets)
    assert unequal["black"] != unequal["cat"]
    assert first.summary["black"]["steps"] == first.summary["cat"]["steps"] == max(unequal.values())


def test_only_models_that_learned_give_kernel_sets(tmp_path):
    """A bar no model can pass is an error naming the key; a bar between the models' balanced
    accuracies keeps exactly the models above it, by number."""
    # seed 0: a smoke zoo whose 2-epoch models differ in balanced accuracy (at some seeds
    # every one is still at chance, and no bar splits them)
    cfg = config.load("smoke", {"zoo.min_balanced_accuracy": 0.999, "seed": 0})
    run = store.open(cfg, tmp_path)
    datasets = data.make_datasets(cfg, run, progress=False)
    with pytest.raises(ValueError, match="zoo.min_balanced_accuracy"):
        zoo.make_zoo(cfg, run, datasets, progress=False)
    everything = zoo.make_zoo(config.load("smoke", {"seed": 0}), run, datasets, progress=False)
    balanced = torch.tensor(everything.summary["black"]["val balanced accuracy"])
    bar = float(balanced.sort().values[len(balanced) // 2])  # the upper half passes
    chosen = {"zoo.min_balanced_accuracy": bar, "seed": 0}
    kept = zoo.make_zoo(config.load("smoke", chosen), run, datasets, progress=False)
    passing = set((balanced >= bar).nonzero().flatten().tolist())
    assert set(kept.black.index["conv1"][:, 0].tolist()) == passing
    assert kept.summary["black"]["models kept"] == len(passing) < len(balanced)


def test_cosine_summary_and_statistics_on_known_kernels():
    kernels = torch.zeros(2, 3, 5, 5)
    kernels[0, 0, 2, 2] = 1.0  # a delta: all frequencies
    kernels[1] = 1.0  # a constant: only the lowest
    stats = zoo.kernel_statistics(kernels)
    assert stats["high-frequency share"][1] < 1e-6 < stats["high-frequency share"][0]
    assert torch.allclose(zoo.cosine_matrix(kernels, kernels).diagonal(), torch.ones(2))
