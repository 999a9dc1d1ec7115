"""Unit tests of chapter 5, section 4: word vectors, matching two spaces, the noise of denoising."""

import math

import pytest
import torch

from dlpt import alignment, data, sequences


@pytest.fixture(scope="module")
def languages():
    return data.artificial_languages(n_sentences=3000, n_test=50, seed=1)


def test_artificial_languages_are_deterministic_and_b_is_a_renamed_and_reordered(languages):
    again = data.artificial_languages(n_sentences=3000, n_test=50, seed=1)
    assert all(torch.equal(x, y) for x, y in zip(languages.a, again.a))
    V = len(languages.words_a)
    assert V == 110 and sorted(languages.dictionary.tolist()) == list(range(V))
    assert len(set(languages.words_a)) == V and len(set(languages.words_b)) == V
    for s_a, s_b in zip(languages.test_a, languages.test_b):
        # the same words through the dictionary, in another order
        assert sorted(languages.dictionary[s_a].tolist()) == sorted(s_b.tolist())
    assert any(not torch.equal(languages.dictionary[s], t) for s, t in zip(languages.test_a, languages.test_b))
    unordered = data.artificial_languages(n_sentences=10, n_test=20, reorder=False, seed=1)
    assert all(torch.equal(unordered.dictionary[s], t) for s, t in zip(unordered.test_a, unordered.test_b))
    # the two corpora are drawn from different underlying sentences
    assert sum(torch.equal(languages.dictionary[s], t) for s, t in zip(languages.a, languages.b)) < 300


def test_cooccurrence_counts_pairs_of_positions():
    sentences = [torch.tensor([0, 1, 2, 1]), torch.tensor([2, 0])]
    expected = torch.zeros(3, 3, dtype=torch.float64)
    for s in sentences:
        for i in range(len(s)):
            for j in range(len(s)):
                if i != j:
                    expected[s[i], s[j]] += 1
    assert torch.equal(alignment.cooccurrence(sentences, 3), expected)
    window = alignment.cooccurrence(sentences, 3, window=1)
    assert window[0, 1] == 1 and window[0, 2] == 1 and window[1, 1] == 0 and window[1, 2] == 2
    assert torch.equal(alignment.cooccurrence(sentences, 3, window=10), expected)


def test_ppmi_matches_the_formula():
    counts = torch.tensor([[0.0, 4, 1], [4, 0, 2], [1, 2, 6]], dtype=torch.float64)
    total = counts.sum()
    for u in range(3):
        for v in range(3):
            if counts[u, v] == 0:
                want = 0.0
            else:
                want = max(0.0, math.log(counts[u, v] * total / (counts[u].sum() * counts[:, v].sum())))
            assert alignment.ppmi(counts)[u, v].item() == pytest.approx(want)


def test_svd_embeddings_are_unit_vectors_and_keep_similarities_under_a_permutation():
    g = torch.Generator().manual_seed(0)
    m = torch.rand(20, 20, generator=g, dtype=torch.float64)
    m = m + m.T
    x = alignment.svd_embeddings(m, 5)
    assert x.shape == (20, 5) and torch.allclose(x.norm(dim=1), torch.ones(20, dtype=torch.float64))
    perm = torch.randperm(20, generator=g)
    y = alignment.svd_embeddings(m[perm][:, perm], 5)
    assert torch.allclose(y @ y.T, (x @ x.T)[perm][:, perm], atol=1e-8)


def test_frequency_rank_dictionary_pairs_ranks():
    counts_a, counts_b = torch.tensor([5.0, 9.0, 1.0]), torch.tensor([2.0, 3.0, 8.0])
    assert alignment.frequency_rank_dictionary(counts_a, counts_b).tolist() == [1, 2, 0]


def test_sinkhorn_has_uniform_marginals_and_finds_a_clear_assignment():
    g = torch.Generator().manual_seed(0)
    perm = torch.randperm(6, generator=g)
    cost = 1 - torch.eye(6, dtype=torch.float64)[perm] + 0.3 * torch.rand(6, 6, generator=g, dtype=torch.float64)
    plan = alignment.sinkhorn(cost, epsilon=0.05, iterations=300)
    assert torch.allclose(plan.sum(0), torch.full((6,), 1 / 6, dtype=torch.float64), atol=1e-9)
    assert torch.allclose(plan.sum(1), torch.full((6,), 1 / 6, dtype=torch.float64), atol=1e-4)
    assert plan.argmax(1).tolist() == perm.tolist()
    rect = alignment.sinkhorn(torch.rand(3, 5, generator=g, dtype=torch.float64), epsilon=1.0)
    assert torch.allclose(rect.sum(0), torch.full((5,), 0.2, dtype=torch.float64), atol=1e-6)
    assert torch.allclose(rect.sum(1), torch.full((3,), 1 / 3, dtype=torch.float64), atol=1e-6)
    assert torch.isfinite(alignment.sinkhorn(100 * cost, epsilon=1e-3)).all()


def test_gromov_wasserstein_recovers_a_hidden_permutation():
    g = torch.Generator().manual_seed(3)
    x = torch.nn.functional.normalize(torch.randn(30, 8, generator=g, dtype=torch.float64), dim=1)
    perm = torch.randperm(30, generator=g)
    rotation, _ = torch.linalg.qr(torch.randn(8, 8, generator=g, dtype=torch.float64))
    y = torch.empty_like(x)
    y[perm] = x @ rotation  # word i of A is word perm[i] of B
    plan = alignment.gromov_wasserstein(x @ x.T, y @ y.T, epsilon=0.04)
    assert (plan.argmax(1) == perm).float().mean() > 0.9
    assert torch.allclose(plan.sum(), torch.tensor(1.0, dtype=torch.float64))


def test_refine_procrustes_and_nearest_neighbours_find_a_rotation():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(40, 6, generator=g)
    rotation, _ = torch.linalg.qr(torch.randn(6, 6, generator=g))
    y = x @ rotation
    noisy_start = torch.arange(40)
    noisy_start[:8] = torch.randperm(8, generator=g) + 10  # a fifth of the dictionary wrong
    w, dictionary = alignment.refine_procrustes(x, y, noisy_start)
    assert dictionary.tolist() == list(range(40))
    assert torch.allclose(w, rotation, atol=1e-4)
    assert alignment.nearest_neighbours(y[[3, 7]] * 5, y).tolist() == [3, 7]


def test_add_noise_properties():
    g = torch.Generator().manual_seed(0)
    tokens = torch.arange(50, 80)
    before = tokens.clone()
    for _ in range(200):
        out = alignment.add_noise(tokens, g, drop=0.2, k=3)
        assert out.dtype == tokens.dtype and set(out.tolist()) <= set(tokens.tolist())
        rank = torch.tensor([t - 50 for t in out.tolist()]).argsort().argsort()
        assert (torch.arange(len(out)) - rank).abs().max() <= 3
    assert torch.equal(tokens, before)
    assert torch.equal(alignment.add_noise(tokens, g, drop=0.0, k=0), tokens)
    assert len(alignment.add_noise(tokens[:3], g, drop=1.0)) == 1
    empty = alignment.add_noise(tokens[:0], g, drop=1.0)
    assert empty.shape == (0,) and empty.dtype == tokens.dtype
    state = torch.get_rng_state()
    a = alignment.add_noise(tokens, torch.Generator().manual_seed(5))
    assert torch.equal(a, alignment.add_noise(tokens, torch.Generator().manual_seed(5)))
    assert torch.equal(state, torch.get_rng_state())


def test_pad_sentences_translate_and_exact_match():
    batch = alignment.pad_sentences([torch.tensor([7, 8]), torch.tensor([9])], prefix=[3], bos=1, eos=2)
    assert batch.tolist() == [[3, 1, 7, 8, 2], [3, 1, 9, 2, 0]]
    model = sequences.Seq2Seq(12, hidden_size=8, embedding_dim=4)
    out = alignment.translate_sentences(model, [torch.tensor([5, 6]), torch.tensor([7])], language_token=3, max_len=4)
    assert len(out) == 2 and all(o.dim() == 1 and len(o) <= 4 and (o != 2).all() for o in out)
    assert model.training
    refs = [torch.tensor([1, 2]), torch.tensor([3])]
    assert alignment.exact_match([torch.tensor([1, 2]), torch.tensor([4])], refs) == 0.5
    with pytest.raises(ValueError):
        alignment.exact_match(refs, refs[:1])
