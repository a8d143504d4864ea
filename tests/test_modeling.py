"""The GruSeq2Seq model on tiny sizes: training paths, batch invariance, the loss, decoder initial states,
generate() against hand-written loops, save/load, weights that do not fit their config, tying, remote code, and
the inputs forward, generate() and the pipeline refuse. (The config: tests/test_configuration.py.)"""

import functools
import json
import os
import subprocess
import sys

import pytest
import torch
from safetensors.torch import load_file
from transformers import GenerationMixin

from modeling_gru_seq2seq import (
    GruSeq2SeqConfig,
    GruSeq2SeqForConditionalGeneration,
    GruSeq2SeqTokenizer,
    TranslationPipeline,
    packed_gru,
)
from modeling_gru_seq2seq import modeling_gru_seq2seq as modeling
from modeling_gru_seq2seq.gru_choice import Loops
from modeling_gru_seq2seq.gru_kernels import recurrence_ops
from modeling_gru_seq2seq.modeling_gru_seq2seq import GruSeq2SeqCache, GruSeq2SeqSource

SOURCE_VOCAB, TARGET_VOCAB, HIDDEN = 11, 13, 16
PAD, SOS, EOS = 0, 1, 2
DECODERS = [("luong", "dot"), ("luong", "general"), ("luong", "concat"), ("bahdanau", "concat")]
DECODER_IDS = ["luong-dot", "luong-general", "luong-concat", "bahdanau"]


def make_model(decoder_type="luong", attention="dot", seed=0, **config_overrides):
    torch.manual_seed(seed)
    config_overrides.setdefault("num_layers", 2)
    config = GruSeq2SeqConfig(
        source_vocab_size=SOURCE_VOCAB,
        target_vocab_size=TARGET_VOCAB,
        hidden_size=HIDDEN,
        decoder_type=decoder_type,
        attention=attention,
        **config_overrides,
    )
    return GruSeq2SeqForConditionalGeneration(config)


def make_batch(seed=1):
    """Three right-padded sources (lengths 6, 3, 5) and targets (lengths 5, 2, 4, labels -100 after)."""
    generator = torch.Generator().manual_seed(seed)
    source_lengths, target_lengths = torch.tensor([6, 3, 5]), torch.tensor([5, 2, 4])
    input_ids = torch.randint(3, SOURCE_VOCAB, (3, 6), generator=generator)
    attention_mask = (torch.arange(6) < source_lengths[:, None]).long()
    input_ids = input_ids.masked_fill(attention_mask == 0, PAD)
    labels = torch.randint(3, TARGET_VOCAB, (3, 5), generator=generator)
    labels = labels.masked_fill(torch.arange(5) >= target_lengths[:, None], -100)
    return input_ids, attention_mask, labels


def labelled(labels):
    """(batch, tgt_len) bool: the positions a model given these labels decodes (up to each row's last label)."""
    return (labels != -100).flip(1).cumsum(1).flip(1) > 0


# ---------------------------------------------------------------- training paths


@pytest.mark.parametrize("teacher_forcing_ratio", [1.0, 0.0])
@pytest.mark.parametrize("decoder_type, attention", DECODERS, ids=DECODER_IDS)
def test_forward_backward_reaches_every_parameter(decoder_type, attention, teacher_forcing_ratio):
    model = make_model(decoder_type, attention, teacher_forcing_ratio=teacher_forcing_ratio).train()
    input_ids, attention_mask, labels = make_batch()
    output = model(input_ids=input_ids, attention_mask=attention_mask, labels=labels)
    assert output.logits.shape == (3, 5, TARGET_VOCAB)
    assert torch.isfinite(output.loss)
    output.loss.backward()
    no_gradient = [name for name, p in model.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    assert no_gradient == []


@pytest.mark.parametrize("decoder_type, attention", DECODERS, ids=DECODER_IDS)
def test_teacher_forcing_ratio_picks_reference_or_own_argmax(decoder_type, attention):
    input_ids, attention_mask, labels = make_batch()
    free_running = make_model(decoder_type, attention, dropout=0.0, teacher_forcing_ratio=0.0).train()
    free_logits = free_running(input_ids=input_ids, attention_mask=attention_mask, labels=labels).logits
    # The same steps teacher-forced on the model's own argmax give the same logits.
    own_tokens = free_logits.argmax(-1)[:, :-1]
    fed_back = torch.cat([torch.full((3, 1), SOS), own_tokens], dim=1)
    replayed = free_running.eval()(input_ids=input_ids, attention_mask=attention_mask, decoder_input_ids=fed_back)
    decoded = labelled(labels)
    torch.testing.assert_close(free_logits[decoded], replayed.logits[decoded], atol=1e-5, rtol=0)
    assert torch.all(free_logits[~decoded] == 0)  # the padding after each row's last label is not decoded

    forced = make_model(decoder_type, attention, dropout=0.0, teacher_forcing_ratio=1.0).train()
    forced_logits = forced(input_ids=input_ids, attention_mask=attention_mask, labels=labels).logits
    reference = forced.eval()(input_ids=input_ids, attention_mask=attention_mask, labels=labels).logits
    torch.testing.assert_close(forced_logits, reference, atol=1e-6, rtol=0)


def test_teacher_forced_luong_runs_one_gru_call_over_the_labelled_tokens_only():
    model = make_model("luong", "general").eval()
    calls = []
    model.decoder.gru.register_forward_hook(lambda module, args, output: calls.append(args[0].data.shape))
    model.decoder.out.register_forward_hook(lambda module, args, output: calls.append(args[0].shape))
    input_ids, attention_mask, labels = make_batch()
    model(input_ids=input_ids, attention_mask=attention_mask, labels=labels)
    assert calls == [torch.Size([5 + 2 + 4, HIDDEN])] * 2  # packed: no padding reaches the GRU or the output layer


@pytest.mark.parametrize("decoder_type, attention", DECODERS, ids=DECODER_IDS)
def test_free_running_steps_decode_only_the_rows_still_going(decoder_type, attention):
    model = make_model(decoder_type, attention, teacher_forcing_ratio=0.0).train()
    rows_per_step = []
    step = model.decoder.step

    def recording_step(input_ids, *args):
        rows_per_step.append(input_ids.shape)
        return step(input_ids, *args)

    model.decoder.step = recording_step
    input_ids, attention_mask, labels = make_batch()  # target lengths 5, 2, 4
    model(input_ids=input_ids, attention_mask=attention_mask, labels=labels).loss.backward()
    assert rows_per_step == [torch.Size([rows, 1]) for rows in (3, 3, 2, 2, 1)]


def test_loss_is_masked_cross_entropy():
    model = make_model("luong", "concat").eval()
    input_ids, attention_mask, labels = make_batch()
    output = model(input_ids=input_ids, attention_mask=attention_mask, labels=labels)
    # The tutorial's masked_cross_entropy, written out: -log p(label) summed over real tokens / their number.
    log_probs = output.logits.log_softmax(dim=-1)
    real = labels != -100
    token_log_probs = log_probs.gather(-1, labels.clamp(min=0).unsqueeze(-1)).squeeze(-1)
    expected = -(token_log_probs * real).sum() / real.sum()
    torch.testing.assert_close(output.loss, expected)
    # With the Trainer's token count of a larger (accumulated) batch, the sum is divided by that count.
    scaled = model(input_ids=input_ids, attention_mask=attention_mask, labels=labels, num_items_in_batch=40)
    torch.testing.assert_close(scaled.loss, -(token_log_probs * real).sum() / 40)


def test_default_decoder_inputs_are_labels_shifted_right():
    model = make_model().eval()
    input_ids, attention_mask, labels = make_batch()
    shifted = model.prepare_decoder_input_ids_from_labels(labels)
    assert shifted[:, 0].tolist() == [SOS] * 3
    assert torch.equal(shifted[0, 1:], labels[0, :-1])
    assert shifted[1].tolist() == [SOS, labels[1, 0].item(), labels[1, 1].item(), PAD, PAD]
    implicit = model(input_ids=input_ids, attention_mask=attention_mask, labels=labels).logits
    explicit = model(input_ids=input_ids, attention_mask=attention_mask, decoder_input_ids=shifted).logits
    decoded = labelled(labels)  # with labels, only these are decoded; without, every position
    torch.testing.assert_close(implicit[decoded], explicit[decoded], atol=1e-6, rtol=0)
    assert torch.all(implicit[~decoded] == 0) and torch.all(explicit[~decoded] != 0)


def test_labels_and_decoder_inputs_of_other_shapes_are_refused():
    model = make_model().eval()
    input_ids, attention_mask, labels = make_batch()
    with pytest.raises(ValueError, match=r"labels have shape \(3, 5\) but decoder_input_ids \(3, 4\)"):
        model(input_ids=input_ids, attention_mask=attention_mask, labels=labels, decoder_input_ids=labels[:, :4])


# ---------------------------------------------------------------- attention


@pytest.mark.parametrize("score", ["dot", "general", "concat"])
def test_attention_scores_follow_luong_formulas(score):
    attention = make_model("luong", score).decoder.attention
    generator = torch.Generator().manual_seed(2)
    query = torch.randn(2, 3, HIDDEN, generator=generator)
    encoder_outputs = torch.randn(2, 4, HIDDEN, generator=generator)
    source_mask = torch.tensor([[1, 1, 1, 1], [1, 1, 0, 0]])
    if score == "dot":  # h_t . h_s
        scores = torch.einsum("bth,bsh->bts", query, encoder_outputs)
    elif score == "general":  # h_t^T W_a h_s
        w_a = attention.query_projection.weight.T
        scores = torch.einsum("bth,hk,bsk->bts", query, w_a, encoder_outputs)
    else:  # v_a^T tanh(W_a [h_t; h_s] + b)
        pairs = torch.cat(
            [query.unsqueeze(2).expand(-1, -1, 4, -1), encoder_outputs.unsqueeze(1).expand(-1, 3, -1, -1)], dim=-1
        )
        scores = torch.tanh(attention.projection(pairs)) @ attention.v
    expected_weights = scores.masked_fill(source_mask[:, None] == 0, float("-inf")).softmax(-1)
    keys = attention.project_keys(encoder_outputs)
    context, weights = attention(query, GruSeq2SeqSource(encoder_outputs, keys, source_mask))
    torch.testing.assert_close(weights, expected_weights)
    torch.testing.assert_close(context, expected_weights @ encoder_outputs)


# ---------------------------------------------------------------- padding


@pytest.mark.parametrize("decoder_type, attention", DECODERS, ids=DECODER_IDS)
def test_batch_invariance_and_attention_ignores_padding(decoder_type, attention):
    model = make_model(decoder_type, attention).eval()
    input_ids, attention_mask, labels = make_batch()
    batch = model(input_ids=input_ids, attention_mask=attention_mask, labels=labels, output_attentions=True)
    weights = batch.cross_attentions[0][:, 0]  # (batch, tgt_len, src_len)
    assert torch.all(weights[attention_mask.unsqueeze(1).expand_as(weights) == 0] == 0)
    torch.testing.assert_close(weights.sum(-1), labelled(labels).float())  # 1 where decoded, 0 after
    for i in range(3):
        source_length, target_length = attention_mask[i].sum().item(), (labels[i] != -100).sum().item()
        alone = model(
            input_ids=input_ids[i : i + 1, :source_length],
            labels=labels[i : i + 1, :target_length],
            output_attentions=True,
        )
        torch.testing.assert_close(batch.logits[i, :target_length], alone.logits[0], atol=1e-5, rtol=0)
        torch.testing.assert_close(
            weights[i, :target_length, :source_length], alone.cross_attentions[0][0, 0], atol=1e-5, rtol=0
        )


# ---------------------------------------------------------------- decoder initial state


@pytest.mark.parametrize("num_layers", [2, 3])
def test_decoder_init_seed_and_sum_states(num_layers):
    input_ids, attention_mask, labels = make_batch()
    seed_model = make_model(decoder_init="seed", num_layers=num_layers).eval()
    sum_model = make_model(decoder_init="sum", num_layers=num_layers).eval()
    sum_model.load_state_dict(seed_model.state_dict())
    encoder = seed_model.encoder
    # h_n of the encoder GRU run directly on each unpadded sentence: (2 * num_layers, 1, hidden).
    final_states = [
        encoder.gru(encoder.embedding(input_ids[i : i + 1, : attention_mask[i].sum()]))[1] for i in range(3)
    ]
    h_n = torch.cat(final_states, dim=1)  # (2 * num_layers, batch, hidden): l0 fwd, l0 bwd, l1 fwd, ...
    expected = {
        "seed": h_n[:num_layers].transpose(0, 1),  # the tutorial's encoder_hidden[:n_layers]
        "sum": (h_n[0::2] + h_n[1::2]).transpose(0, 1),  # layer l forward + layer l backward
    }
    tutorial_model = make_model(decoder_init="tutorial", num_layers=num_layers).eval()  # "seed"'s new name
    tutorial_model.load_state_dict(seed_model.state_dict())
    expected["tutorial"] = expected["seed"]
    for name, model in (("seed", seed_model), ("tutorial", tutorial_model), ("sum", sum_model)):
        encoder_outputs = model.encoder(input_ids, attention_mask)
        initial = model.initial_decoder_state(encoder_outputs.final_hidden_state)
        torch.testing.assert_close(initial, expected[name], atol=1e-6, rtol=0)
        # forward without a cache starts from exactly that state
        given = GruSeq2SeqCache(expected[name], 0)
        kwargs = {"attention_mask": attention_mask, "labels": labels, "encoder_outputs": encoder_outputs}
        torch.testing.assert_close(model(**kwargs).logits, model(cache=given, **kwargs).logits, atol=1e-6, rtol=0)
    if num_layers == 2:  # layer 0 forward and backward, as the tutorial
        torch.testing.assert_close(expected["seed"], h_n[[0, 1]].transpose(0, 1))


# ---------------------------------------------------------------- generate


def greedy_by_hand(model, input_ids, attention_mask, max_new_tokens):
    """Greedy decoding that reruns the whole prefix every step (no cache), padding finished sentences."""
    sequences = torch.full((input_ids.shape[0], 1), SOS)
    finished = torch.zeros(input_ids.shape[0], dtype=torch.bool)
    for _ in range(max_new_tokens):
        logits = model(
            input_ids=input_ids, attention_mask=attention_mask, decoder_input_ids=sequences, use_cache=False
        ).logits
        next_tokens = logits[:, -1].argmax(-1).masked_fill(finished, PAD)
        sequences = torch.cat([sequences, next_tokens[:, None]], dim=1)
        finished |= next_tokens == EOS
        if finished.all():
            break
    return sequences


def copy_batch(generator, batch_size=32):
    """Sources of 2 to 6 tokens; the target is each token + 2, then EOS."""
    lengths = torch.randint(2, 7, (batch_size,), generator=generator)
    tokens = torch.randint(3, SOURCE_VOCAB, (batch_size, 6), generator=generator)
    attention_mask = (torch.arange(6) < lengths[:, None]).long()
    labels = torch.cat([tokens + 2, torch.zeros(batch_size, 1, dtype=torch.long)], dim=1)
    labels[torch.arange(batch_size), lengths] = EOS
    labels = labels.masked_fill(torch.arange(7) > lengths[:, None], -100)
    return tokens.masked_fill(attention_mask == 0, PAD), attention_mask, labels


@functools.cache
def copy_model(decoder_type, attention):
    """A model trained briefly (60 steps, under a second) to copy its input: its outputs depend on the
    source and end with EOS at different lengths, and it is unsure enough for beams to change places."""
    model = make_model(decoder_type, attention, dropout=0.0, teacher_forcing_ratio=1.0).train()
    optimizer = torch.optim.Adam(model.parameters(), lr=0.02)
    generator = torch.Generator().manual_seed(0)
    for _ in range(60):
        input_ids, attention_mask, labels = copy_batch(generator)
        loss = model(input_ids=input_ids, attention_mask=attention_mask, labels=labels).loss
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return model.eval().requires_grad_(False)


@pytest.mark.parametrize("decoder_type, attention", [("luong", "general"), ("bahdanau", "concat")])
def test_greedy_generate_equals_hand_written_loop(decoder_type, attention):
    model = copy_model(decoder_type, attention)
    input_ids, attention_mask, _ = make_batch()
    expected = greedy_by_hand(model, input_ids, attention_mask, max_new_tokens=8)
    assert (expected[:, -1] == PAD).any()  # the comparison covers sentences finished early too
    generated = model.generate(input_ids, attention_mask=attention_mask, max_new_tokens=8)
    assert torch.equal(generated, expected)
    one_beam = model.generate(input_ids, attention_mask=attention_mask, max_new_tokens=8, num_beams=1)
    assert torch.equal(one_beam, expected)


@pytest.mark.parametrize("generate", [GruSeq2SeqForConditionalGeneration.generate, GenerationMixin.generate])
def test_generate_runs_encoder_once_and_feeds_one_token_per_step(generate):
    """Both the lean loops (`model.generate`) and GenerationMixin's own."""
    model = copy_model("luong", "dot")
    input_ids, attention_mask, _ = make_batch()
    encoder_calls, decoder_lengths = [], []
    hooks = [
        model.encoder.register_forward_hook(lambda module, args, output: encoder_calls.append(1)),
        model.decoder.gru.register_forward_hook(lambda module, args, output: decoder_lengths.append(args[0].shape[1])),
    ]
    try:  # (the decoder's compiled step, which runs no hooks, is not taken while they are there)
        generate(model, input_ids, attention_mask=attention_mask, max_new_tokens=6, num_beams=3)
    finally:
        for hook in hooks:
            hook.remove()
    assert len(encoder_calls) == 1
    assert len(decoder_lengths) > 1 and set(decoder_lengths) == {1}


def log_prob_of(model, input_ids, attention_mask, sequences):
    """Teacher-forced log-probability of each generated sequence (tokens after SOS, up to its first EOS)."""
    targets = sequences[:, 1:]
    logits = model(input_ids=input_ids, attention_mask=attention_mask, decoder_input_ids=sequences[:, :-1]).logits
    token_log_probs = logits.log_softmax(-1).gather(-1, targets.unsqueeze(-1)).squeeze(-1)
    after_eos = (targets == EOS).long().cumsum(dim=1) - (targets == EOS).long() > 0
    return token_log_probs.masked_fill(after_eos, 0.0).sum(dim=1)


@pytest.mark.parametrize("decoder_type, attention", [("luong", "concat"), ("bahdanau", "concat")])
def test_beam_scores_equal_teacher_forced_log_probs(decoder_type, attention):
    model = copy_model(decoder_type, attention)
    input_ids, attention_mask, _ = make_batch()
    output = model.generate(
        input_ids,
        attention_mask=attention_mask,
        max_new_tokens=7,
        num_beams=4,
        num_return_sequences=2,
        length_penalty=0.0,
        output_scores=True,
        return_dict_in_generate=True,
    )
    assert output.sequences.shape[0] == 6
    expanded = input_ids.repeat_interleave(2, dim=0), attention_mask.repeat_interleave(2, dim=0)
    expected = log_prob_of(model, *expanded, output.sequences)
    torch.testing.assert_close(output.sequences_scores, expected, atol=1e-4, rtol=0)
    # the best beam scores at least as well as greedy decoding
    greedy = model.generate(input_ids, attention_mask=attention_mask, max_new_tokens=7)
    assert torch.all(output.sequences_scores[0::2] >= log_prob_of(model, input_ids, attention_mask, greedy) - 1e-5)


def test_sampling_equals_hand_written_sampling_loop():
    model = copy_model("bahdanau", "concat")
    input_ids, attention_mask, _ = make_batch()
    torch.manual_seed(123)
    generated = model.generate(
        input_ids, attention_mask=attention_mask, do_sample=True, top_k=0, max_new_tokens=5, num_return_sequences=2
    )
    torch.manual_seed(123)
    expanded_ids, expanded_mask = input_ids.repeat_interleave(2, dim=0), attention_mask.repeat_interleave(2, dim=0)
    sequences = torch.full((6, 1), SOS)
    finished = torch.zeros(6, dtype=torch.bool)
    for _ in range(5):
        logits = model(input_ids=expanded_ids, attention_mask=expanded_mask, decoder_input_ids=sequences).logits
        next_tokens = torch.multinomial(logits[:, -1].softmax(-1), num_samples=1).squeeze(1)
        next_tokens = next_tokens.masked_fill(finished, PAD)
        sequences = torch.cat([sequences, next_tokens[:, None]], dim=1)
        finished |= next_tokens == EOS
        if finished.all():
            break
    assert torch.equal(generated, sequences)


def test_generate_returns_cross_attentions_per_step():
    model = copy_model("luong", "dot")
    input_ids, attention_mask, _ = make_batch()
    output = model.generate(
        input_ids,
        attention_mask=attention_mask,
        max_new_tokens=4,
        output_attentions=True,
        return_dict_in_generate=True,
    )
    steps = output.sequences.shape[1] - 1
    assert len(output.cross_attentions) == steps
    per_step = torch.cat([step[0] for step in output.cross_attentions], dim=2)  # (batch, 1, steps, src_len)
    assert per_step.shape == (3, 1, steps, 6)
    teacher_forced = model(
        input_ids=input_ids,
        attention_mask=attention_mask,
        decoder_input_ids=output.sequences[:, :-1],
        output_attentions=True,
    ).cross_attentions[0]
    torch.testing.assert_close(per_step, teacher_forced, atol=1e-6, rtol=0)


# ---------------------------------------------------------------- saving, weights that do not fit, tying, remote code


def test_save_and_load_give_identical_weights_and_logits(tmp_path):
    model = make_model("bahdanau", "concat", decoder_init="seed").eval()
    model.generation_config.max_new_tokens = 9
    model.save_pretrained(tmp_path)
    loaded = GruSeq2SeqForConditionalGeneration.from_pretrained(tmp_path).eval()
    unnamed = {"_name_or_path": ""}
    assert loaded.config.to_diff_dict() | unnamed == model.config.to_diff_dict() | unnamed
    assert loaded.generation_config.max_new_tokens == 9
    for (name, saved), (_, restored) in zip(model.state_dict().items(), loaded.state_dict().items(), strict=False):
        assert torch.equal(saved, restored), name
    assert_same_logits(model, loaded)


def assert_same_logits(model, loaded):
    # Equal weights; the tolerance covers BLAS rounding only: loaded tensors are views into the safetensors
    # buffer, not 64-byte aligned, and on CPU the GEMM kernels round differently on unaligned memory.
    input_ids, attention_mask, labels = make_batch()
    kwargs = {"input_ids": input_ids, "attention_mask": attention_mask, "labels": labels}
    torch.testing.assert_close(model(**kwargs).logits, loaded(**kwargs).logits, atol=1e-6, rtol=0)


def test_initialisation_is_pytorch_default():
    model = make_model("luong", "concat")
    bound = 1 / HIDDEN**0.5
    assert model.decoder.gru.weight_hh_l0.abs().max() <= bound  # GRU: U(-1/sqrt(H), 1/sqrt(H))
    assert model.decoder.out.weight.abs().max() <= bound  # Linear: kaiming-uniform, bound 1/sqrt(fan_in)
    assert model.decoder.out.weight.std() > 0.1  # not transformers' N(0, 0.02)
    assert model.decoder.attention.v.abs().max() <= bound and model.decoder.attention.v.std() > 0.05
    assert model.encoder.embedding.weight.std() > 0.5  # Embedding: N(0, 1)


def test_tied_word_embeddings(tmp_path):
    model = make_model("luong", "general", tie_word_embeddings=True).eval()
    assert model.decoder.out.weight is model.decoder.embedding.weight
    untied = make_model("luong", "general")
    assert untied.decoder.out.weight is not untied.decoder.embedding.weight
    assert sum(p.numel() for p in model.parameters()) == sum(p.numel() for p in untied.parameters()) - (
        TARGET_VOCAB * HIDDEN
    )
    model.save_pretrained(tmp_path)
    assert "decoder.out.weight" not in load_file(tmp_path / "model.safetensors")
    loaded = GruSeq2SeqForConditionalGeneration.from_pretrained(tmp_path).eval()
    assert loaded.decoder.out.weight is loaded.decoder.embedding.weight
    assert_same_logits(model, loaded)


def saved_model(tmp_path, config):
    """A model of `config` (`tiny_config`) with two layers, saved in `tmp_path`."""
    config.num_layers = 2
    torch.manual_seed(0)
    model = GruSeq2SeqForConditionalGeneration(config)
    model.save_pretrained(tmp_path)
    return tmp_path


@pytest.mark.parametrize(
    "change, message",
    [
        ({"num_layers": 1}, "unexpected: decoder.gru.bias_hh_l1"),
        ({"num_layers": 3}, "missing: decoder.gru.bias_hh_l2"),
        ({"attention": "general"}, "missing: decoder.attention.query_projection.weight"),
        ({"hidden_size": 4}, "other shapes than the config's"),
        ({"decoder_type": "bahdanau"}, "the weights do not fit the config"),
    ],
)
def test_weights_that_do_not_fit_the_config_raise_one_line(tmp_path, tiny_config, change, message):
    directory = saved_model(tmp_path, tiny_config)
    config = json.loads((directory / "config.json").read_text())
    (directory / "config.json").write_text(json.dumps({**config, **change}))
    with pytest.raises(ValueError, match=message) as error:
        GruSeq2SeqForConditionalGeneration.from_pretrained(directory)
    assert "\n" not in str(error.value)
    assert GruSeq2SeqForConditionalGeneration.from_pretrained(directory, ignore_mismatched_sizes=True) is not None


def test_non_finite_weights_raise_and_loading_reports_the_file(tmp_path, tiny_config):
    from safetensors.torch import load_file, save_file

    directory = saved_model(tmp_path, tiny_config)
    weights = load_file(directory / "model.safetensors")
    weights["decoder.out.bias"][0] = float("nan")
    save_file(weights, directory / "model.safetensors", metadata={"format": "pt"})
    with pytest.raises(ValueError, match="non-finite weights .* in decoder.out.bias"):
        GruSeq2SeqForConditionalGeneration.from_pretrained(directory)


REMOTE_SCRIPT = """
import json, sys
sys.modules["modeling_gru_seq2seq"] = None  # the package is installed: prove the saved files suffice
from transformers import AutoModelForSeq2SeqLM, AutoTokenizer, pipeline
directory, sentences = sys.argv[1], json.loads(sys.argv[2])
model = AutoModelForSeq2SeqLM.from_pretrained(directory, trust_remote_code=True).eval()
tokenizer = AutoTokenizer.from_pretrained(directory, trust_remote_code=True)
batch = tokenizer(sentences, padding=True, return_tensors="pt")
translator = pipeline("translation", model=directory, trust_remote_code=True)
print(json.dumps({
    "modules": [type(model).__module__, type(tokenizer).__module__, type(translator).__module__],
    "greedy": model.generate(**batch, max_new_tokens=8).tolist(),
    "beam": model.generate(**batch, max_new_tokens=8, num_beams=3).tolist(),
    "pipeline": translator(sentences, max_new_tokens=8),
}))
"""


def test_saved_directory_translates_in_fresh_process_without_the_package(tmp_path, tiny_tokenizer, tiny_config):
    from modeling_gru_seq2seq.pipeline_gru_seq2seq import save_translation_pipeline

    tokenizer = tiny_tokenizer
    torch.manual_seed(0)
    config = tiny_config
    config.hidden_size, config.num_layers, config.decoder_type = HIDDEN, 2, "bahdanau"
    model = GruSeq2SeqForConditionalGeneration(config).eval()
    save_translation_pipeline(model, tokenizer, tmp_path / "model")
    assert json.loads((tmp_path / "model" / "config.json").read_text())["custom_pipelines"] == {
        "translation": {"impl": "pipeline_gru_seq2seq.TranslationPipeline", "pt": ["AutoModelForSeq2SeqLM"]}
    }

    sentences = ["Je suis content.", "Elle est là, zorg !"]
    environment = {**os.environ, "HF_MODULES_CACHE": str(tmp_path / "modules")}
    result = subprocess.run(
        [sys.executable, "-c", REMOTE_SCRIPT, str(tmp_path / "model"), json.dumps(sentences)],
        capture_output=True,
        text=True,
        timeout=120,
        env=environment,
    )
    assert result.returncode == 0, result.stderr
    remote = json.loads(result.stdout.strip().splitlines()[-1])
    assert all(module.startswith("transformers_modules.") for module in remote["modules"])
    batch = tokenizer(sentences, padding=True, return_tensors="pt")
    greedy = model.generate(**batch, max_new_tokens=8)
    assert remote["greedy"] == greedy.tolist()
    assert remote["beam"] == model.generate(**batch, max_new_tokens=8, num_beams=3).tolist()
    expected_texts = tokenizer.batch_decode(greedy, skip_special_tokens=True)
    assert remote["pipeline"] == [{"translation_text": text} for text in expected_texts]
    assert all(text for text in expected_texts)


# ---------------------------------------------------------------- inputs refused


def test_left_padding_or_gaps_in_the_mask_raise(tmp_path, tiny_model):
    model = tiny_model
    input_ids = torch.tensor([[0, 5, 6, 2], [4, 5, 6, 2]])
    for mask in ([[0, 1, 1, 1], [1, 1, 1, 1]], [[1, 0, 1, 1], [1, 1, 1, 1]]):
        with pytest.raises(ValueError, match="padding on the right"):
            model.generate(input_ids=input_ids, attention_mask=torch.tensor(mask), max_new_tokens=3)


@pytest.mark.parametrize(
    "mask_of, message",
    [
        (lambda mask: mask * 2, "attention_mask: got 2, want only 0 (padding) and 1 (token)"),
        (lambda mask: -mask, "attention_mask: got -1, want only 0 (padding) and 1 (token)"),
        (lambda mask: mask.float() * 0.5, "attention_mask: got 0.5, want only 0 (padding) and 1 (token)"),
        (lambda mask: mask[:, :2], "attention_mask: got shape (2, 2), want (2, 4), the shape of input_ids"),
    ],
)
def test_a_mask_of_other_values_or_width_is_one_line_wherever_it_enters(tiny_model, mask_of, message):
    """Masks that once crashed the process (a mask of 2 on unpadded sentences: SIGSEGV in generate, SIGBUS in a
    forward with labels, a double free with beams) or gave deep tracebacks: one line, for every entry."""
    model = tiny_model.eval()
    input_ids = torch.tensor([[4, 5, 6, 2], [4, 5, 6, 2]])  # equal lengths: no padding
    mask = mask_of(torch.ones_like(input_ids))
    calls = [
        lambda: model.generate(input_ids=input_ids, attention_mask=mask, max_new_tokens=3),
        lambda: model(input_ids=input_ids, attention_mask=mask, labels=input_ids),
        lambda: model.generate(input_ids=input_ids[:1], attention_mask=mask[:1], num_beams=3, max_new_tokens=3),
        lambda: model.generate(input_ids=input_ids, attention_mask=mask, do_sample=True, max_new_tokens=3),
    ]
    for call in calls:
        with pytest.raises(ValueError) as error:
            call()
        assert (
            str(error.value) == message.replace("(2, 2)", "(1, 2)").replace("(2, 4)", "(1, 4)")
            or str(error.value) == message
        )


def test_float_input_ids_are_one_line(tiny_model):
    with pytest.raises(ValueError, match=r"^input_ids: got dtype torch.float32, want a tensor of integer token ids"):
        tiny_model.generate(input_ids=torch.tensor([[4.0, 5.0, 2.0]]), max_new_tokens=3)
    with pytest.raises(ValueError, match=r"^input_ids: got dtype torch.float32"):
        tiny_model(input_ids=torch.tensor([[4.0, 5.0, 2.0]]), labels=torch.tensor([[4, 2]]))


def test_generate_and_the_pipeline_check_their_inputs(saved_model_dir):
    model = GruSeq2SeqForConditionalGeneration.from_pretrained(saved_model_dir)
    sentence = torch.tensor([[4, 5, 2]])
    cases = [
        (dict(input_ids=sentence, num_beams=0), "num_beams: got 0, want an integer >= 1"),
        (
            dict(input_ids=torch.tensor([[4, 5, 2], [0, 0, 0]]), attention_mask=torch.tensor([[1, 1, 1], [0, 0, 0]])),
            "attention_mask: row 1 is all padding",
        ),
        (dict(input_ids=torch.zeros(0, 3, dtype=torch.long)), "input_ids: got shape (0, 3)"),
        (dict(input_ids=torch.tensor([[4, 57, 2]])), "input_ids: got 57, want ids in 0.."),
    ]
    for kwargs, message in cases:
        with pytest.raises(ValueError) as error:
            model.generate(**kwargs, max_new_tokens=3)
        assert str(error.value).startswith(message) and "\n" not in str(error.value)
    translator = TranslationPipeline(model=model, tokenizer=GruSeq2SeqTokenizer.from_pretrained(saved_model_dir))
    with pytest.raises(ValueError, match="num_beams: got 0"):
        translator("je suis la", num_beams=0)


@pytest.mark.parametrize("onednn", [False, True])
@pytest.mark.parametrize("rows", [1, 5])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("attention", ["dot", "general", "concat"])
def test_the_compiled_luong_step_equals_its_python_operations(monkeypatch, attention, dtype, rows, onednn):
    """In eval mode without gradients a Luong step is one compiled call (`luong_step`): the same tensors, bit for
    bit, as `decode_in_parallel` of the token."""
    ops = recurrence_ops()
    assert ops is not None, "the compiled GRU recurrence did not build (see the warning)"
    for module in (modeling, packed_gru):  # the step and the GRU it would call take the same loops
        monkeypatch.setattr(module, "choice", lambda *args, **kwargs: Loops(ops, onednn))
    torch.manual_seed(0)
    config = GruSeq2SeqConfig(
        source_vocab_size=40, target_vocab_size=30, hidden_size=16, num_layers=2, attention=attention
    )
    model = GruSeq2SeqForConditionalGeneration(config).to(dtype).eval()
    input_ids = torch.randint(4, 40, (rows, 6))
    attention_mask = torch.ones_like(input_ids)
    attention_mask[rows // 2 :, 4:] = 0
    with torch.no_grad():
        hidden, source = model.decoder_start(model.encoder(input_ids, attention_mask), attention_mask)
        tokens = torch.randint(4, 30, (rows, 1))
        assert model.decoder.compiled_step_loops(tokens, hidden) is not None
        compiled, python = (
            model.decoder.step(tokens, hidden, source),
            model.decoder.decode_in_parallel(tokens, hidden, source),
        )
    for name in ("logits", "hidden", "attention_weights"):
        assert torch.equal(getattr(compiled, name), getattr(python, name)), name
    assert all(torch.equal(a, b) for a, b in zip(compiled.hidden_states, python.hidden_states, strict=True))


def test_the_compiled_step_is_not_taken_in_training_with_gradients_or_hooks(monkeypatch):
    monkeypatch.setattr(modeling, "choice", lambda *args, **kwargs: Loops(recurrence_ops(), False))
    model = make_model("luong", "dot").eval()
    tokens, hidden = torch.tensor([[4]]), torch.zeros(model.config.num_layers, 1, HIDDEN)
    assert model.decoder.compiled_step_loops(tokens, hidden) is None  # gradients on
    with torch.no_grad():
        assert model.decoder.compiled_step_loops(tokens, hidden) is not None
        handle = model.decoder.out.register_forward_hook(lambda *args: None)
        assert model.decoder.compiled_step_loops(tokens, hidden) is None
        handle.remove()
        assert model.train().decoder.compiled_step_loops(tokens, hidden) is None
