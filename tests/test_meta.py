"""dlpt.meta: episodes, prototypes and the MAML inner step."""

import pytest
import torch

from dlpt import meta


def labelled_images(classes: int = 12, per_class: int = 9):
    """Image i is filled with the value i, so an episode's images say which originals they are."""
    labels = torch.arange(classes).repeat_interleave(per_class)
    images = torch.arange(len(labels), dtype=torch.float32).view(-1, 1, 1, 1).expand(-1, 1, 2, 2).clone()
    return images, labels


def originals(x: torch.Tensor) -> torch.Tensor:
    return x[:, 0, 0, 0].long()


def test_an_episode_has_the_promised_shapes_and_labels():
    images, labels = labelled_images()
    g = torch.Generator().manual_seed(0)
    sx, sy, qx, qy = next(meta.episodes(images, labels, range(12), n_way=5, k_shot=2, n_query=3, generator=g))
    assert sx.shape == (10, 1, 2, 2) and qx.shape == (15, 1, 2, 2)
    assert sy.dtype == qy.dtype == torch.int64
    assert torch.equal(torch.bincount(sy), torch.full((5,), 2)) and torch.equal(torch.bincount(qy), torch.full((5,), 3))


def test_support_and_query_are_disjoint_and_each_episode_label_is_one_class():
    images, labels = labelled_images()
    g = torch.Generator().manual_seed(1)
    for sx, sy, qx, qy in meta.episodes(images, labels, range(12), 4, 3, 4, g, count=50):
        s, q = originals(sx), originals(qx)
        assert len(set(s.tolist()) | set(q.tolist())) == len(s) + len(q)  # no image twice
        for i in range(4):  # every image with episode label i comes from one original class
            assert len(set(labels[s[sy == i]].tolist()) | set(labels[q[qy == i]].tolist())) == 1


def test_only_the_given_classes_are_used_so_splits_stay_disjoint():
    images, labels = labelled_images()
    g = torch.Generator().manual_seed(2)
    train, test = list(range(0, 7)), list(range(7, 12))
    for classes in (train, test):
        for sx, _, qx, _ in meta.episodes(images, labels, classes, 3, 1, 2, g, count=30):
            used = set(labels[originals(torch.cat([sx, qx]))].tolist())
            assert used <= set(classes)


def test_labels_are_reassigned_in_every_episode_and_the_generator_decides():
    images, labels = labelled_images()
    first_class_of_label_0 = set()
    for sx, sy, _, _ in meta.episodes(images, labels, range(12), 5, 1, 1, torch.Generator().manual_seed(3), count=40):
        first_class_of_label_0.add(int(labels[originals(sx)[sy == 0]][0]))
    assert len(first_class_of_label_0) > 5
    run = [list(meta.episodes(images, labels, range(12), 5, 1, 1, torch.Generator().manual_seed(4), count=3))
           for _ in range(2)]
    assert all(torch.equal(a, b) for e1, e2 in zip(*run) for a, b in zip(e1, e2))
    state = torch.get_rng_state()
    list(meta.episodes(images, labels, range(12), 5, 1, 1, torch.Generator().manual_seed(4), count=3))
    assert torch.equal(state, torch.get_rng_state())  # the global generator is left alone


def test_episodes_name_what_is_impossible():
    images, labels = labelled_images(classes=4, per_class=3)
    g = torch.Generator()
    with pytest.raises(ValueError, match="n_way must be between 1 and the number of classes"):
        next(meta.episodes(images, labels, range(4), 5, 1, 1, g))
    with pytest.raises(ValueError, match="fewer than k_shot \\+ n_query = 4"):
        next(meta.episodes(images, labels, range(4), 2, 2, 2, g))
    with pytest.raises(ValueError, match="labels must be"):
        next(meta.episodes(images, labels[:-1], range(4), 2, 1, 1, g))


def test_maml_step_asks_for_parameters_that_require_grad():
    model, x, y, loss_fn = linear_task()
    with pytest.raises(ValueError, match="requires grad"):
        meta.maml_step(model, loss_fn, {n: p.detach() for n, p in model.named_parameters()}, x, y, 0.1)


def test_prototypes_are_class_means_in_episode_label_order():
    embeddings = torch.tensor([[1.0, 0.0], [3.0, 2.0], [0.0, 5.0], [2.0, 2.0]])
    labels = torch.tensor([1, 1, 0, 1])
    torch.testing.assert_close(meta.prototypes(embeddings, labels, 2), torch.tensor([[0.0, 5.0], [2.0, 4 / 3]]))
    with pytest.raises(ValueError, match="cover every class"):
        meta.prototypes(embeddings, labels, 3)


def linear_task(seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    model = torch.nn.Linear(3, 1)
    x, y = torch.randn(8, 3, generator=g), torch.randn(8, 1, generator=g)
    return model, x, y, torch.nn.functional.mse_loss


def test_maml_step_is_one_sgd_step_and_leaves_the_parameters_alone():
    model, x, y, loss_fn = linear_task()
    params = {n: p.detach().clone().requires_grad_() for n, p in model.named_parameters()}
    before = {n: p.clone() for n, p in params.items()}
    updated = meta.maml_step(model, loss_fn, params, x, y, lr=0.1)
    loss_fn(model(x), y).backward()
    for name, p in model.named_parameters():
        torch.testing.assert_close(updated[name], p.detach() - 0.1 * p.grad)
        assert torch.equal(params[name], before[name])


def test_second_order_maml_differentiates_through_the_step_and_first_order_does_not():
    model, x, y, loss_fn = linear_task(1)
    xq, yq = torch.randn(5, 3), torch.randn(5, 1)
    params = {n: p.detach().clone().double().requires_grad_() for n, p in model.named_parameters()}
    model = model.double()
    x, y, xq, yq = x.double(), y.double(), xq.double(), yq.double()

    def meta_loss(flat: torch.Tensor, first_order: bool) -> torch.Tensor:
        p = {"weight": flat[:3].view(1, 3), "bias": flat[3:]}
        adapted = meta.maml_step(model, loss_fn, p, x, y, lr=0.3, first_order=first_order)
        return loss_fn(torch.func.functional_call(model, adapted, (xq,)), yq)

    flat = torch.cat([params["weight"].flatten(), params["bias"]]).detach().requires_grad_()
    (exact,) = torch.autograd.grad(meta_loss(flat, False), flat)
    def at(point: torch.Tensor) -> float:
        return meta_loss(point.detach().requires_grad_(), False).item()

    numeric = torch.tensor([(at(flat + e) - at(flat - e)) / 2e-6 for e in 1e-6 * torch.eye(4, dtype=torch.float64)],
                           dtype=torch.float64)
    torch.testing.assert_close(exact, numeric, atol=1e-6, rtol=1e-5)
    # first order: the query loss's gradient at the adapted parameters, as if the step were a shift
    (approximate,) = torch.autograd.grad(meta_loss(flat, True), flat)
    adapted = meta.maml_step(model, loss_fn, {"weight": flat[:3].view(1, 3), "bias": flat[3:]}, x, y, 0.3, True)
    at_adapted = {n: t.detach().requires_grad_() for n, t in adapted.items()}
    grads = torch.autograd.grad(loss_fn(torch.func.functional_call(model, at_adapted, (xq,)), yq),
                                [at_adapted["weight"], at_adapted["bias"]])
    torch.testing.assert_close(approximate, torch.cat([grads[0].flatten(), grads[1]]))
    assert not torch.allclose(approximate, exact)
