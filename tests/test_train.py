import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import dlpt
from dlpt.train import History, TrainingDiverged, accuracy, fit, mean_loss


def _blobs(n=200, seed=0):
    g = torch.Generator().manual_seed(seed)
    y = torch.randint(0, 2, (n,), generator=g)
    x = torch.randn(n, 2, generator=g) + 3 * y[:, None].float()
    return x, y


def test_fit_learns_and_records_every_step():
    torch.manual_seed(0)
    x, y = _blobs()
    model = nn.Linear(2, 2)
    before = accuracy(model, x, y)
    history = fit(model, (x, y), lr=0.05, steps=150, progress=False)
    assert history.steps == 150 and len(history.loss) == 150
    assert history.final_loss(20) < history.loss[0]
    assert accuracy(model, x, y) > max(before, 0.9)
    assert history.seconds > 0


def test_epochs_count_steps_per_epoch():
    x, y = _blobs(n=130)
    history = fit(nn.Linear(2, 2), (x, y), epochs=3, batch_size=64, progress=False)
    assert history.steps == 3 * 3  # ceil(130 / 64) = 3 batches an epoch


def test_same_seed_same_history():
    x, y = _blobs()
    runs = []
    for _ in range(2):
        torch.manual_seed(1)
        runs.append(fit(nn.Linear(2, 2), (x, y), steps=20, progress=False).loss)
    assert runs[0] == runs[1]


def test_evaluate_runs_at_intervals_and_at_the_end_in_eval_mode():
    x, y = _blobs()
    model = nn.Sequential(nn.Linear(2, 8), nn.Dropout(0.5), nn.Linear(8, 2))
    modes = []

    def probe(m):
        modes.append(m.training)
        return accuracy(m, x, y)

    history = fit(model, (x, y), steps=25, eval_every=10, evaluate={"acc": probe}, progress=False)
    assert [step for step, _ in history.metrics["acc"]] == [10, 20, 25]
    assert modes == [False, False, False]
    assert model.training  # back in training mode afterwards
    assert history.last("acc") == history.metrics["acc"][-1][1]
    assert history.best("acc") == max(v for _, v in history.metrics["acc"])


def test_fit_takes_a_dataloader():
    x, y = _blobs()
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, y), batch_size=50, shuffle=True)
    history = fit(nn.Linear(2, 2), loader, epochs=2, progress=False)
    assert history.steps == 8


def test_non_scalar_loss_is_refused_with_its_shape():
    x, y = _blobs()

    def per_example(model, batch):
        return F.cross_entropy(model(batch[0]), batch[1], reduction="none")

    with pytest.raises(ValueError, match=r"scalar tensor, got \(32,\).*mean"):
        fit(nn.Linear(2, 2), (x, y), loss=per_example, steps=1, batch_size=32, progress=False)


def test_nan_loss_raises_naming_the_step():
    x, y = _blobs()
    calls = {"n": 0}

    def breaks_at_step_4(model, batch):
        calls["n"] += 1
        value = F.cross_entropy(model(batch[0]), batch[1])
        return value * float("nan") if calls["n"] == 4 else value

    with pytest.raises(TrainingDiverged, match="nan at step 4"):
        fit(nn.Linear(2, 2), (x, y), loss=breaks_at_step_4, steps=10, progress=False)


def test_nan_loss_can_stop_and_return_the_history(capsys):
    x, y = _blobs()
    calls = {"n": 0}

    def explodes_at_step_6(model, batch):
        calls["n"] += 1
        value = F.cross_entropy(model(batch[0]), batch[1])
        return value + float("inf") if calls["n"] == 6 else value

    history = fit(nn.Linear(2, 2), (x, y), loss=explodes_at_step_6, steps=50, on_nan="stop", progress=False)
    assert history.diverged_at == 6 and history.steps == 5
    assert history.final_loss() == math.inf
    assert "stopped, the loss became inf at step 6" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"steps": 5, "epochs": 1}, "exactly one of steps= or epochs="),
        ({}, "exactly one of steps= or epochs="),
        ({"steps": 0}, "at least 1"),
        ({"steps": 5, "batch_size": 0}, "batch_size"),
        ({"steps": 5, "on_nan": "ignore"}, "on_nan"),
    ],
)
def test_bad_arguments_are_refused(kwargs, message):
    x, y = _blobs()
    with pytest.raises(ValueError, match=message):
        fit(nn.Linear(2, 2), (x, y), progress=False, **kwargs)


def test_mismatched_tensors_are_refused_with_their_shapes():
    with pytest.raises(ValueError, match=r"\(10, 2\), \(9,\)"):
        fit(nn.Linear(2, 2), (torch.zeros(10, 2), torch.zeros(9, dtype=torch.long)), steps=1, progress=False)
    with pytest.raises(TypeError, match="DataLoader or a tuple of tensors"):
        fit(nn.Linear(2, 2), [[1, 2], [3, 4]], steps=1, progress=False)


def test_progress_degrades_to_plain_lines_in_a_log(capsys):
    x, y = _blobs()
    fit(nn.Linear(2, 2), (x, y), steps=20, desc="demo")
    lines = [line for line in capsys.readouterr().err.splitlines() if line.startswith("demo step")]
    assert lines[0].startswith("demo step 2/20: loss ") and lines[-1].startswith("demo step 20/20")
    assert len(lines) == 10


def test_history_errors_are_clear():
    with pytest.raises(ValueError, match="no step"):
        History().final_loss()
    with pytest.raises(KeyError, match="no evaluations of 'acc'"):
        History().last("acc")


def test_accuracy_and_mean_loss():
    model = nn.Linear(2, 2)
    with torch.no_grad():
        model.weight.copy_(torch.eye(2))
        model.bias.zero_()
    x = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 0.0]])
    y = torch.tensor([0, 1, 1])
    assert accuracy(model, x, y) == pytest.approx(2 / 3)
    assert mean_loss(model, x, y) == pytest.approx(F.cross_entropy(x, y).item())


def test_fit_is_reexported():
    assert dlpt.train.fit is fit


def test_the_notebook_progress_bar_redraws_at_most_once_a_second(monkeypatch):
    # Each redraw is kernel messages that nbval reads only after the cell; thousands of them
    # made the last one drop and a healthy notebook fail (see dlpt.train._Progress).
    from dlpt import train

    monkeypatch.setattr(train, "in_notebook", lambda: True)
    progress = train._Progress(1000, "fit", enabled=True)
    try:
        assert progress.bar.mininterval >= 1.0
    finally:
        progress.close()
