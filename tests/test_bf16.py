"""`--bf16` training on the CPU's bfloat16 units: the compiled GRU loops with bfloat16 products are what runs
(where the timing picks them), the losses follow float32's, and a CPU without bfloat16 units is refused in one
line."""

import pytest
import torch
from runs import one_line_error
from tiny import PAIRS

import run_translation
from modeling_gru_seq2seq import GruSeq2SeqTokenizer, gru_choice, packed_gru, train_word_level, training
from modeling_gru_seq2seq.gru_kernels import recurrence_ops
from modeling_gru_seq2seq.modeling_gru_seq2seq import (
    GruSeq2SeqAttention,
    GruSeq2SeqConfig,
    GruSeq2SeqForConditionalGeneration,
    GruSeq2SeqSource,
)

needs_bf16_units = pytest.mark.skipif(
    not gru_choice.native_bf16() or recurrence_ops() is None,
    reason="needs a CPU with bfloat16 units (AVX512-BF16 or AMX) and the compiled GRU loops",
)


@pytest.fixture
def bf16_products_chosen(monkeypatch):
    """The timing's choice under bfloat16 autocast, made `compiled+bf16` (at tiny sizes float32 can be the
    faster); what trains is recorded: the `Loops` of every GRU layer's backward pass (its forward pass ran with
    the same ones)."""
    monkeypatch.setattr(gru_choice, "bf16_choice", lambda hidden_size, threads: "compiled+bf16")
    seen = []
    backward = packed_gru.layer_backward

    def recorded(loops, *args):
        seen.append(loops)
        return backward(loops, *args)

    monkeypatch.setattr(packed_gru, "layer_backward", recorded)
    return seen


@needs_bf16_units
def test_bf16_runs_the_compiled_loops_with_bfloat16_products(pairs_file, tmp_path, bf16_products_chosen):
    flags = ["--train_file", pairs_file, "--output_dir", str(tmp_path / "run"), "--hidden_size", "32"]
    flags += ["--num_layers", "1", "--min_count", "1", "--max_steps", "3", "--eval_strategy", "no"]
    flags += ["--num_attention_plots", "0", "--do_eval", "false", "--do_predict", "false", "--report_to", "none"]
    assert run_translation.main([*flags, "--bf16"]) == 0
    trained = [loops for loops in bf16_products_chosen if loops.ops is not None]
    assert trained and all(loops.bf16 for loops in trained)  # encoder and decoder GRUs, every step
    bf16_products_chosen.clear()
    assert run_translation.main([*flags, "--output_dir", str(tmp_path / "float32")]) == 0
    assert bf16_products_chosen and not any(loops.bf16 for loops in bf16_products_chosen)


@needs_bf16_units
def test_bf16_losses_stay_within_two_percent_of_float32_for_20_steps(bf16_products_chosen):
    sources, targets = [source for source, _ in PAIRS], [target for _, target in PAIRS]
    tokenizer = GruSeq2SeqTokenizer.from_vocabularies(train_word_level(sources), train_word_level(targets))
    batch = tokenizer(sources, text_target=targets, padding=True, return_tensors="pt")
    labels = batch["labels"].masked_fill(batch["labels"] == tokenizer.pad_token_id, -100)
    config = GruSeq2SeqConfig(
        source_vocab_size=tokenizer.source_vocab_size,
        target_vocab_size=tokenizer.target_vocab_size,
        hidden_size=64,
        num_layers=2,
        dropout=0.0,
        teacher_forcing_ratio=1.0,
    )
    torch.manual_seed(0)
    models = {"float32": GruSeq2SeqForConditionalGeneration(config).train()}
    models["bfloat16"] = GruSeq2SeqForConditionalGeneration(config).train()
    models["bfloat16"].load_state_dict(models["float32"].state_dict())
    optimizers = {name: torch.optim.Adam(model.parameters(), lr=3e-3) for name, model in models.items()}
    for step in range(20):
        losses = {}
        for name, model in models.items():
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=name == "bfloat16"):
                loss = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], labels=labels).loss
            optimizers[name].zero_grad()
            loss.backward()
            optimizers[name].step()
            losses[name] = loss.item()
        assert losses["bfloat16"] == pytest.approx(losses["float32"], rel=0.02), f"step {step}: {losses}"
    assert any(loops.bf16 for loops in bf16_products_chosen)  # the bfloat16 products ran
    assert all(parameter.dtype == torch.float32 for parameter in models["bfloat16"].parameters())  # master weights


def test_bf16_on_a_cpu_without_bfloat16_units_is_refused_in_one_line(pairs_file, tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(training, "native_bf16", lambda: False)
    monkeypatch.setattr(training, "is_torch_bf16_gpu_available", lambda: False)
    flags = ["--train_file", pairs_file, "--output_dir", str(tmp_path / "run"), "--bf16"]
    assert run_translation.main(flags) == 2
    error = one_line_error(capsys)
    assert error.startswith("error: --bf16: this CPU has no bfloat16 units (AVX512-BF16 or AMX)"), error
    assert not (tmp_path / "run").exists()  # refused before any work


@needs_bf16_units
def test_bf16_on_the_cpu_needs_no_use_cpu_flag():
    args = training.GruSeq2SeqTrainingArguments(output_dir="unused", bf16=True)
    if not torch.cuda.is_available():
        assert args.use_cpu


@pytest.mark.parametrize("score", ["dot", "general", "concat"])
def test_under_autocast_the_attention_scores_in_float32(score):
    """Luong's unscaled scores reach the hundreds in a trained model, where bfloat16 steps by 1: under autocast
    the attention (scores, softmax, context) runs in float32, as without autocast."""
    torch.manual_seed(0)
    attention = GruSeq2SeqAttention(score, 64)
    for parameter in attention.parameters():
        torch.nn.init.normal_(parameter, std=0.3)
    query, states = 2 * torch.randn(3, 5, 64), 2 * torch.randn(3, 7, 64)
    mask = torch.ones(3, 7, dtype=torch.long)
    mask[1, 4:] = 0
    with torch.autocast("cpu", dtype=torch.bfloat16):
        keys = attention.project_keys(states)  # bfloat16 for concat: a linear layer under autocast
        source = GruSeq2SeqSource(states, keys, mask)
        context, weights = attention(query, source)
    expected_context, expected_weights = attention(query, source.to(torch.float32))
    assert context.dtype == weights.dtype == torch.float32
    torch.testing.assert_close(weights, expected_weights, rtol=0, atol=1e-6)
    torch.testing.assert_close(context, expected_context, rtol=0, atol=1e-5)
    assert weights[1, :, 4:].eq(0).all()
