#!/usr/bin/env python
"""Train and evaluate the attention GRU translator (French -> English) with the Trainer API.

As transformers' own `examples/pytorch/translation/run_translation.py`, with the Practical PyTorch
tutorial's data preparation, model and optimizer as defaults:

    python run_translation.py --train_file ../shared/data/eng-fra.txt --output_dir runs/fr-en
    python run_translation.py args.json            # every argument from one JSON file

Without a data flag it reads `data/eng-fra.txt` under the working directory (the tutorial's layout), or
downloads the tutorial's Tatoeba file once (cached by `datasets`). Rerunning with the same `--output_dir`
resumes from its last complete checkpoint; `--overwrite_output_dir` starts over.
"""

import logging
import os
import shutil
import sys
from dataclasses import dataclass, field

import datasets
import torch
import transformers
from datasets import load_dataset
from transformers import (
    DataCollatorForSeq2Seq,
    HfArgumentParser,
    Seq2SeqTrainingArguments,
    set_seed,
)
from transformers.trainer_utils import get_last_checkpoint

from data_scripts.prepare_tatoeba import (
    TUTORIAL_DATA_URL,
    DataFileError,
    PrepareArguments,
    normalize_translation_records,
    prepare_evaluation_files,
    prepare_tatoeba,
    to_translation_layout,
    tokenize_translation,
)
from modeling_gru_seq2seq import GruSeq2SeqConfig, GruSeq2SeqForConditionalGeneration
from modeling_gru_seq2seq.loading import ModelLoadError, load_model_and_tokenizer
from modeling_gru_seq2seq.metrics import load_sacrebleu_chrf
from modeling_gru_seq2seq.plotting import matplotlib_available, plot_attention, plot_loss
from modeling_gru_seq2seq.training import (
    GracefulStopCallback,
    GruSeq2SeqTrainer,
    TimeLimitCallback,
    build_compute_metrics,
)
from modeling_gru_seq2seq.translate import translate

logger = logging.getLogger(__name__)


class UsageError(Exception):
    """Bad arguments or an unusable output directory: reported as one line, exit code 2."""


@dataclass
class ModelArguments:
    """Which model to start from, or the shape of a new one (the tutorial's values as defaults)."""

    model_name_or_path: str | None = field(
        default=None, metadata={"help": "A saved model (directory or Hub id); without it a new model is built."}
    )
    cache_dir: str | None = field(default=None, metadata={"help": "Where downloaded models are stored."})
    trust_remote_code: bool = field(default=False, metadata={"help": "Load a Hub model's own code."})
    attention: str = field(default="dot", metadata={"help": "Luong score.", "choices": ["dot", "general", "concat"]})
    decoder_type: str = field(default="luong", metadata={"choices": ["luong", "bahdanau"]})
    hidden_size: int = field(default=500)
    num_layers: int = field(default=2, metadata={"help": "GRU layers of the encoder and of the decoder."})
    dropout: float = field(default=0.1)
    teacher_forcing_ratio: float = field(default=0.5, metadata={"help": "Chance a training batch is teacher-forced."})
    decoder_init: str = field(
        default="sum", metadata={"help": "Decoder start state (see GruSeq2SeqConfig).", "choices": ["seed", "sum"]}
    )


@dataclass
class DataTrainingArguments:
    """What data to train and evaluate on, and the tutorial's preparation knobs."""

    source_lang: str = field(default="fr")
    target_lang: str = field(default="en")
    dataset_name: str | None = field(default=None, metadata={"help": "A Hub dataset in the translation layout."})
    dataset_config_name: str | None = field(default=None)
    train_file: str | None = field(
        default=None, metadata={"help": "Tatoeba pair file (English<TAB>French), jsonl or URL."}
    )
    validation_file: str | None = field(default=None, metadata={"help": "Replaces the validation split."})
    test_file: str | None = field(default=None, metadata={"help": "Replaces the test split."})
    max_source_length: int | None = field(default=None, metadata={"help": "Truncate sources to this many tokens."})
    max_target_length: int | None = field(default=None, metadata={"help": "Truncate training targets."})
    val_max_target_length: int | None = field(
        default=None, metadata={"help": "Truncate eval/test targets; also the generation limit (default 50)."}
    )
    max_train_samples: int | None = field(default=None)
    max_eval_samples: int | None = field(default=None)
    max_predict_samples: int | None = field(default=None)
    num_beams: int | None = field(default=None, metadata={"help": "Beams for evaluate/predict (default greedy)."})
    min_count: int = field(default=5, metadata={"help": "Keep words seen at least this often (Lang.trim)."})
    min_length: int = field(default=3)
    max_length: int = field(default=25)
    length_unit: str = field(default="chars", metadata={"choices": ["chars", "words"]})
    split_seed: int = field(default=42, metadata={"help": "Seed of the train/validation/test split."})
    validation_fraction: float = field(default=0.05, metadata={"help": "Share of source sentences held out for "
                                                               "validation (0 with --validation_file: train on all)."})
    test_fraction: float = field(default=0.05, metadata={"help": "Share of source sentences held out for test."})
    skip_bad_lines: bool = field(default=False, metadata={"help": "Skip (and count) malformed lines."})
    num_attention_plots: int = field(default=3, metadata={"help": "attention_<i>.png for validation sentences."})


@dataclass
class GruSeq2SeqTrainingArguments(Seq2SeqTrainingArguments):
    """`Seq2SeqTrainingArguments` with the tutorial's optimization as defaults, plus three flags."""

    overwrite_output_dir: bool = field(default=False, metadata={"help": "Start over instead of resuming."})
    max_train_minutes: float | None = field(
        default=None, metadata={"help": "Stop training after this wall time, then evaluate and save."}
    )
    decoder_learning_ratio: float = field(default=5.0, metadata={"help": "Decoder learning rate multiplier."})
    learning_rate: float = field(default=1e-4)
    lr_scheduler_type: str = field(default="constant")
    max_grad_norm: float = field(default=50.0)
    per_device_train_batch_size: int = field(default=50)
    per_device_eval_batch_size: int = field(default=50)
    num_train_epochs: float = field(default=10.0)
    eval_strategy: str = field(default="epoch")
    save_strategy: str = field(default="epoch")
    save_total_limit: int | None = field(default=2)
    logging_steps: float = field(default=50)
    predict_with_generate: bool = field(default=True)


def parse_arguments(argv: list[str]) -> tuple[ModelArguments, DataTrainingArguments, GruSeq2SeqTrainingArguments]:
    parser = HfArgumentParser((ModelArguments, DataTrainingArguments, GruSeq2SeqTrainingArguments))
    if len(argv) == 1 and argv[0].endswith(".json"):
        return parser.parse_json_file(json_file=os.path.abspath(argv[0]))
    return parser.parse_args_into_dataclasses(argv)


def check_conflicts(data_args, training_args) -> None:
    if data_args.dataset_name and data_args.train_file:
        raise UsageError("--dataset_name and --train_file both name the training data: pass one")
    if training_args.overwrite_output_dir and training_args.resume_from_checkpoint:
        raise UsageError("--overwrite_output_dir starts over, --resume_from_checkpoint resumes: pass one")
    if training_args.max_train_minutes is not None and training_args.max_train_minutes <= 0:
        raise UsageError(f"--max_train_minutes must be positive, got {training_args.max_train_minutes}")
    if data_args.source_lang == data_args.target_lang:
        raise UsageError(f"--source_lang and --target_lang are both {data_args.source_lang!r}")


def resume_checkpoint(training_args) -> str | None:
    """The checkpoint to resume from, after checking `output_dir` holds nothing but an earlier run."""
    output_dir = training_args.output_dir
    if training_args.resume_from_checkpoint:
        if not os.path.isdir(training_args.resume_from_checkpoint):
            raise UsageError(f"--resume_from_checkpoint {training_args.resume_from_checkpoint}: no such directory")
        return training_args.resume_from_checkpoint
    if not os.path.isdir(output_dir) or not os.listdir(output_dir) or not training_args.do_train:
        return None
    if training_args.overwrite_output_dir:
        for name in os.listdir(output_dir):  # stale checkpoints would be resumed by a later run
            if name.startswith("checkpoint-") or name == ".checkpoint-staging":
                shutil.rmtree(os.path.join(output_dir, name))
        return None
    last_checkpoint = get_last_checkpoint(output_dir)
    if last_checkpoint is None:
        raise UsageError(
            f"output directory {output_dir} already exists, is not empty and holds no checkpoint to resume: "
            "pass --overwrite_output_dir to start over in it, or choose another --output_dir"
        )
    print(f"Resuming from {last_checkpoint} (pass --overwrite_output_dir to start over)")
    return last_checkpoint


def find_train_file(data_args) -> str:
    """`--train_file`, else the tutorial's `data/eng-fra.txt`, else its download URL (cached by datasets)."""
    if data_args.train_file:
        return data_args.train_file
    if os.path.isfile(os.path.join("data", "eng-fra.txt")):
        return os.path.join("data", "eng-fra.txt")
    logger.info(f"No --train_file and no data/eng-fra.txt: using {TUTORIAL_DATA_URL} (downloaded once, cached)")
    return TUTORIAL_DATA_URL


def load_corpus(data_args, prepare_args, tokenizer, need_train: bool):
    """The prepared DatasetDict (translation layout) and the tokenizer (built here when not given)."""
    if not need_train and (data_args.validation_file or data_args.test_file):
        splits = prepare_evaluation_files(prepare_args, validation=data_args.validation_file,
                                          test=data_args.test_file)
        return datasets.DatasetDict({k: to_translation_layout(v, prepare_args) for k, v in splits.items()}), tokenizer
    if data_args.dataset_name:
        records = load_dataset(data_args.dataset_name, data_args.dataset_config_name, split="train")
        train = normalize_translation_records(records, prepare_args, data_args.dataset_name)
    else:
        train = find_train_file(data_args)
    try:
        corpus = prepare_tatoeba(train, prepare_args, data_args.validation_file, data_args.test_file, tokenizer)
    except DataFileError:
        raise
    except Exception as error:
        if isinstance(train, str) and "://" in train:
            raise UsageError(
                f"could not download the Tatoeba pairs from {train} ({type(error).__name__}: {error}); "
                "pass --train_file path/to/eng-fra.txt"
            ) from None
        raise
    return corpus.dataset, corpus.tokenizer


def build_model(model_args, tokenizer, max_new_tokens: int):
    """A new model shaped by `model_args`, with the tokenizer's vocabulary sizes and special ids."""
    config = GruSeq2SeqConfig(
        source_vocab_size=tokenizer.source_vocab_size,
        target_vocab_size=tokenizer.target_vocab_size,
        hidden_size=model_args.hidden_size,
        num_layers=model_args.num_layers,
        dropout=model_args.dropout,
        attention=model_args.attention,
        decoder_type=model_args.decoder_type,
        teacher_forcing_ratio=model_args.teacher_forcing_ratio,
        decoder_init=model_args.decoder_init,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id,
        decoder_start_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
    )
    model = GruSeq2SeqForConditionalGeneration(config)
    model.generation_config.max_length = max_new_tokens + 1  # the start token counts
    return model


def in_vocabulary_flags(tokenized, unk: int) -> list[bool]:
    """Per example: no `<unk>` in its source or target tokens."""
    return [unk not in source and unk not in target for source, target in zip(tokenized["input_ids"], tokenized["labels"])]


def data_summary(data_args) -> str:
    source = data_args.dataset_name or data_args.train_file or "the tutorial's data/eng-fra.txt"
    return (f"Trained on {source}: normalized, {data_args.min_length}..{data_args.max_length} "
            f"{data_args.length_unit} per side, words seen fewer than {data_args.min_count} times trimmed (pairs "
            f"holding them dropped), split by source sentence (seed {data_args.split_seed}).")


def save_plots(trainer, tokenizer, validation, count: int) -> None:
    """`loss.png` from the log history and `attention_<i>.png` for the first `count` validation sources."""
    output_dir = trainer.args.output_dir
    if not matplotlib_available():
        print("matplotlib is not installed: skipping loss.png and attention plots (pip install gru-seq2seq[plot])")
        return
    if trainer.state.log_history:
        plot_loss(trainer.state.log_history, os.path.join(output_dir, "loss.png"))
    sources = [pair[tokenizer.source_lang] for pair in validation["translation"][:count]] if validation else []
    for index, result in enumerate(translate(trainer.model, tokenizer, sources, output_attentions=True)):
        plot_attention(result.source_tokens, result.output_tokens, result.attention,
                       os.path.join(output_dir, f"attention_{index}.png"))


def main(argv: list[str] | None = None) -> int:
    if int(os.environ.get("WORLD_SIZE", "1")) > 1 and not torch.cuda.is_available():
        # Distributed on CPUs (torchrun, accelerate launch): without this, accelerate runs each process
        # alone (DistributedType.NO): no gradient synchronisation and evaluation that is not gathered.
        os.environ.setdefault("ACCELERATE_USE_CPU", "true")
    model_args, data_args, training_args = parse_arguments(sys.argv[1:] if argv is None else argv)
    logging.basicConfig(format="%(asctime)s - %(levelname)s - %(name)s - %(message)s", datefmt="%H:%M:%S",
                        handlers=[logging.StreamHandler(sys.stdout)])
    log_level = training_args.get_process_log_level()
    for log in (logger, logging.getLogger("modeling_gru_seq2seq"), datasets.utils.logging, transformers.utils.logging):
        log.set_verbosity(log_level) if hasattr(log, "set_verbosity") else log.setLevel(log_level)
    try:
        return run(model_args, data_args, training_args)
    except (UsageError, DataFileError, ModelLoadError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2


def run(model_args, data_args, training_args) -> int:
    if model_args.model_name_or_path is None:  # a new model: train it, then evaluate and test it
        training_args.do_train = training_args.do_eval = training_args.do_predict = True
    elif not (training_args.do_train or training_args.do_eval or training_args.do_predict):
        raise UsageError("with --model_name_or_path, say what to do: --do_train, --do_eval and/or --do_predict")
    check_conflicts(data_args, training_args)
    model, tokenizer = None, None
    if model_args.model_name_or_path:
        model, tokenizer = load_model_and_tokenizer(model_args.model_name_or_path, cache_dir=model_args.cache_dir,
                                                    trust_remote_code=model_args.trust_remote_code)
    checkpoint = resume_checkpoint(training_args)
    set_seed(training_args.seed)

    prepare_args = PrepareArguments(
        source_lang=data_args.source_lang, target_lang=data_args.target_lang, min_length=data_args.min_length,
        max_length=data_args.max_length, length_unit=data_args.length_unit, min_count=data_args.min_count,
        split_seed=data_args.split_seed, skip_bad_lines=data_args.skip_bad_lines,
        validation_fraction=data_args.validation_fraction, test_fraction=data_args.test_fraction,
    )
    with training_args.main_process_first(desc="data preparation"):
        raw, tokenizer = load_corpus(data_args, prepare_args, tokenizer, training_args.do_train)
    splits = {"train": data_args.max_train_samples, "validation": data_args.max_eval_samples,
              "test": data_args.max_predict_samples}
    raw = datasets.DatasetDict({name: split.select(range(min(len(split), splits[name] or len(split))))
                                for name, split in raw.items()})
    eval_target_length = data_args.val_max_target_length or data_args.max_target_length
    tokenized = datasets.DatasetDict({
        name: tokenize_translation(split, tokenizer, data_args.max_source_length,
                                   data_args.max_target_length if name == "train" else eval_target_length)
        for name, split in raw.items()
    })

    if model is None:
        model = build_model(model_args, tokenizer, max_new_tokens=data_args.val_max_target_length or 50)
    training_args.generation_num_beams = data_args.num_beams or training_args.generation_num_beams
    metric = load_sacrebleu_chrf()
    signature = metric.compute(predictions=["a"], references=[["a"]])["bleu_signature"]
    print(f"BLEU and chrF by sacrebleu; BLEU signature: {signature}")

    def split_metrics(name):
        if name not in tokenized:
            return None
        references = [pair[tokenizer.target_lang] for pair in raw[name]["translation"]]
        return build_compute_metrics(tokenizer, references, in_vocabulary_flags(tokenized[name], tokenizer.unk_token_id))

    graceful_stop = GracefulStopCallback()
    callbacks = [graceful_stop]
    if training_args.max_train_minutes:
        callbacks.append(TimeLimitCallback(training_args.max_train_minutes))
    trainer = GruSeq2SeqTrainer(
        model=model,
        args=training_args,
        train_dataset=tokenized["train"].remove_columns("translation") if training_args.do_train else None,
        eval_dataset=tokenized["validation"].remove_columns("translation") if "validation" in tokenized else None,
        processing_class=tokenizer,
        data_collator=DataCollatorForSeq2Seq(tokenizer, model=model, label_pad_token_id=-100),
        compute_metrics=split_metrics("validation"),
        callbacks=callbacks,
        decoder_learning_ratio=training_args.decoder_learning_ratio,
    )

    if training_args.do_train:
        train_result = trainer.train(resume_from_checkpoint=checkpoint)
        trainer.save_model()
        metrics = dict(train_result.metrics, train_samples=len(tokenized["train"]))
        trainer.log_metrics("train", metrics)
        trainer.save_metrics("train", metrics)
        trainer.save_state()
        if graceful_stop.signal_received is not None:
            print(f"Interrupted at step {trainer.state.global_step}: checkpoint and model saved in "
                  f"{training_args.output_dir}; rerun the same command to resume.")
            return 128 + graceful_stop.signal_received

    if training_args.do_eval and "validation" in tokenized:
        trainer.compute_metrics = split_metrics("validation")
        metrics = trainer.evaluate(metric_key_prefix="eval")
        metrics["eval_samples"] = len(tokenized["validation"])
        trainer.log_metrics("eval", metrics)
        trainer.save_metrics("eval", metrics)

    if training_args.do_predict and "test" in tokenized:
        trainer.compute_metrics = split_metrics("test")
        results = trainer.predict(tokenized["test"].remove_columns("translation"), metric_key_prefix="predict")
        metrics = dict(results.metrics, predict_samples=len(tokenized["test"]))
        trainer.log_metrics("predict", metrics)
        trainer.save_metrics("predict", metrics)
        if trainer.is_world_process_zero():
            token_ids = results.predictions[: len(tokenized["test"])]
            token_ids[token_ids < 0] = tokenizer.pad_token_id
            predictions = tokenizer.batch_decode(token_ids, skip_special_tokens=True)
            with open(os.path.join(training_args.output_dir, "generated_predictions.txt"), "w",
                      encoding="utf-8") as handle:
                handle.write("\n".join(predictions) + "\n")

    if trainer.is_world_process_zero():
        print(f"sacrebleu signature: {signature}")
        if training_args.do_train:
            trainer.create_model_card(language=[data_args.source_lang, data_args.target_lang],
                                      dataset_args=data_summary(data_args))
            save_plots(trainer, tokenizer, raw.get("validation"), data_args.num_attention_plots)
    if training_args.push_to_hub and training_args.do_train:
        trainer.push_to_hub(language=[data_args.source_lang, data_args.target_lang],
                            dataset_args=data_summary(data_args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
