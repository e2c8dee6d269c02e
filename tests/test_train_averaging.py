"""The moving average of the weights (``ema_decay``) and the shift-consistency loss's options: the
average's arithmetic, that validation and ``best.pt`` see the average while training goes on from
the trained weights, that a run resumes with its average, and the configuration's checks."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch", reason="training needs torch (the 'train' extra)")

from edge_emotion.train.averaging import WeightAverage  # noqa: E402
from edge_emotion.train.checkpoint import load_checkpoint  # noqa: E402
from edge_emotion.train.config import TrainConfig  # noqa: E402
from edge_emotion.train.trainer import RunSpec, train  # noqa: E402
from torch import nn  # noqa: E402

from edge_emotion.config import EDGE  # noqa: E402
from edge_emotion.errors import InputError  # noqa: E402


def _net() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4))


def test_the_average_follows_the_weights_with_a_warmed_up_decay():
    net = _net()
    average = WeightAverage(net, decay=0.9)
    start = {k: v.clone() for k, v in net.state_dict().items()}
    assert average.current_decay() == pytest.approx(2 / 11)  # step 1: min(0.9, 2 / 11)
    with torch.no_grad():
        net[0].weight.add_(1.0)
    net[1].num_batches_tracked.fill_(7)
    average.update(net)
    d = 2 / 11
    assert torch.allclose(average.shadow["0.weight"], d * start["0.weight"] + (1 - d) * net[0].weight)
    assert int(average.shadow["1.num_batches_tracked"]) == 7  # integers are copied, not averaged
    for _ in range(200):
        average.update(net)
    assert average.current_decay() == pytest.approx(0.9)
    assert torch.allclose(average.shadow["0.weight"], net[0].weight, atol=1e-6)


def test_the_average_is_applied_for_a_block_and_the_trained_weights_come_back():
    net = _net()
    average = WeightAverage(net, decay=0.5)
    trained = {k: v.clone() for k, v in net.state_dict().items()}
    average.shadow["0.weight"].fill_(0.25)
    with average.applied(net):
        assert torch.all(net[0].weight == 0.25)
    assert all(torch.equal(v, trained[k]) for k, v in net.state_dict().items())
    with pytest.raises(RuntimeError), average.applied(net):
        raise RuntimeError("validation failed")
    assert all(torch.equal(v, trained[k]) for k, v in net.state_dict().items())  # even after an error
    copy = WeightAverage(_net(), decay=0.5)
    copy.load_state_dict(average.state_dict())
    assert copy.steps == average.steps and torch.equal(copy.shadow["0.weight"], average.shadow["0.weight"])
    with pytest.raises(ValueError):
        WeightAverage(net, decay=1.0)


@pytest.mark.parametrize(
    "changes, message",
    [
        (dict(ema_decay=1.0), "ema_decay"),
        (dict(ema_decay=-0.1), "ema_decay"),
        (dict(shift_consistency=-1.0), "shift_consistency"),
        (dict(shift_consistency=1.0), "window_offset_ms"),
        (dict(shift_consistency=1.0, window_offset_ms=500, mixup_alpha=0.2), "mixup"),
    ],
)
def test_the_config_refuses_what_cannot_work(changes, message):
    with pytest.raises(InputError, match=message):
        TrainConfig(stage="audio", **changes)


def test_a_run_validates_and_keeps_the_average_and_resumes_with_it(shared_data, tmp_path):
    config = TrainConfig(
        stage="audio",
        epochs=2,
        batch_size=4,
        workers=0,
        cache_workers=1,
        limit=16,
        seed=3,
        window_offset_ms=1000,
        shift_consistency=1.0,
        ema_decay=0.8,
    )
    spec = RunSpec(
        preset=EDGE,
        config=config,
        corpora=(("ravdess-audio", shared_data / "ravdess"),),
        out_dir=tmp_path / "run",
        cache_dir=tmp_path / "cache",
        progress=False,
    )
    first = train(RunSpec(**{**spec.__dict__, "config": config.replace(epochs=1)}))
    last = load_checkpoint(first.last_checkpoint)
    steps = last["ema"]["steps"]
    assert steps > 0 and last["ema"]["decay"] == pytest.approx(0.8)
    best = load_checkpoint(first.best_checkpoint)
    assert "ema" not in best
    averaged = {k.split(".", 1)[1]: v for k, v in last["ema"]["shadow"].items() if k.startswith("audio.")}
    trained = {k.split(".", 1)[1]: v for k, v in last["model"].items() if k.startswith("audio.")}
    kept = {k.split(".", 1)[1]: v for k, v in best["model"].items() if k.startswith("audio.")}
    assert averaged and all(torch.equal(kept[k], v) for k, v in averaged.items())  # best.pt: the average
    assert any(not torch.equal(trained[k], v) for k, v in averaged.items())  # last.pt: the trained weights

    resumed = train(RunSpec(**{**spec.__dict__, "resume": True}))
    assert [row["epoch"] for row in resumed.history] == [0, 1] and resumed.history[0] == first.history[0]
    assert load_checkpoint(resumed.last_checkpoint)["ema"]["steps"] == 2 * steps
