import math

import pytest
import torch
import torch.nn.functional as F

from dlpt import practice


@pytest.mark.parametrize("scale", [1.0, 30.0, 1000.0])
def test_cross_entropy_equals_pytorch(scale):
    g = torch.Generator().manual_seed(0)
    logits = scale * torch.randn(16, 7, generator=g)
    targets = torch.randint(0, 7, (16,), generator=g)
    ours = practice.cross_entropy(logits, targets)
    assert ours.dim() == 0
    torch.testing.assert_close(ours, F.cross_entropy(logits, targets))


def test_cross_entropy_gradient_equals_pytorch():
    logits = torch.randn(5, 4, requires_grad=True)
    targets = torch.tensor([0, 1, 2, 3, 0])
    (g_ours,) = torch.autograd.grad(practice.cross_entropy(logits, targets), logits)
    (g_torch,) = torch.autograd.grad(F.cross_entropy(logits, targets), logits)
    torch.testing.assert_close(g_ours, g_torch)


def test_standardize_matches_scikit_learn():
    from sklearn.preprocessing import StandardScaler

    g = torch.Generator().manual_seed(0)
    x_train = torch.randn(50, 4, generator=g, dtype=torch.float64) * 10 + 3
    x_test = torch.randn(7, 4, generator=g, dtype=torch.float64)
    scaler = StandardScaler().fit(x_train.numpy())
    train, test = practice.standardize(x_train, x_test)
    torch.testing.assert_close(train, torch.from_numpy(scaler.transform(x_train.numpy())))
    torch.testing.assert_close(test, torch.from_numpy(scaler.transform(x_test.numpy())))


def test_standardize_only_centres_a_constant_feature():
    x = torch.tensor([[1.0, 5.0], [3.0, 5.0]])
    train, test = practice.standardize(x, torch.tensor([[2.0, 6.0]]))
    assert torch.equal(train[:, 1], torch.zeros(2)) and test[0, 1] == 1.0


@pytest.mark.parametrize(
    ("losses", "patience", "expected"),
    [
        ([3, 2, 1], 1, (2, 2)),
        ([1, 2, 3, 4], 2, (2, 0)),
        ([1, 2, 0.5, 3, 4, 5], 2, (4, 2)),
        ([1, 1, 1], 1, (1, 0)),
        ([5], 3, (0, 0)),
    ],
)
def test_early_stopping(losses, patience, expected):
    assert practice.early_stopping(losses, patience) == expected


def test_early_stopping_refuses_zero_patience():
    with pytest.raises(ValueError, match="patience"):
        practice.early_stopping([1.0], 0)


def test_log_uniform_is_uniform_in_the_exponent_and_repeatable():
    samples = practice.log_uniform(1e-4, 1.0, 20000, torch.Generator().manual_seed(0))
    again = practice.log_uniform(1e-4, 1.0, 20000, torch.Generator().manual_seed(0))
    assert samples.shape == (20000,) and torch.equal(samples, again)
    assert samples.min() >= 1e-4 and samples.max() < 1.0
    decades = torch.histc(samples.log10(), bins=4, min=-4, max=0) / 20000
    assert torch.allclose(decades, torch.full((4,), 0.25, dtype=torch.float64), atol=0.02)


def test_grid_points_cover_the_corners():
    points = practice.grid_points({"lr": (1e-4, 1.0), "wd": (1e-3, 1e-1)}, per_axis=3)
    assert len(points) == 9
    assert {round(math.log10(p["lr"])) for p in points} == {-4, -2, 0}
    assert {"lr": 1e-4, "wd": 1e-3} == pytest.approx(points[0])


def test_random_points_stay_in_range_and_differ():
    points = practice.random_points({"lr": (1e-4, 1.0), "wd": (1e-3, 1e-1)}, 9, torch.Generator().manual_seed(1))
    assert len(points) == 9 and len({p["lr"] for p in points}) == 9
    assert all(1e-4 <= p["lr"] < 1.0 and 1e-3 <= p["wd"] < 1e-1 for p in points)


def test_mlp_shapes_and_flattening():
    model = practice.MLP([64, 32, 10])
    assert model(torch.zeros(5, 1, 8, 8)).shape == (5, 10)
    assert sum(isinstance(m, torch.nn.ReLU) for m in model) == 1
    with pytest.raises(ValueError, match="input and an output"):
        practice.MLP([10])


def test_mlp_names_the_width_it_expects():
    model = practice.MLP([64, 8, 2])
    with pytest.raises(ValueError, match=r"inputs of shape \(B, 64\).*got \(5, 30\)"):
        model(torch.randn(5, 30))
    assert model(torch.randn(5, 1, 8, 8)).shape == (5, 2)
