import random

import numpy as np
import pytest
import torch

import dlpt
from dlpt import runtime


def test_setup_seeds_everything_and_prints_one_line(capsys, monkeypatch):
    monkeypatch.delenv("DLPT_SEED", raising=False)
    device = dlpt.setup(seed=3, device="cpu")
    first = (random.random(), np.random.rand(), torch.rand(1).item())
    dlpt.setup(seed=3, device="cpu")
    second = (random.random(), np.random.rand(), torch.rand(1).item())
    assert device == torch.device("cpu")
    assert first == second
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[0] == f"dlpt: device=cpu, seed=3, torch {torch.__version__}, 1 CPU thread"


def test_setup_uses_one_thread_unless_dlpt_threads_says_otherwise(capsys, monkeypatch):
    before = torch.get_num_threads()
    try:
        monkeypatch.delenv("DLPT_THREADS", raising=False)
        dlpt.setup(device="cpu")
        assert torch.get_num_threads() == 1
        monkeypatch.setenv("DLPT_THREADS", "2")
        dlpt.setup(device="cpu")
        assert torch.get_num_threads() == 2
        assert "2 CPU threads" in capsys.readouterr().out
        for bad in ("two", "0"):
            monkeypatch.setenv("DLPT_THREADS", bad)
            with pytest.raises(ValueError, match="DLPT_THREADS must be a whole number"):
                dlpt.setup(device="cpu")
    finally:
        torch.set_num_threads(before)


def test_a_seed_that_is_not_a_number_is_refused_with_its_value(monkeypatch):
    monkeypatch.setenv("DLPT_SEED", "three")
    with pytest.raises(ValueError, match="DLPT_SEED must be a whole number such as 3, got 'three'"):
        dlpt.setup(device="cpu")


def test_current_seed_is_the_seed_setup_chose(capsys, monkeypatch):
    monkeypatch.setenv("DLPT_SEED", "4")
    dlpt.setup(seed=0, device="cpu")
    assert dlpt.current_seed() == 4
    monkeypatch.delenv("DLPT_SEED")
    dlpt.setup(seed=2, device="cpu")
    assert dlpt.current_seed() == 2


def test_device_of_a_model_and_the_recurrent_fallback_on_mps(capsys):
    assert runtime.device_of(torch.nn.Linear(2, 2)) == torch.device("cpu")
    assert runtime.device_of(torch.nn.ReLU()) == torch.device("cpu")  # no parameters
    assert runtime.recurrent_device("cpu") == torch.device("cpu")
    assert capsys.readouterr().out == ""
    assert runtime.recurrent_device("mps") == torch.device("cpu")
    assert "open correctness issues on MPS" in capsys.readouterr().out


def test_dlpt_seed_overrides_the_notebook_seed(capsys, monkeypatch):
    monkeypatch.setenv("DLPT_SEED", "7")
    dlpt.setup(seed=0, device="cpu")
    value = torch.rand(1).item()
    torch.manual_seed(7)
    assert value == torch.rand(1).item()
    assert "seed=7" in capsys.readouterr().out


def test_reseed_restarts_from_the_seed_setup_chose(capsys, monkeypatch):
    monkeypatch.setenv("DLPT_SEED", "5")
    dlpt.setup(seed=0, device="cpu")
    first = torch.rand(3)
    torch.rand(10)  # move the stream on
    assert dlpt.reseed() == 5
    assert torch.equal(torch.rand(3), first)
    monkeypatch.setenv("DLPT_SEED", "6")
    dlpt.setup(seed=0, device="cpu")
    dlpt.reseed()
    assert not torch.equal(torch.rand(3), first)  # another seed, another stream


def test_pick_device_prefers_what_is_asked_then_cuda_then_cpu():
    assert runtime.pick_device("cpu") == torch.device("cpu")
    expected = "cuda" if torch.cuda.is_available() else None
    if expected is None and not (torch.backends.mps.is_available()):
        assert runtime.pick_device() == torch.device("cpu")


@pytest.mark.parametrize(
    ("value", "n", "expected"), [("1", 200, 200), ("4", 200, 800), ("0.5", 3, 2), ("0.001", 10, 1)]
)
def test_scaled_multiplies_by_dlpt_scale(monkeypatch, value, n, expected):
    monkeypatch.setenv("DLPT_SCALE", value)
    assert dlpt.scaled(n) == expected


def test_scale_defaults_to_one(monkeypatch):
    monkeypatch.delenv("DLPT_SCALE", raising=False)
    assert dlpt.scale() == 1.0


@pytest.mark.parametrize("bad", ["zero", "-1", "0"])
def test_bad_scale_is_refused_with_its_value(monkeypatch, bad):
    monkeypatch.setenv("DLPT_SCALE", bad)
    with pytest.raises(ValueError, match="DLPT_SCALE"):
        dlpt.scaled(10)


def test_setup_mentions_a_non_default_scale(capsys, monkeypatch):
    monkeypatch.setenv("DLPT_SCALE", "2")
    monkeypatch.delenv("DLPT_SEED", raising=False)
    dlpt.setup(device="cpu")
    assert "DLPT_SCALE=2" in capsys.readouterr().out


def test_timer_measures_a_block():
    import time

    with dlpt.timer() as t:
        time.sleep(0.05)
    assert 0.04 < t.seconds < 1.0


def test_in_notebook_is_false_outside_a_kernel():
    assert runtime.in_notebook() is False


def test_fastest_warms_up_and_returns_the_minimum():
    import time

    calls = []

    def work():
        calls.append(None)
        time.sleep(0.05 if len(calls) == 2 else 0.01)  # the first timed run is disturbed

    seconds = dlpt.fastest(work, repeats=3)
    assert len(calls) == 4  # one warm-up and three timed runs
    assert 0.005 < seconds < 0.04
