"""GruSeq2SeqTrainer: the tutorial's two learning rates, teacher-forcing draws that every DDP process
(whatever its data) makes alike, the time limit, a diverging run stopped before its weights turn non-finite,
and the generation length in the metrics."""

import numpy as np
import pytest
import torch
from datasets import Dataset
from transformers import Seq2SeqTrainingArguments, TrainerCallback, default_data_collator

from modeling_gru_seq2seq import GruSeq2SeqForConditionalGeneration
from modeling_gru_seq2seq.training import GruSeq2SeqTrainer, TimeLimitCallback, TrainingDivergedError


def make_trainer(config, tmp_path, data_seed: int, steps: int = 16, **arguments):
    """A trainer of a new model of `config` (`tiny_config`: teacher forcing ratio 0.5) on random data; `arguments`
    go to its `Seq2SeqTrainingArguments`."""
    model = GruSeq2SeqForConditionalGeneration(config)
    generator = torch.Generator().manual_seed(data_seed)
    dataset = Dataset.from_dict(
        {
            "input_ids": torch.randint(3, 12, (64, 5), generator=generator).tolist(),
            "labels": torch.randint(3, 12, (64, 4), generator=generator).tolist(),
        }
    )
    args = Seq2SeqTrainingArguments(
        output_dir=str(tmp_path),
        max_steps=steps,
        per_device_train_batch_size=4,
        learning_rate=1e-3,
        save_strategy="no",
        report_to="none",
        seed=7,
        use_cpu=True,
        remove_unused_columns=False,
        disable_tqdm=True,
        **arguments,
    )
    return GruSeq2SeqTrainer(
        model=model, args=args, train_dataset=dataset, data_collator=default_data_collator, decoder_learning_ratio=5.0
    )


def recorded_teacher_forcing(trainer) -> list:
    draws, forward = [], trainer.model.forward

    def recording_forward(*args, teacher_forcing=None, **kwargs):
        draws.append(teacher_forcing)
        return forward(*args, teacher_forcing=teacher_forcing, **kwargs)

    trainer.model.forward = recording_forward
    trainer.train()
    return draws


def test_teacher_forcing_draws_depend_on_step_not_on_data(tmp_path, tiny_config):
    first = recorded_teacher_forcing(make_trainer(tiny_config, tmp_path / "a", data_seed=0))
    second = recorded_teacher_forcing(
        make_trainer(tiny_config, tmp_path / "b", data_seed=1)
    )  # another process's shard
    assert len(first) == 16 and first == second
    assert set(first) == {True, False}  # ratio 0.5: both kinds of batch happen


def test_decoder_learns_at_five_times_the_encoder_rate(tmp_path, tiny_config):
    trainer = make_trainer(tiny_config, tmp_path, data_seed=0)
    encoder_group, decoder_group = trainer.create_optimizer().param_groups
    model = trainer.model
    assert {id(p) for p in decoder_group["params"]} == {id(p) for p in model.decoder.parameters()}
    assert {id(p) for p in encoder_group["params"]} == {id(p) for p in model.encoder.parameters()}
    assert (encoder_group["lr"], decoder_group["lr"]) == (1e-3, 5e-3)
    assert isinstance(trainer.optimizer, torch.optim.Adam) and encoder_group["weight_decay"] == 0
    assert trainer.optimizer.defaults["fused"]


def test_time_limit_stops_training_and_the_run_goes_on(tmp_path, tiny_config):
    trainer = make_trainer(tiny_config, tmp_path, data_seed=0, steps=50)
    trainer.add_callback(TimeLimitCallback(minutes=1e-9))
    trainer.train()
    assert trainer.state.global_step == 1  # stopped after the first step, without an error


def step_rates(trainer, minutes: float | None, seconds_per_step: float = 6) -> list[float]:
    """Train; the learning rate of each step, under a time limit of `minutes` whose clock advances
    `seconds_per_step` per step (None: no time limit)."""
    if minutes is not None:
        budget = TimeLimitCallback(minutes)
        ticks = iter(range(0, 1_000_000, seconds_per_step))  # read once at the start, then once per step
        budget.clock = lambda: next(ticks)
        trainer.add_callback(budget)
    rates = []

    class Record(TrainerCallback):
        def on_step_end(self, args, state, control, **kwargs):
            rates.append(trainer.lr_scheduler.get_last_lr()[0])

    trainer.add_callback(Record())
    trainer.train()
    return rates


@pytest.mark.parametrize(
    ("schedule", "warmup", "shape"),
    [
        ("linear", 0, lambda p: 1 - p),
        ("linear", 0.2, lambda p: p / 0.2 if p < 0.2 else (1 - p) / 0.8),
        ("cosine", 0, lambda p: 0.5 * (1 + np.cos(np.pi * p))),
        ("constant", 0, lambda p: 1.0),  # the tutorial's: no schedule, whatever the limit
    ],
)
def test_under_a_time_limit_the_schedule_spans_the_minutes(tmp_path, tiny_config, schedule, warmup, shape):
    """1,000 steps planned, a 1-minute limit reached after 10 steps of 6 seconds: a linear decay ends at 0 with the
    minutes (the Trainer would have spread it over the 1,000 steps); step k reads the clock of step k - 1's end."""
    trainer = make_trainer(tiny_config, tmp_path, 0, steps=1000, lr_scheduler_type=schedule, warmup_steps=warmup)
    rates = step_rates(trainer, minutes=1)
    assert trainer.state.global_step == 10
    position = [max(k / 1000, (k - 1) / 10) for k in range(1, 11)]
    expected = [1e-3 * shape(round(p * 10_000) / 10_000) for p in position]
    assert rates == pytest.approx(expected, rel=1e-6, abs=1e-12)


def test_a_time_limit_that_ends_after_the_steps_leaves_the_trainers_schedule(tmp_path, tiny_config):
    plain = step_rates(make_trainer(tiny_config, tmp_path / "a", 0, steps=20, lr_scheduler_type="linear"), None)
    timed = make_trainer(tiny_config, tmp_path / "b", 0, steps=20, lr_scheduler_type="linear")
    assert step_rates(timed, minutes=600) == pytest.approx(plain, rel=1e-6, abs=1e-12)
    assert plain[-1] == 0 and len(plain) == 20


def test_diverging_training_stops_before_the_weights_turn_non_finite(tmp_path, tiny_model):
    model = tiny_model
    calls = []

    def poison(module, args, output):  # the 3rd training batch's loss is NaN
        calls.append(1)
        if len(calls) == 3:
            output.loss = output.loss * float("nan")
        return output

    model.register_forward_hook(poison)
    generator = torch.Generator().manual_seed(0)
    dataset = Dataset.from_dict(
        {
            "input_ids": torch.randint(3, 12, (64, 5), generator=generator).tolist(),
            "labels": torch.randint(3, 12, (64, 4), generator=generator).tolist(),
        }
    )
    args = Seq2SeqTrainingArguments(
        output_dir=str(tmp_path),
        max_steps=10,
        per_device_train_batch_size=4,
        save_strategy="steps",
        save_steps=2,
        report_to="none",
        use_cpu=True,
        disable_tqdm=True,
        remove_unused_columns=False,
    )
    trainer = GruSeq2SeqTrainer(model=model, args=args, train_dataset=dataset, data_collator=default_data_collator)
    with pytest.raises(TrainingDivergedError, match="diverged at step 3.*learning rate.*checkpoint-2"):
        trainer.train()
    assert all(torch.isfinite(parameter).all() for parameter in model.parameters())
    assert (tmp_path / "checkpoint-2").is_dir() and not (tmp_path / "checkpoint-4").exists()


def test_gen_len_counts_tokens_up_to_the_first_eos(tiny_tokenizer):
    from transformers import EvalPrediction

    from modeling_gru_seq2seq.training import build_compute_metrics

    tokenizer = tiny_tokenizer
    i, am = tokenizer.target_vocab()["i"], tokenizer.target_vocab()["am"]
    # greedy pads finished rows with <pad>, beam search with <eos>: both count 3 tokens (i am <eos>)
    predictions = np.array([[1, i, am, 2, 0, 0], [1, i, am, 2, 2, 2]])
    metrics = build_compute_metrics(tokenizer, ["i am", "i am"], [True, True])(
        EvalPrediction(predictions=predictions, label_ids=predictions)
    )
    assert metrics["gen_len"] == 3.0 and metrics["bleu"] == metrics["bleu_in_vocab"]


def test_bleu_by_source_length_scores_each_bucket_on_its_own_sentences(tiny_tokenizer):
    from transformers import EvalPrediction

    from modeling_gru_seq2seq.training import build_compute_metrics, source_word_counts

    right, wrong = "the cat sat on the mat all day long", "a completely different sentence is written here"
    texts = [right, wrong, right]  # what `decode` makes of the generated ids, row for row
    sources = ["je suis .", "a b c d e f g h i j k l", "x"]  # 2 words (the period is none), 12, 1
    assert source_word_counts(sources) == [2, 12, 1]
    predictions = np.ones((3, 4), dtype=np.int64)
    score = build_compute_metrics(
        tiny_tokenizer, [right] * 3, None, lambda ids: texts[: len(ids)], source_word_counts(sources)
    )
    metrics = score(EvalPrediction(predictions=predictions, label_ids=predictions))
    assert metrics["bleu_len_1_5"] == pytest.approx(100.0)  # its two sentences, both right
    assert metrics["bleu_len_11_20"] < 10.0  # its one sentence, wrong
    assert "bleu_len_6_10" not in metrics and "bleu_len_21_plus" not in metrics  # no sentences there
    unscored = build_compute_metrics(tiny_tokenizer, [right] * 3, None, lambda ids: texts[: len(ids)])
    assert "bleu_len_1_5" not in unscored(EvalPrediction(predictions=predictions, label_ids=predictions))
