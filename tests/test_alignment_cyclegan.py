"""Unit tests of chapter 5, section 3: CycleGAN's networks, losses and training step."""

import pytest
import torch

from dlpt import alignment


def test_generator_maps_images_to_images_in_the_unit_interval():
    torch.manual_seed(0)
    g = alignment.Generator(pixels=64, hidden=16)
    x = 10 * torch.randn(5, 1, 8, 8)
    y = g(x)
    assert y.shape == (5, 1, 8, 8)
    assert y.min() >= 0 and y.max() <= 1


def test_generator_and_discriminator_take_other_image_sizes():
    g, d = alignment.Generator(pixels=12, hidden=8), alignment.Discriminator(pixels=12, hidden=8)
    x = torch.rand(3, 1, 3, 4)
    assert g(x).shape == (3, 1, 3, 4)
    assert d(x).shape == (3,)


def test_discriminator_gives_one_score_per_image_each_from_its_own_image():
    torch.manual_seed(0)
    d = alignment.Discriminator(hidden=16)
    x = torch.rand(4, 1, 8, 8)
    scores = d(x)
    assert scores.shape == (4,)
    torch.testing.assert_close(scores[2:3], d(x[2:3]))


def test_lsgan_loss_against_the_formula():
    scores = torch.tensor([0.0, 0.5, 2.0])
    torch.testing.assert_close(alignment.lsgan_loss(scores, True), torch.tensor((1 + 0.25 + 1) / 3))
    torch.testing.assert_close(alignment.lsgan_loss(scores, False), torch.tensor((0 + 0.25 + 4) / 3))


def _batches(seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(6, 1, 8, 8, generator=g), torch.rand(5, 1, 8, 8, generator=g)


def test_the_generators_loss_is_the_weighted_sum_of_its_three_terms():
    torch.manual_seed(0)
    model = alignment.CycleGAN(hidden=16)
    source, target = _batches()
    g, f = model.to_target, model.to_source
    adversarial = (alignment.lsgan_loss(model.d_target(g(source)), True)
                   + alignment.lsgan_loss(model.d_source(f(target)), True))
    cycle = alignment.cycle_loss(source, g, f) + alignment.cycle_loss(target, f, g)
    identity = alignment.identity_loss(target, g) + alignment.identity_loss(source, f)
    for a, c, i in [(1, 0, 0), (0, 1, 0), (0, 0, 1), (0.5, 10, 5)]:
        loss_g, _ = alignment.cyclegan_losses(model, source, target, a, c, i)
        torch.testing.assert_close(loss_g, a * adversarial + c * cycle + i * identity)


def test_the_discriminators_loss_against_the_formula_and_it_never_reaches_the_generators():
    torch.manual_seed(0)
    model = alignment.CycleGAN(hidden=16)
    source, target = _batches(1)
    _, loss_d = alignment.cyclegan_losses(model, source, target)
    with torch.no_grad():
        fake_target, fake_source = model.to_target(source), model.to_source(target)
        expected = (alignment.lsgan_loss(model.d_target(target), True)
                    + alignment.lsgan_loss(model.d_target(fake_target), False)
                    + alignment.lsgan_loss(model.d_source(source), True)
                    + alignment.lsgan_loss(model.d_source(fake_source), False)) / 2
    torch.testing.assert_close(loss_d, expected)
    loss_d.backward()
    assert all(p.grad is None for p in model.to_target.parameters())
    assert all(p.grad is None for p in model.to_source.parameters())
    assert all(p.grad is not None for p in model.d_target.parameters())


def test_a_generator_that_is_the_identity_has_no_cycle_or_identity_loss():
    model = alignment.CycleGAN(hidden=16)
    model.to_target = model.to_source = torch.nn.Identity()
    source, target = _batches(2)
    loss_g, _ = alignment.cyclegan_losses(model, source, target, adversarial=0.0, cycle=10.0, identity=5.0)
    assert loss_g.item() == 0.0


def test_training_is_reproducible_and_returns_a_model_in_eval_mode():
    source, target = _batches(3)

    def trained():
        torch.manual_seed(0)
        return alignment.train_cyclegan(source, target, steps=5, batch_size=4, hidden=16, progress=False)

    first, second = trained(), trained()
    assert isinstance(first, alignment.CycleGAN) and not first.training
    for p, q in zip(first.parameters(), second.parameters(), strict=True):
        torch.testing.assert_close(p, q)


def test_without_the_adversarial_loss_the_discriminators_are_not_trained():
    source, target = _batches(4)
    torch.manual_seed(0)
    untrained = alignment.CycleGAN(hidden=16)
    torch.manual_seed(0)
    model = alignment.train_cyclegan(source, target, adversarial=0.0, cycle=0.0, identity=5.0, steps=5,
                                     batch_size=4, hidden=16, progress=False)
    for p, q in zip(model.d_target.parameters(), untrained.d_target.parameters(), strict=True):
        torch.testing.assert_close(p, q)
    changed = any(not torch.equal(p, q) for p, q in zip(model.to_target.parameters(),
                                                        untrained.to_target.parameters(), strict=True))
    assert changed


def test_training_with_the_identity_loss_alone_lowers_it():
    torch.manual_seed(0)
    source, target = torch.rand(64, 1, 8, 8), torch.rand(4, 1, 8, 8).round().repeat(16, 1, 1, 1)  # 4 patterns

    def identity_error(model):
        with torch.no_grad():
            return alignment.identity_loss(target, model.to_target).item()

    torch.manual_seed(0)
    before = identity_error(alignment.CycleGAN(hidden=32))
    torch.manual_seed(0)
    model = alignment.train_cyclegan(source, target, adversarial=0.0, cycle=0.0, identity=1.0, steps=200,
                                     batch_size=16, hidden=32, progress=False)
    assert identity_error(model) < 0.5 * before


@pytest.mark.parametrize("batch_size", [1, 3, 100])
def test_translate_equals_the_generator_in_one_batch_and_keeps_no_graph(batch_size):
    torch.manual_seed(0)
    g = alignment.Generator(hidden=16)
    x = torch.rand(7, 1, 8, 8)
    y = alignment.translate(g, x, batch_size=batch_size)
    assert not y.requires_grad
    torch.testing.assert_close(y, g(x).detach())
