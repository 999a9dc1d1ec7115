import pytest
import torch
import torch.nn.functional as F
from torch import nn

from dlpt import sequences


def test_embedding_as_one_hot_product_equals_lookup():
    weight = torch.randn(11, 4)
    tokens = torch.tensor([[0, 3, 10], [5, 5, 1]])
    torch.testing.assert_close(sequences.embed_one_hot(tokens, weight), nn.functional.embedding(tokens, weight))
    with pytest.raises(TypeError, match="int64"):
        sequences.embed_one_hot(tokens.float(), weight)


def test_rnn_cell_equals_pytorch_with_copied_weights():
    ours, theirs = sequences.RNNCell(3, 5), nn.RNNCell(3, 5)
    theirs.load_state_dict(ours.state_dict())
    x, h = torch.randn(4, 3), torch.randn(4, 5)
    torch.testing.assert_close(ours(x, h), theirs(x, h))


def test_lstm_cell_equals_pytorch_with_copied_weights_over_a_sequence():
    torch.manual_seed(0)
    ours, theirs = sequences.LSTMCell(3, 6), nn.LSTMCell(3, 6)
    theirs.load_state_dict(ours.state_dict())  # same names, same shapes, same gate order
    state_ours = state_theirs = None
    for x in torch.randn(5, 2, 3):
        state_ours = ours(x, state_ours)
        state_theirs = theirs(x, state_theirs)
        for a, b in zip(state_ours, state_theirs):
            torch.testing.assert_close(a, b)


def test_lstm_forget_gate_keeps_the_cell_state():
    """With the forget gate saturated open and the input gate shut, c passes unchanged."""
    cell = sequences.LSTMCell(2, 3)
    with torch.no_grad():
        cell.weight_ih.zero_()
        cell.weight_hh.zero_()
        cell.bias_hh.zero_()
        cell.bias_ih.copy_(torch.cat([torch.full((3,), -50.0), torch.full((3,), 50.0), torch.zeros(6)]))
    c = torch.randn(4, 3)
    _, c_next = cell(torch.randn(4, 2), (torch.zeros(4, 3), c))
    torch.testing.assert_close(c_next, c)


@pytest.mark.parametrize("batch_shape", [(), (2,), (2, 3)])
def test_attention_equals_pytorch(batch_shape):
    g = torch.Generator().manual_seed(0)
    q = torch.randn(*batch_shape, 4, 8, generator=g)
    k = torch.randn(*batch_shape, 6, 8, generator=g)
    v = torch.randn(*batch_shape, 6, 5, generator=g)
    context, weights = sequences.attention(q, k, v)
    torch.testing.assert_close(context, F.scaled_dot_product_attention(q, k, v))
    torch.testing.assert_close(weights.sum(-1), torch.ones(*batch_shape, 4))


def test_attention_with_a_padding_mask_equals_pytorch_and_ignores_padding():
    g = torch.Generator().manual_seed(1)
    q, k, v = torch.randn(2, 3, 4, generator=g), torch.randn(2, 5, 4, generator=g), torch.randn(2, 5, 2, generator=g)
    lengths = torch.tensor([5, 2])
    mask = (torch.arange(5) < lengths[:, None])[:, None, :].expand(2, 3, 5)  # (B, Tq, Tk)
    context, weights = sequences.attention(q, k, v, mask)
    torch.testing.assert_close(context, F.scaled_dot_product_attention(q, k, v, attn_mask=mask))
    assert torch.all(weights[1, :, 2:] == 0)
    torch.testing.assert_close(weights.sum(-1), torch.ones(2, 3))
    v_changed = v.clone()
    v_changed[1, 2:] = 100.0  # what sits in the padding cannot matter
    torch.testing.assert_close(sequences.attention(q, k, v_changed, mask)[0], context)


def test_attention_refuses_bad_shapes_and_masks():
    with pytest.raises(ValueError, match="same last dimension"):
        sequences.attention(torch.zeros(3, 4), torch.zeros(5, 3), torch.zeros(5, 2))
    with pytest.raises(ValueError, match="same length Tk"):
        sequences.attention(torch.zeros(3, 4), torch.zeros(5, 4), torch.zeros(6, 2))
    with pytest.raises(TypeError, match="boolean"):
        sequences.attention(torch.zeros(3, 4), torch.zeros(5, 4), torch.zeros(5, 2), torch.ones(3, 5))


def test_char_vocab_round_trip_and_unknown_characters():
    vocab = sequences.CharVocab("hello world")
    ids = vocab.encode("hello")
    assert ids.dtype == torch.int64 and vocab.decode(ids) == "hello"
    assert vocab.decode(vocab.encode("hé")) == "h?"
    assert len(vocab) == len(set("hello world")) + 1


def test_lm_windows_cut_rows_of_inputs_and_next_characters():
    rows = sequences.lm_windows(torch.arange(23), 4)
    assert rows.shape == (4, 5)
    assert torch.equal(rows[1], torch.tensor([5, 6, 7, 8, 9]))


def test_window_lm_sees_exactly_the_last_k_characters():
    torch.manual_seed(0)
    model = sequences.WindowLM(10, k=3, embedding_dim=4, hidden_size=8)
    ids = torch.randint(0, 10, (1, 12))
    logits = model(ids)
    assert logits.shape == (1, 12, 10)
    # change one input character at a time: only positions 5, 6, 7 move the prediction at 7
    grads = []
    for t in range(12):
        changed = ids.clone()
        changed[0, t] = (changed[0, t] + 1) % 10
        grads.append(not torch.allclose(model(changed)[0, 7], logits[0, 7]))
    assert [t for t, g in enumerate(grads) if g] == [5, 6, 7]


def test_recurrent_lm_is_causal_and_carries_state():
    torch.manual_seed(0)
    model = sequences.RecurrentLM(10, embedding_dim=4, hidden_size=8)
    ids = torch.randint(0, 10, (2, 9))
    logits = model(ids)
    changed = ids.clone()
    changed[:, 6] = (changed[:, 6] + 1) % 10
    after = model(changed)
    torch.testing.assert_close(after[:, :6], logits[:, :6])  # the past does not see the future
    assert not torch.allclose(after[:, 6:], logits[:, 6:])
    # two chunks with the state carried equal one long pass
    first = model(ids[:, :4])
    second = model(ids[:, 4:], model.last_state)
    torch.testing.assert_close(torch.cat([first, second], 1), logits)


@pytest.mark.parametrize("kind", ["window", "recurrent"])
def test_next_char_losses_equal_a_direct_computation(kind):
    torch.manual_seed(0)
    if kind == "window":
        model = sequences.WindowLM(7, k=3, embedding_dim=4, hidden_size=8)
    else:
        model = sequences.RecurrentLM(7, 4, 8)
    ids = torch.randint(0, 7, (50,))
    losses = sequences.next_char_losses(model, ids, length=16)  # several chunks
    direct = F.cross_entropy(model(ids[None, :-1])[0], ids[1:], reduction="none") / torch.log(torch.tensor(2.0))
    assert losses.shape == (49,)
    torch.testing.assert_close(losses, direct, atol=1e-5, rtol=1e-5)


def test_sample_is_reproducible_and_continues_the_prompt():
    torch.manual_seed(0)
    vocab = sequences.CharVocab("abcde ")
    model = sequences.RecurrentLM(len(vocab), 4, 8)
    a = sequences.sample(model, vocab, "ab", 10, generator=torch.Generator().manual_seed(1))
    b = sequences.sample(model, vocab, "ab", 10, generator=torch.Generator().manual_seed(1))
    assert a == b and a.startswith("ab") and len(a) == 12


def test_token_vocab_batches_and_decodes():
    vocab = sequences.TokenVocab(["ab", "ba-"])
    batch = vocab.batch(["ab", "a"], bos=True, eos=True)
    assert batch.shape == (2, 4) and batch[0, 0] == sequences.BOS and batch[1, 3] == sequences.PAD
    assert vocab.decode(batch[0]) == "ab" and vocab.decode(batch[1]) == "a"


@pytest.mark.parametrize("use_attention", [False, True])
def test_seq2seq_ignores_padding_and_greedy_matches_teacher_forcing(use_attention):
    torch.manual_seed(0)
    model = sequences.Seq2Seq(12, hidden_size=8, embedding_dim=4, use_attention=use_attention,
                              bidirectional=use_attention)
    model.eval()
    src = torch.tensor([[5, 6, 7, 0, 0], [3, 4, 5, 6, 7]])
    tgt_in = torch.tensor([[sequences.BOS, 4, 5], [sequences.BOS, 6, 7]])
    logits = model(src, tgt_in)
    assert logits.shape == (2, 3, 12)
    # more padding changes nothing: packed encoding and the attention mask skip it
    padded = torch.cat([src, torch.zeros(2, 3, dtype=torch.int64)], 1)
    torch.testing.assert_close(model(padded, tgt_in), logits, atol=1e-5, rtol=1e-5)
    # greedy decoding feeds back its own argmax; with those as inputs teacher forcing agrees
    ids, maps = model.greedy(src, 4)
    forced = model(src, torch.cat([torch.full((2, 1), sequences.BOS), ids[:, :-1]], 1))
    assert torch.equal(forced.argmax(-1), ids)
    if use_attention:
        assert maps.shape == (2, 4, 5)
        torch.testing.assert_close(maps.sum(-1), torch.ones(2, 4))
        assert torch.all(maps[0, :, 3:] == 0)  # no weight on padding
    else:
        assert maps is None


def test_seq2seq_loss_scores_the_shifted_target_and_ignores_padding():
    torch.manual_seed(0)
    model = sequences.Seq2Seq(9, hidden_size=8, embedding_dim=4)
    src = torch.tensor([[5, 6, 0], [3, 4, 5]])
    tgt = torch.tensor([[sequences.BOS, 4, 5, sequences.EOS], [sequences.BOS, 6, sequences.EOS, 0]])
    logits = model(src, tgt[:, :-1])
    scored = [(0, 0, 4), (0, 1, 5), (0, 2, sequences.EOS), (1, 0, 6), (1, 1, sequences.EOS)]
    expected = torch.stack([-F.log_softmax(logits[b, t], -1)[y] for b, t, y in scored]).mean()
    torch.testing.assert_close(sequences.seq2seq_loss(model, (src, tgt)), expected)


def test_translate_decodes_in_batches_and_crops_maps_to_each_source():
    torch.manual_seed(0)
    vocab = sequences.TokenVocab(["0123456789"])
    model = sequences.Seq2Seq(len(vocab), hidden_size=8, embedding_dim=4, use_attention=True)
    sources = ["12", "34567", "8", "90123"]
    predictions, maps = sequences.translate(model, vocab, sources, max_len=6, batch_size=3)
    one_batch, _ = sequences.translate(model, vocab, sources, max_len=6, batch_size=10)
    assert predictions == one_batch and len(predictions) == 4
    assert [m.shape for m in maps] == [(6, 2), (6, 5), (6, 1), (6, 5)]
    torch.testing.assert_close(maps[0].sum(-1), torch.ones(6))
    assert model.training  # left as it was found
    plain = sequences.Seq2Seq(len(vocab), hidden_size=8, embedding_dim=4)
    assert sequences.translate(plain, vocab, sources, max_len=3)[1] is None


def test_accuracy_by_length_counts_exact_matches_and_positions():
    predictions = ["123", "1299", "54321", ""]
    targets = ["123", "1234", "54311", "99999"]
    result = sequences.accuracy_by_length(predictions, targets, [(3, 4), (5, 5)])
    assert result["exact match"] == [0.5, 0.0]
    assert result["per-token"] == [(1 + 0.5) / 2, (0.8 + 0.0) / 2]
    with pytest.raises(ValueError, match="no target"):
        sequences.accuracy_by_length(predictions, targets, [(10, 12)])
    with pytest.raises(ValueError, match="3 predictions for 4"):
        sequences.accuracy_by_length(predictions[:3], targets, [(3, 4)])


def test_fit_seq2seq_learns_a_tiny_copy_task_and_refuses_mismatched_lists():
    torch.manual_seed(0)
    vocab = sequences.TokenVocab(["0123"])
    sources = ["0123", "3210", "1133", "2020", "0312", "1302"] * 20
    model = sequences.fit_seq2seq(sources, sources, vocab, steps=150, hidden_size=32, lr=1e-2)
    predictions, _ = sequences.translate(model, vocab, sources[:6], max_len=5)
    assert predictions == sources[:6]
    with pytest.raises(ValueError, match="3 sources for 2 targets"):
        sequences.fit_seq2seq(["0", "1", "2"], ["0", "1"], vocab, steps=1)


def test_token_vocab_names_characters_it_was_not_built_with():
    vocab = sequences.TokenVocab(["0123"])
    with pytest.raises(ValueError, match=r"'12x3' holds characters the vocabulary was not built with: \['x'\]"):
        vocab.batch(["12x3"])
    with pytest.raises(TypeError, match="list of strings"):
        vocab.batch("0123")


@pytest.mark.parametrize("mode", [True, False])
def test_helpers_that_evaluate_restore_the_callers_mode(mode):
    torch.manual_seed(0)
    lm = sequences.RecurrentLM(7, 4, 8).train(mode)
    sequences.next_char_losses(lm, torch.randint(0, 7, (20,)))
    assert lm.training is mode
    vocab = sequences.CharVocab("abcdef")
    sequences.sample(lm, vocab, "ab", 3, generator=torch.Generator().manual_seed(0))
    assert lm.training is mode
    tokens = sequences.TokenVocab(["0123"])
    model = sequences.Seq2Seq(len(tokens), hidden_size=8, embedding_dim=4).train(mode)
    sequences.translate(model, tokens, ["012"], max_len=4)
    assert model.training is mode


def test_greedy_decode_returns_ids_on_the_states_device():
    def step(token, state):
        return torch.nn.functional.one_hot((token + 1) % 5, 5).float(), state

    ids = sequences.greedy_decode(step, torch.zeros(2), 2, 3)
    assert ids.device == torch.zeros(2).device and ids.tolist() == [[2, 3, 4], [2, 3, 4]]
    assert sequences.greedy_decode(step, None, 1, 2).tolist() == [[2, 3]]
