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

import contextlib
import dataclasses
import errno
import fnmatch
import json
import logging
import math
import os
import pickle
import shlex
import shutil
import sys
from dataclasses import dataclass, field

import datasets
import torch
import transformers
from datasets import load_dataset
from safetensors import SafetensorError
from transformers import (
    DataCollatorForSeq2Seq,
    EarlyStoppingCallback,
    HfArgumentParser,
    default_data_collator,
    set_seed,
)
from transformers.trainer_callback import ProgressCallback
from transformers.trainer_pt_utils import safe_globals
from transformers.trainer_utils import get_last_checkpoint

from data_scripts.prepare_tatoeba import (
    PREPARE_RANGES,
    TUTORIAL_DATA_URL,
    DataFileError,
    PrepareArguments,
    SubwordDropoutCollator,
    TokenizeSettings,
    file_digest,
    normalize_translation_records,
    prepare_evaluation_files,
    prepare_tatoeba,
    to_translation_layout,
    tokenize_translation,
    with_ranges_in_help,
)
from modeling_gru_seq2seq import MODEL_CODE_FILES, GruSeq2SeqConfig, GruSeq2SeqForConditionalGeneration
from modeling_gru_seq2seq.commands import (
    RUN_ARGUMENTS_FILE,
    RUN_LOCK_FILE,
    RUN_OUTPUT_DIRS,
    RUN_OUTPUT_FILES,
    RUN_OUTPUT_PATTERNS,
    SHARED_VOCABULARY_DIR,
    WRITE_PROBE_PREFIX,
    UsageError,
)
from modeling_gru_seq2seq.configuration_gru_seq2seq import FIELD_CHOICES, MODEL_SETTINGS, field_help
from modeling_gru_seq2seq.loading import ModelLoadError, load_config, load_model_and_tokenizer, load_tokenizer
from modeling_gru_seq2seq.metrics import sacrebleu_signatures
from modeling_gru_seq2seq.model_card import CARD_MARKER
from modeling_gru_seq2seq.modeling_gru_seq2seq import GRADIENT_CHECKPOINTING_REFUSED
from modeling_gru_seq2seq.owner_lock import OwnerLock
from modeling_gru_seq2seq.plotting import matplotlib_available, plot_attention, plot_loss
from modeling_gru_seq2seq.training import (
    GracefulStopCallback,
    GruSeq2SeqTrainer,
    GruSeq2SeqTrainingArguments,
    TimeBudgetProgressCallback,
    TimeLimitCallback,
    TrainingDivergedError,
    budget_warmup_problem,
    build_compute_metrics,
    build_gru_loops,
    padded_predictions,
    source_word_counts,
)
from modeling_gru_seq2seq.translate import translate, unknown_replaced
from modeling_gru_seq2seq.word_vectors import check_widths, load_pretrained_embeddings

logger = logging.getLogger(__name__)


NEW_MODEL_FIELDS = MODEL_SETTINGS  # each a flag; `--config_overrides` reaches every other field too
TOKENIZER_FIELDS = (
    "vocabulary",
    "source_vocab_size",
    "target_vocab_size",
    "pad_token_id",
    "bos_token_id",
    "eos_token_id",
    "decoder_start_token_id",
    "is_encoder_decoder",
)  # set from the tokenizer, never by hand


def config_flag(name: str):
    """A flag for `GruSeq2SeqConfig`'s field `name`, its help and choices from the config. Unset (None) means
    the config's default (or `--config_name`'s value) for a new model, and the saved value for a loaded one."""
    metadata = {
        "help": f"{field_help(name)} Not given: GruSeq2SeqConfig's default, "
        f"{getattr(GruSeq2SeqConfig, name)!r}, for a new model; the saved value for a loaded one."
    }
    if name in FIELD_CHOICES:
        metadata["choices"] = list(FIELD_CHOICES[name])
    return field(default=None, metadata=metadata)


@dataclass
class ModelArguments:
    """Which model to start from, or the shape of a new one (`GruSeq2SeqConfig`'s defaults: the tutorial's)."""

    model_name_or_path: str | None = field(
        default=None, metadata={"help": "A saved model (directory or Hub id); without it a new model is built."}
    )
    config_name: str | None = field(
        default=None,
        metadata={
            "help": "A saved config (directory or Hub id): the settings of a new model (the flags below and "
            "--config_overrides change them), or the config a --model_name_or_path model loads with."
        },
    )
    tokenizer_name: str | None = field(
        default=None,
        metadata={
            "help": "A saved tokenizer (directory or Hub id) to use instead of building one from the training data "
            "(its vocabularies also trim the pairs) or instead of --model_name_or_path's."
        },
    )
    config_overrides: str | None = field(
        default=None,
        metadata={
            "help": "A new model's settings as NAME=VALUE pairs, e.g. 'hidden_size=256,attention=concat' "
            "(transformers' run_clm convention), over GruSeq2SeqConfig's defaults or --config_name."
        },
    )
    source_embeddings: str | None = field(
        default=None,
        metadata={
            "help": "Pretrained word vectors for the source embedding: word2vec/GloVe/fastText text format (.vec, "
            ".txt, .gz; with or without a `count dim` first line), streamed. Vectors of the vocabulary's words (as "
            "normalized) are copied in, the other rows keep their initialisation; their width must be --hidden_size."
        },
    )
    target_embeddings: str | None = field(
        default=None, metadata={"help": "Pretrained word vectors for the target embedding, as --source_embeddings."}
    )
    init_encoder_from: str | None = field(
        default=None,
        metadata={
            "help": "A saved model (e.g. of an --autoencode run) whose encoder (embedding and GRU) a new model starts "
            "from; its source vocabulary must equal this run's, and its hidden_size and num_layers are taken."
        },
    )
    freeze_encoder: bool = field(
        default=False,
        metadata={"help": "Keep the encoder that --init_encoder_from loads fixed while the rest trains."},
    )
    freeze_embeddings: bool = field(
        default=False,
        metadata={
            "help": "Keep the whole embedding matrices that --source_embeddings/--target_embeddings loaded fixed "
            "during training (with tied embeddings, the output layer too)."
        },
    )
    cache_dir: str | None = field(default=None, metadata={"help": "Where downloaded models are stored."})
    model_revision: str = field(
        default="main",
        metadata={
            "help": "The Hub revision (branch, tag or commit) of --model_name_or_path, --config_name and "
            "--tokenizer_name."
        },
    )
    token: str | None = field(
        default=None,
        metadata={
            "help": "Hub token for private models and datasets (default: the `huggingface-cli login` one or HF_TOKEN)."
        },
    )
    trust_remote_code: bool = field(default=False, metadata={"help": "Load a Hub model's own code."})
    use_fast_tokenizer: bool = field(
        default=True,
        metadata={
            "help": "No effect, accepted for transformers' scripts: the tokenizer is always the fast (tokenizers) one."
        },
    )
    attention: str | None = config_flag("attention")
    decoder_type: str | None = config_flag("decoder_type")
    hidden_size: int | None = config_flag("hidden_size")
    num_layers: int | None = config_flag("num_layers")
    dropout: float | None = config_flag("dropout")
    teacher_forcing_ratio: float | None = config_flag("teacher_forcing_ratio")
    decoder_init: str | None = config_flag("decoder_init")


@dataclass
class DataTrainingArguments(PrepareArguments):
    """What data to train and evaluate on; the tutorial's preparation knobs come from `PrepareArguments`."""

    dataset_name: str | None = field(
        default=None,
        metadata={
            "help": "A dataset (Hub id or local folder) in the translation layout; its own validation and test "
            "splits are used when it has them, else they are carved from its train split."
        },
    )
    dataset_config_name: str | None = field(default=None)
    train_file: str | None = field(
        default=None, metadata={"help": "Tatoeba pair file (English<TAB>French), jsonl or URL."}
    )
    validation_file: str | None = field(
        default=None,
        metadata={"help": "The validation split, used as given (normalized and length-filtered, never trimmed)."},
    )
    test_file: str | None = field(
        default=None,
        metadata={"help": "The test split, used as given (normalized and length-filtered, never trimmed)."},
    )
    max_source_length: int | None = field(default=None, metadata={"help": "Truncate sources to this many tokens."})
    max_target_length: int | None = field(default=None, metadata={"help": "Truncate training targets."})
    val_max_target_length: int | None = field(
        default=None,
        metadata={
            "help": "Truncate eval/test targets; also a fixed generation limit (tokens), for new and loaded models "
            "(default: each sentence's limit follows its source, see GruSeq2SeqConfig.output_length_ratio; a "
            "loaded model's own fixed limit, if its generation_config.json sets one)."
        },
    )
    pad_to_max_length: bool = field(
        default=False,
        metadata={
            "help": "Pad every example to the maximum lengths (the max_*_length flags, else the tokenizer's "
            "model_max_length, 100) and batch with default_data_collator, instead of padding each batch."
        },
    )
    ignore_pad_token_for_loss: bool = field(
        default=True,
        metadata={"help": "Padded label positions get -100 and no loss; false: they are labelled <pad> and count."},
    )
    source_prefix: str | None = field(
        default=None,
        metadata={
            "help": "Text put before every source sentence before tokenizing (T5's task prefix); its words are read "
            "with the source vocabulary (<unk> if not in it)."
        },
    )
    forced_bos_token: str | None = field(
        default=None,
        metadata={
            "help": "No effect, accepted for transformers' scripts: it forces a language token first (mBART), and "
            "this model has one target language and no language tokens."
        },
    )
    preprocessing_num_workers: int | None = field(
        default=None, metadata={"help": "Processes for tokenizing (datasets' num_proc)."}
    )
    overwrite_cache: bool = field(
        default=False,
        metadata={
            "help": "No effect, accepted for transformers' scripts: the preparation runs in memory and caches nothing."
        },
    )
    max_train_samples: int | None = field(default=None)
    max_eval_samples: int | None = field(default=None)
    max_predict_samples: int | None = field(default=None)
    num_beams: int | None = field(default=None, metadata={"help": "Beams for evaluate/predict (default greedy)."})
    num_attention_plots: int = field(default=3, metadata={"help": "attention_<i>.png for validation sentences."})
    replace_unknown: bool = field(
        default=False,
        metadata={
            "help": "In evaluation, prediction and generated_predictions.txt, write each output <unk> as the source "
            "word (as normalized) that received the most attention at that step (see --unknown_pairs keep)."
        },
    )


def _optional(check):
    return lambda value: value is None or check(value)


def _finite_positive(value) -> bool:
    return math.isfinite(value) and value > 0


# Every script flag with a range: (its arguments, what it must be, the check), checked right after parsing;
# `--help` shows the range next to the flag. The model's fields are checked by `GruSeq2SeqConfig`, the data
# preparation's by `PrepareArguments` (`PREPARE_RANGES`), both as they are built.
FLAG_RANGES = {
    "per_device_train_batch_size": ("training", ">= 1", lambda v: v >= 1),
    "per_device_eval_batch_size": ("training", ">= 1", lambda v: v >= 1),
    "learning_rate": ("training", "a finite number > 0", _finite_positive),
    "decoder_learning_ratio": ("training", "a finite number > 0", _finite_positive),
    "max_train_minutes": ("training", "> 0", _optional(_finite_positive)),
    "early_stopping_patience": ("training", ">= 1", _optional(lambda v: v >= 1)),
    "num_beams": ("data", ">= 1", _optional(lambda v: v >= 1)),
    "max_train_samples": ("data", ">= 1 (leave it out for all)", _optional(lambda v: v >= 1)),
    "max_eval_samples": ("data", ">= 1 (leave it out for all)", _optional(lambda v: v >= 1)),
    "max_predict_samples": ("data", ">= 1 (leave it out for all)", _optional(lambda v: v >= 1)),
    "max_source_length": ("data", ">= 2 (a word and <eos>)", _optional(lambda v: v >= 2)),
    "max_target_length": ("data", ">= 2 (a word and <eos>)", _optional(lambda v: v >= 2)),
    "val_max_target_length": ("data", ">= 2 (a word and <eos>)", _optional(lambda v: v >= 2)),
    "num_attention_plots": ("data", ">= 0", lambda v: v >= 0),
    "preprocessing_num_workers": ("data", ">= 1", _optional(lambda v: v >= 1)),
}


def check_ranges(model_args, data_args, training_args) -> None:
    """Each flag of `FLAG_RANGES` within its range, else one line `--flag: got V, want RANGE`."""
    arguments = {"model": model_args, "data": data_args, "training": training_args}
    for flag, (group, want, check) in FLAG_RANGES.items():
        value = getattr(arguments[group], flag)
        if not check(value):
            raise UsageError(f"--{flag}: got {value!r}, want {want}")


def parse_arguments(argv: list[str]) -> tuple[ModelArguments, DataTrainingArguments, GruSeq2SeqTrainingArguments]:
    parser = HfArgumentParser((ModelArguments, DataTrainingArguments, GruSeq2SeqTrainingArguments))
    with_ranges_in_help(parser, PREPARE_RANGES)  # the data preparation's ranges, checked by PrepareArguments
    for action in parser._actions:
        if action.dest in FLAG_RANGES:
            action.help = f"{action.help or ''} Valid: {FLAG_RANGES[action.dest][1]}.".strip()
    if len(argv) == 1 and argv[0].endswith(".json"):
        return parser.parse_json_file(json_file=os.path.abspath(argv[0]))
    return parser.parse_args_into_dataclasses(argv)


def check_conflicts(model_args, data_args, training_args) -> None:
    if model_args.config_overrides and model_args.model_name_or_path:
        raise UsageError(
            "--config_overrides sets a new model's fields, --model_name_or_path loads a model with its own: pass one"
        )
    if data_args.dataset_name and data_args.train_file:
        raise UsageError("--dataset_name and --train_file both name the training data: pass one")
    if data_args.open_test and data_args.test_file:
        raise UsageError("--open_test holds a test split out of the training pairs, --test_file gives one: pass one")
    if training_args.overwrite_output_dir and training_args.resume_from_checkpoint:
        raise UsageError("--overwrite_output_dir starts over, --resume_from_checkpoint resumes: pass one")
    loads = model_args.model_name_or_path
    if (
        training_args.overwrite_output_dir
        and loads
        and os.path.realpath(loads) == os.path.realpath(training_args.output_dir)
    ):
        raise UsageError(
            f"--overwrite_output_dir would delete the model --model_name_or_path {loads} loads: give another "
            "--output_dir"
        )
    if training_args.early_stopping_patience is not None and (
        training_args.metric_for_best_model is None or training_args.eval_strategy == "no"
    ):
        raise UsageError(
            "--early_stopping_patience counts evaluations without a better --metric_for_best_model: give "
            "--metric_for_best_model (e.g. bleu) and an --eval_strategy (steps or epoch)"
        )
    if training_args.gradient_checkpointing or getattr(training_args, "activation_checkpointing", False):
        # (transformers 5 sets each of the two flags from the other)
        raise UsageError(f"--gradient_checkpointing/--activation_checkpointing: {GRADIENT_CHECKPOINTING_REFUSED}")
    if training_args.max_train_minutes is not None and training_args.max_train_minutes <= 0:
        raise UsageError(f"--max_train_minutes must be positive, got {training_args.max_train_minutes}")
    warmup = training_args.max_train_minutes and budget_warmup_problem(
        training_args.warmup_steps, training_args.lr_scheduler_type
    )
    if warmup:
        raise UsageError(warmup)
    if data_args.vocabulary != "word":  # word-only options, before any file is opened
        word_only = {
            "--replace_unknown": data_args.replace_unknown,
            "--source_embeddings": model_args.source_embeddings,
            "--target_embeddings": model_args.target_embeddings,
        }
        for flag, given in word_only.items():
            if given:
                raise UsageError(
                    f"{flag} is for word vocabularies, and --vocabulary {data_args.vocabulary} has subwords: drop one"
                )


@contextlib.contextmanager
def output_dir_lock(output_dir: str):
    """Hold `output_dir` for this launch (rank 0 takes the lock for all processes of a `torchrun`): a second
    launch on it stops in one line, a lock whose owner is gone is taken over. Checks first that the folder can
    be created and written, before any data is prepared. A folder created here and left empty is removed."""
    if int(os.environ.get("RANK", "0")) != 0:
        yield
        return
    if os.path.exists(output_dir) and not os.path.isdir(output_dir):
        raise UsageError(f"--output_dir: got {output_dir!r}, want a directory (or a path to create one): it is a file")
    created = not os.path.exists(output_dir)
    try:
        os.makedirs(output_dir, exist_ok=True)
    except OSError as error:
        raise UsageError(
            f"--output_dir: got {output_dir!r}, want a directory (or a path to create one): {error.strerror}"
        ) from None
    try:
        with lock_or_usage_error(os.path.join(output_dir, RUN_LOCK_FILE), output_dir) as lock:
            if not lock.acquired:
                raise UsageError(
                    f"--output_dir {output_dir} is in use by {lock.describe_owner()} (another run): "
                    "wait for it to end, or choose another --output_dir"
                )
            check_writable(output_dir)
            yield
    finally:
        if created and os.path.isdir(output_dir) and not os.listdir(output_dir):
            os.rmdir(output_dir)


@contextlib.contextmanager
def lock_or_usage_error(path: str, output_dir: str):
    """`OwnerLock(path)`, or one line where the lock cannot be written (a read-only or full file system)."""
    try:
        lock = OwnerLock(path).__enter__()
    except OSError as error:
        raise UsageError(f"--output_dir {output_dir}: cannot write there ({error.strerror or error})") from None
    try:
        yield lock
    finally:
        lock.__exit__(None, None, None)


def check_writable(directory: str) -> None:
    """Write (and remove) a small file in `directory`: a read-only or full file system shows now, not at the
    first save after hours of training."""
    probe = os.path.join(directory, f"{WRITE_PROBE_PREFIX}{os.getpid()}")
    try:
        descriptor = os.open(probe, os.O_CREAT | os.O_WRONLY | os.O_TRUNC, 0o644)
        try:
            os.write(descriptor, b"\0" * 65536)
            os.fsync(descriptor)
        finally:
            os.close(descriptor)
    except OSError as error:
        raise UsageError(f"--output_dir {directory}: cannot write there ({error.strerror})") from None
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.remove(probe)


DISK_FULL_SIGNS = ("No space left on device", "StorageFull", "unexpected pos")  # safetensors', torch.save's


def save_failure(error: BaseException) -> str | None:
    """What went wrong when a save failed, on one line (`None`: not a failed save, to be raised as it is). A full
    disk shows as `OSError` ENOSPC, as safetensors' `SafetensorError` ("No space left on device") or as torch.save's
    `RuntimeError` ("unexpected pos ..."): all say that the disk is full."""
    message = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
    if getattr(error, "errno", None) == errno.ENOSPC or any(sign in str(error) for sign in DISK_FULL_SIGNS):
        return f"the disk is full (saving failed: {message})"
    if isinstance(error, OSError):
        return message if error.strerror is None else f"{error.strerror}: {error.filename or ''}".rstrip(": ")
    if isinstance(error, SafetensorError):
        return f"saving failed: {message}"
    return None


def check_room_for_checkpoint(directory: str, model) -> None:
    """A checkpoint holds the weights and Adam's two moments: stop now if the disk cannot take one."""
    needed = 3 * sum(parameter.numel() * parameter.element_size() for parameter in model.parameters())
    free = shutil.disk_usage(directory).free
    if free < needed:
        raise UsageError(
            f"--output_dir {directory}: {free / 1e6:.1f} MB free, but a checkpoint of this model "
            f"needs about {needed / 1e6:.1f} MB"
        )


def holds_saved_model(directory: str) -> bool:
    """Whether `directory` holds a model a run of ours saved at its end (with its state and arguments)."""
    return all(
        os.path.isfile(os.path.join(directory, name))
        for name in ("config.json", "trainer_state.json", RUN_ARGUMENTS_FILE)
    )


def trained_steps(directory: str) -> int:
    """The optimizer steps a checkpoint or a saved run's `trainer_state.json` records."""
    with open(os.path.join(directory, "trainer_state.json"), encoding="utf-8") as handle:
        return json.load(handle)["global_step"]


def trained_vocabularies(directory: str, data_args):
    """A resumed (or rerun) subword run's tokenizer, as its checkpoint or saved model holds it: a `unigram`
    vocabulary trained again on the same data can differ (its trainer is not deterministic), and the weights
    belong to the one they were trained with. `None` for word vocabularies (built the same way every time)."""
    if data_args.vocabulary == "word" or not os.path.isfile(os.path.join(directory, "tokenizer.json")):
        return None
    print(f"Vocabularies from {directory} (a subword vocabulary is not trained again on resume)")
    return load_tokenizer(directory)


def remove_run_outputs(output_dir: str, entries: list[str]) -> None:
    """`--overwrite_output_dir`: remove what an earlier run wrote in `output_dir` (checkpoints, the model, its
    code, vocabularies, results, plots, card, TensorBoard logs: `commands.RUN_OUTPUT_*`), so that the run starts
    over; a user's own files and folders stay."""
    ours = {*RUN_OUTPUT_FILES, *MODEL_CODE_FILES, "MODEL_CARD.md"}
    for name in entries:
        path = os.path.join(output_dir, name)
        is_checkpoint = name.startswith("checkpoint-") and os.path.isfile(os.path.join(path, "trainer_state.json"))
        if is_checkpoint or (name in RUN_OUTPUT_DIRS and os.path.isdir(path)):
            shutil.rmtree(path, ignore_errors=True)
        elif os.path.isfile(path) and (
            name in ours or any(fnmatch.fnmatch(name, pattern) for pattern in RUN_OUTPUT_PATTERNS) or is_card(path)
        ):
            with contextlib.suppress(FileNotFoundError):  # another process of the run removed it first
                os.remove(path)


def is_card(path: str) -> bool:
    """Whether `path` is a `README.md` model card a run wrote (a user's README stays)."""
    if os.path.basename(path) != "README.md":
        return False
    with open(path, encoding="utf-8", errors="replace") as handle:
        return CARD_MARKER in handle.read()


def check_plain_pickles(checkpoint: str) -> None:
    """The checkpoint's pickled files (optimizer, scheduler, RNG states) hold only tensors and plain data, as the
    Trainer's saves do: each is read as torch reads it on resume (`weights_only=True`, which refuses to unpickle
    anything else, the numpy types of RNG states aside), so that a file that is not gives one line naming it now,
    not a traceback after preparation."""
    for name in sorted(os.listdir(checkpoint)):
        path = os.path.join(checkpoint, name)
        if not name.endswith((".pt", ".pth")) or not os.path.isfile(path):
            continue
        try:
            with safe_globals():  # the numpy types the Trainer's RNG states hold, as its own load allows them
                torch.load(path, map_location="cpu", weights_only=True)
        except pickle.UnpicklingError:
            raise UsageError(
                f"{path}: holds pickled objects that are not plain data, which are not unpickled (a checkpoint "
                "written by this script holds tensors and plain data only): resume from another checkpoint, or "
                "pass --overwrite_output_dir to start over"
            ) from None
        except (OSError, RuntimeError, EOFError) as error:
            raise UsageError(f"{path}: cannot be read ({str(error).splitlines()[0]}): it is damaged") from None


def resume_checkpoint(training_args) -> str | None:
    """The checkpoint to resume from, after checking `output_dir` holds nothing but an earlier run (None: start,
    or a finished run's saved model, which `run` checks)."""
    output_dir = training_args.output_dir
    if training_args.resume_from_checkpoint:
        if not os.path.isfile(os.path.join(training_args.resume_from_checkpoint, "trainer_state.json")):
            raise UsageError(
                f"--resume_from_checkpoint: got {training_args.resume_from_checkpoint!r}, want a "
                "checkpoint folder (with trainer_state.json)"
            )
        return training_args.resume_from_checkpoint
    entries = (  # what the run's own first process writes as the others start is not an earlier run
        [
            name
            for name in os.listdir(output_dir)
            if name not in (RUN_LOCK_FILE, SHARED_VOCABULARY_DIR) and not name.startswith(WRITE_PROBE_PREFIX)
        ]
        if os.path.isdir(output_dir)
        else []
    )
    if not entries or not training_args.do_train:
        return None
    if training_args.overwrite_output_dir:
        remove_run_outputs(output_dir, entries)
        return None
    last_checkpoint = get_last_checkpoint(output_dir)
    if last_checkpoint is not None and not os.path.isfile(os.path.join(last_checkpoint, "trainer_state.json")):
        raise UsageError(
            f"{last_checkpoint}: not a complete checkpoint (no trainer_state.json in it): remove it to "
            "resume from the one before, or pass --overwrite_output_dir to start over"
        )
    if last_checkpoint is None and holds_saved_model(output_dir):
        return None
    if last_checkpoint is None:
        raise UsageError(
            f"output directory {output_dir} already exists, is not empty and holds no checkpoint to resume: "
            "pass --overwrite_output_dir to start over in it, or choose another --output_dir"
        )
    print(f"Resuming from {last_checkpoint} (pass --overwrite_output_dir to start over)")
    return last_checkpoint


# The resume rule, in one place. A resumed run (or a rerun of a finished one) may change these flags: how long it
# trains, the learning rate (the divergence message advises lowering it and resuming), the number format (master
# weights are fp32), where it writes, what it evaluates and how, saving, logging, and how processes and data
# loaders run. Every other flag of the three argument groups must be what the checkpoint was trained with
# (recorded in `run_arguments.json`), else one line names the first that differs.
RESUME_MAY_CHANGE = frozenset(
    {
        # how long, how fast, which arithmetic
        *("max_steps", "num_train_epochs", "max_train_minutes", "learning_rate"),
        *("bf16", "fp16", "bf16_full_eval", "fp16_full_eval", "tf32"),
        # where it writes, what it does
        *("output_dir", "overwrite_output_dir", "resume_from_checkpoint", "do_train", "do_eval", "do_predict"),
        # evaluation
        *("eval_strategy", "eval_steps", "eval_delay", "per_device_eval_batch_size", "prediction_loss_only"),
        *("eval_on_start", "eval_do_concat_batches", "eval_use_gather_object", "eval_accumulation_steps"),
        *("include_for_metrics", "batch_eval_metrics", "predict_with_generate", "generation_max_length"),
        *("generation_num_beams", "generation_config", "load_best_model_at_end", "metric_for_best_model"),
        *("greater_is_better", "early_stopping_patience", "max_eval_samples", "max_predict_samples", "num_beams"),
        *("val_max_target_length", "replace_unknown", "num_attention_plots", "sortish_sampler"),
        # saving and the Hub
        *("save_strategy", "save_steps", "save_total_limit", "save_only_model", "save_on_each_node"),
        *("enable_jit_checkpoint", "push_to_hub", "hub_token", "hub_private_repo", "hub_model_id"),
        *("hub_strategy", "hub_always_push", "hub_revision", "token", "cache_dir"),
        # logging
        *("logging_strategy", "logging_steps", "logging_first_step", "log_on_each_node", "logging_nan_inf_filter"),
        *("include_num_input_tokens_seen", "log_level", "log_level_replica", "disable_tqdm", "report_to"),
        *("run_name", "project", "trackio_space_id", "trackio_bucket_id", "trackio_static_space_id"),
        *("skip_memory_metrics", "debug"),
        # processes, devices, loaders and execution (not what is trained)
        *("local_rank", "use_cpu", "ddp_find_unused_parameters", "ddp_bucket_cap_mb", "ddp_broadcast_buffers"),
        *("ddp_static_graph", "ddp_backend", "ddp_timeout", "dataloader_num_workers", "dataloader_pin_memory"),
        *("dataloader_persistent_workers", "dataloader_prefetch_factor", "dataloader_multiprocessing_context"),
        *("torch_compile", "torch_compile_backend", "torch_compile_mode", "torch_empty_cache_steps"),
        *("preprocessing_num_workers", "overwrite_cache", "use_fast_tokenizer", "trust_remote_code"),
        *("remove_unused_columns",),  # set by the script (the subword dropout's collator reads the pairs)
        *("ignore_data_skip", "restore_callback_states_from_checkpoint"),
    }
)


def run_record(model_args, data_args, config, training_args=None) -> dict:
    """What a run trains with, saved as `run_arguments.json` in each checkpoint and with the model: the model's
    settings, every flag a resume may not change (see `RESUME_MAY_CHANGE`), and the training file's content
    (SHA-256)."""
    record = {"--model_name_or_path": model_args.model_name_or_path}
    record.update(
        {
            f"--{name}": getattr(config, name)
            for name in GruSeq2SeqConfig.__annotations__
            if name not in TOKENIZER_FIELDS
        }
    )
    for arguments in (model_args, data_args, training_args):
        if arguments is None:
            continue
        for field_ in dataclasses.fields(arguments):
            if field_.init and field_.name not in RESUME_MAY_CHANGE and f"--{field_.name}" not in record:
                record[f"--{field_.name}"] = getattr(arguments, field_.name)
    train_file = None if data_args.dataset_name else find_train_file(data_args)
    if train_file is not None and os.path.isfile(train_file):
        record[TRAIN_FILE_DIGEST] = file_digest(train_file)
    return json.loads(json.dumps(record, default=str))  # as read back from the file


def check_same_run(directory: str, record: dict) -> None:
    """A resumed (or rerun) run's arguments are the ones `directory` was trained with, else one line naming the
    first that differs."""
    path = os.path.join(directory, RUN_ARGUMENTS_FILE)
    if not os.path.isfile(path):
        return  # saved before runs recorded their arguments
    with open(path, encoding="utf-8") as handle:
        saved = json.load(handle)
    for key, value in record.items():
        if key in saved and saved[key] != value and not same_file(key, saved, record):
            raise UsageError(
                f"{directory} was trained with {key} {saved[key]!r}, this run has {value!r}: pass the "
                "same to resume, or --overwrite_output_dir to start over"
            )


PATH_FLAGS = ("--train_file", "--validation_file", "--test_file", "--dataset_name", "--model_name_or_path")
TRAIN_FILE_DIGEST = "the training file's content (SHA-256)"


def same_file(key: str, saved: dict, record: dict) -> bool:
    """Whether flag `key` names the same data by another path (relative against absolute, through a link): the
    same resolved path, or for `--train_file` the same content (its recorded SHA-256)."""
    if key not in PATH_FLAGS or not isinstance(saved[key], str) or not isinstance(record[key], str):
        return False
    if os.path.realpath(saved[key]) == os.path.realpath(record[key]):
        return True
    digest = saved.get(TRAIN_FILE_DIGEST)
    return key == "--train_file" and digest is not None and digest == record.get(TRAIN_FILE_DIGEST)


def find_train_file(data_args) -> str:
    """`--train_file`, else the tutorial's `data/eng-fra.txt`, else its download URL (cached by datasets)."""
    if data_args.train_file:
        return data_args.train_file
    if os.path.isfile(os.path.join("data", "eng-fra.txt")):
        return os.path.join("data", "eng-fra.txt")
    logger.info(f"No --train_file and no data/eng-fra.txt: using {TUTORIAL_DATA_URL} (downloaded once, cached)")
    return TUTORIAL_DATA_URL


def load_dataset_named(name: str, config_name: str | None, token: str | None):
    """`--dataset_name`: a Hub id or a local folder, as `load_dataset` reads them, with one line for a local path
    that holds no dataset (missing, a file, an empty folder, files that do not parse)."""
    local = os.path.exists(name) or os.path.isabs(name) or name.startswith((".", "~"))
    if local and not os.path.exists(name):
        raise UsageError(f"--dataset_name {name}: no such folder")
    if local and not os.path.isdir(name):
        raise UsageError(f"--dataset_name {name}: a file, want a folder of split files (a single file: --train_file)")
    try:
        return load_dataset(name, config_name, token=token)
    except (datasets.exceptions.DatasetGenerationError, datasets.data_files.EmptyDatasetError) as error:
        cause = error.__cause__ or error
        raise UsageError(
            f"--dataset_name {name}: cannot be read as a dataset ({type(cause).__name__}: "
            f"{str(cause).strip().splitlines()[0] if str(cause).strip() else 'no data files'})"
        ) from None


def load_corpus(data_args, prepare_args, tokenizer, need_train: bool, token: str | None = None):
    """The prepared DatasetDict (translation layout) and the tokenizer (built here when not given).

    Validation and test splits are used as given when there are any: `--validation_file`/`--test_file`,
    else the `--dataset_name` dataset's own `validation`/`test` splits; the others are carved from the
    training pairs."""
    given = {"validation": data_args.validation_file, "test": data_args.test_file}
    train = None
    if data_args.dataset_name:
        records = load_dataset_named(data_args.dataset_name, data_args.dataset_config_name, token)
        if data_args.open_test and "test" in records:
            raise UsageError(
                f"--open_test holds a test split out of the training pairs, but --dataset_name "
                f"{data_args.dataset_name} has its own (used as given, its unknown words read as <unk>): drop "
                "--open_test"
            )
        for split in given:
            if given[split] is None and split in records:
                given[split] = normalize_translation_records(
                    records[split], prepare_args, f"{data_args.dataset_name} ({split})"
                )
        if need_train:
            if "train" not in records:
                raise UsageError(
                    f"--dataset_name {data_args.dataset_name} has no train split (it has {', '.join(records)})"
                )
            train = normalize_translation_records(records["train"], prepare_args, f"{data_args.dataset_name} (train)")
    if not need_train and any(split is not None for split in given.values()):
        splits = prepare_evaluation_files(prepare_args, **given)
        return datasets.DatasetDict({k: to_translation_layout(v, prepare_args) for k, v in splits.items()}), tokenizer
    if train is None:
        train = find_train_file(data_args)
    try:
        corpus = prepare_tatoeba(train, prepare_args, given["validation"], given["test"], tokenizer)
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


def parse_config_overrides(text: str) -> dict:
    """`"hidden_size=256,attention=concat"` -> `{"hidden_size": 256, "attention": "concat"}`, each value typed
    as the `GruSeq2SeqConfig` field it names (fields set from the tokenizer excluded)."""
    settable = [name for name in GruSeq2SeqConfig.__annotations__ if name not in TOKENIZER_FIELDS]
    overrides = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        name, equals, value = (part.strip() for part in item.partition("="))
        if not equals or name not in settable:
            raise UsageError(f"--config_overrides: {item!r} is not NAME=VALUE with NAME one of {', '.join(settable)}")
        kind = type(getattr(GruSeq2SeqConfig, name))
        booleans = {"true": True, "false": False}
        if kind is bool and value.lower() not in booleans:
            raise UsageError(f"--config_overrides: {name}={value!r} is not true or false")
        try:
            overrides[name] = booleans[value.lower()] if kind is bool else kind(value)
        except ValueError:
            raise UsageError(f"--config_overrides: {name}={value!r} is not a {kind.__name__}") from None
    return overrides


def new_model_config(model_args, hub_kwargs: dict) -> GruSeq2SeqConfig:
    """A new model's settings: `--config_name`'s (else `GruSeq2SeqConfig`'s defaults), then the per-field flags
    and `--config_overrides`, checked before any data is read. The tokenizer fills in the vocabulary sizes
    and special ids later."""
    settings = load_config(model_args.config_name, **hub_kwargs).to_dict() if model_args.config_name else {}
    flags = {name: getattr(model_args, name) for name in NEW_MODEL_FIELDS if getattr(model_args, name) is not None}
    overrides = parse_config_overrides(model_args.config_overrides or "")
    for name in sorted(overrides.keys() & flags.keys()):
        raise UsageError(f"--config_overrides sets {name} and so does --{name}: pass one")
    try:
        return GruSeq2SeqConfig.from_dict({**settings, **flags, **overrides})
    except ValueError as error:  # `field: got V, want ...`
        field_name = str(error).split(":")[0]
        if field_name in flags:
            raise UsageError(f"--{error}") from None
        if field_name in overrides:
            raise UsageError(f"--config_overrides {error}") from None
        where = f"--config_name {model_args.config_name}" if model_args.config_name else "model settings"
        raise UsageError(f"{where}: {error}") from None


def encoder_to_start_from(model_args, hub_kwargs: dict):
    """`(model, tokenizer)` of `--init_encoder_from`, its hidden_size and num_layers set as the new model's (a
    flag asking for others is an error), or `None`."""
    path = model_args.init_encoder_from
    if path is None:
        if model_args.freeze_encoder:
            raise UsageError("--freeze_encoder keeps the encoder that --init_encoder_from loads fixed: give one")
        return None
    if model_args.model_name_or_path:
        raise UsageError(
            "--init_encoder_from starts a new model's encoder, --model_name_or_path loads a whole model: pass one"
        )
    try:
        loaded = load_model_and_tokenizer(path, **hub_kwargs)
    except ModelLoadError as error:
        raise UsageError(f"--init_encoder_from {error}") from None
    for name in ("hidden_size", "num_layers"):
        theirs, ours = getattr(loaded[0].config, name), getattr(model_args, name)
        if ours is not None and ours != theirs:
            raise UsageError(
                f"--{name} {ours}, but --init_encoder_from {path} has {name} {theirs}: leave --{name} out"
            )
        setattr(model_args, name, theirs)
    return loaded


def start_encoder_from(model, tokenizer, source_model, source_tokenizer, model_args) -> None:
    """Copy `--init_encoder_from`'s encoder into the new `model` (and freeze it with `--freeze_encoder`), after
    checking that both read the same source vocabulary."""
    ours, theirs = tokenizer.get_vocab(), source_tokenizer.get_vocab()
    differing = sum(1 for word in ours.keys() | theirs.keys() if ours.get(word) != theirs.get(word))
    if differing:
        raise UsageError(
            f"--init_encoder_from {model_args.init_encoder_from}: its source vocabulary differs from this run's in "
            f"{differing} words; build both from the same source sentences, --normalization, length filter and "
            "--min_count"
        )
    model.encoder.load_state_dict(source_model.encoder.state_dict())
    if model_args.freeze_encoder:
        model.encoder.requires_grad_(False)
    logger.warning(
        f"The encoder starts from {model_args.init_encoder_from}'s"
        + (" and stays fixed" if model_args.freeze_encoder else "")
    )


def available_memory() -> int:
    """Bytes a new model can take: the GPU's memory, else the CPU's available memory (`MemAvailable`)."""
    if torch.cuda.is_available():
        return torch.cuda.mem_get_info()[1]
    with contextlib.suppress(OSError, StopIteration, ValueError), open("/proc/meminfo", encoding="ascii") as handle:
        return 1024 * int(next(line for line in handle if line.startswith("MemAvailable:")).split()[1])
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_AVPHYS_PAGES")


def check_fits_in_memory(config: GruSeq2SeqConfig) -> None:
    """A new model's weights, gradients and Adam's two moments (4 float32 copies) fit in memory; counted on
    torch's meta device, so nothing is allocated (the vocabularies, not known yet, count as 4 words each)."""
    with torch.device("meta"):
        parameters = GruSeq2SeqForConditionalGeneration(config).num_parameters()
    needed, available = 16 * parameters, available_memory()
    if needed > available:
        raise UsageError(
            f"--hidden_size: got {config.hidden_size}, want a model that fits in memory: its "
            f"{parameters / 1e6:,.0f} million parameters need about {needed / 1e9:,.1f} GB to train, "
            f"and {available / 1e9:,.1f} GB are available"
        )


def check_loaded_model_flags(model, model_args) -> None:
    """Per-field flags a loaded model's config already agrees with are fine (scripts share flags between
    training and evaluation); `--teacher_forcing_ratio`, read at every training step, applies; a shape flag
    that differs is an error, not silently ignored."""
    for name in NEW_MODEL_FIELDS:
        value, saved = getattr(model_args, name), getattr(model.config, name)
        if value is None or value == saved:
            continue
        if name != "teacher_forcing_ratio":
            raise UsageError(
                f"--{name} {value} shapes a new model, but {model_args.model_name_or_path} has "
                f"{name}={saved!r}: drop the flag, or build a new model without --model_name_or_path"
            )
        if not 0.0 <= value <= 1.0:
            raise UsageError(f"--teacher_forcing_ratio must be in [0, 1], got {value}")
        model.config.teacher_forcing_ratio = value


def build_model(config: GruSeq2SeqConfig, tokenizer) -> GruSeq2SeqForConditionalGeneration:
    """A new model with `config`'s settings and the tokenizer's vocabulary kind, sizes and special ids."""
    config.vocabulary = tokenizer.vocabulary
    config.source_vocab_size, config.target_vocab_size = tokenizer.source_vocab_size, tokenizer.target_vocab_size
    config.pad_token_id, config.eos_token_id = tokenizer.pad_token_id, tokenizer.eos_token_id
    config.bos_token_id = config.decoder_start_token_id = tokenizer.bos_token_id
    return GruSeq2SeqForConditionalGeneration(config)


def in_vocabulary_flags(tokenized, unk: int) -> list[bool]:
    """Per example: no `<unk>` in its source or target tokens."""
    return [
        unk not in source and unk not in target
        for source, target in zip(tokenized["input_ids"], tokenized["labels"], strict=True)
    ]


def public_name(path: str) -> str:
    """A data path as a model card may show it: a URL or Hub id as it is, a local path by its name only."""
    return os.path.basename(os.path.normpath(path)) if os.path.exists(path) else path


def card_dataset(data_args) -> str:
    """The dataset id of the model card's metadata: `--dataset_name`'s, else Tatoeba's."""
    return public_name(data_args.dataset_name) if data_args.dataset_name else "tatoeba"


def data_summary(data_args) -> str:
    source = public_name(data_args.dataset_name or data_args.train_file or "eng-fra.txt")
    given = [
        f"{split} from {public_name(path)}"
        for split, path in (("validation", data_args.validation_file), ("test", data_args.test_file))
        if path
    ]
    evaluation = (
        f"; {' and '.join(given)}, as given" if given else f", split by source sentence (seed {data_args.split_seed})"
    )
    if data_args.open_test:
        evaluation += ", the test sentences held out before the vocabularies were built"
    normalized = (
        "as written (NFKC, whitespace collapsed)"
        if data_args.normalization == "none"
        else f"normalized ({data_args.normalization})"
    )
    if data_args.vocabulary == "word":
        unknown = "pairs holding them dropped" if data_args.unknown_pairs == "drop" else "read as <unk>, pairs kept"
        vocabulary = f"words seen fewer than {data_args.min_count} times trimmed ({unknown})"
    else:
        sides = "one for both sides" if data_args.joint_vocabulary else "one per side"
        vocabulary = (
            f"{data_args.vocabulary} subword vocabularies ({sides}) trained on the training split, with byte "
            "fallback, every pair kept"
        )
    return (
        f"Trained on {source}: {normalized}, {data_args.min_length}..{data_args.max_length} "
        f"{data_args.length_unit} per side, {vocabulary}{evaluation}."
    )


def save_plots(trainer, tokenizer, validation, count: int) -> None:
    """`loss.png` from the log history and `attention_<i>.png` for the first `count` validation sources."""
    output_dir = trainer.args.output_dir
    if not matplotlib_available():
        print("matplotlib is not installed: skipping loss.png and attention plots (pip install matplotlib)")
        return
    if trainer.state.log_history:
        plot_loss(trainer.state.log_history, os.path.join(output_dir, "loss.png"))
    sources = [pair[tokenizer.source_lang] for pair in validation["translation"][:count]] if validation else []
    for index, result in enumerate(translate(trainer.model, tokenizer, sources, output_attentions=True)):
        plot_attention(
            result.source_tokens,
            result.output_tokens,
            result.attention,
            os.path.join(output_dir, f"attention_{index}.png"),
        )


def main(argv: list[str] | None = None) -> int:
    if int(os.environ.get("WORLD_SIZE", "1")) > 1 and not torch.cuda.is_available():
        # Distributed on CPUs (torchrun, accelerate launch): without this, accelerate runs each process
        # alone (DistributedType.NO): no gradient synchronisation and evaluation that is not gathered.
        os.environ.setdefault("ACCELERATE_USE_CPU", "true")
    try:
        model_args, data_args, training_args = parse_arguments(sys.argv[1:] if argv is None else argv)
    except ValueError as error:  # a dataclass's own check (`PrepareArguments`, transformers' arguments)
        print(f"error: {error}", file=sys.stderr)
        return 2
    logging.basicConfig(
        format="%(asctime)s - %(levelname)s - %(name)s - %(message)s",
        datefmt="%H:%M:%S",
        handlers=[logging.StreamHandler(sys.stdout)],
    )
    log_level = training_args.get_process_log_level()
    for log in (logger, logging.getLogger("modeling_gru_seq2seq"), datasets.utils.logging, transformers.utils.logging):
        log.set_verbosity(log_level) if hasattr(log, "set_verbosity") else log.setLevel(log_level)
    try:
        check_ranges(model_args, data_args, training_args)
        with output_dir_lock(training_args.output_dir):
            return run(model_args, data_args, training_args)
    except (UsageError, DataFileError, ModelLoadError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:  # Ctrl-C outside training (training stops at a step and saves, see GracefulStop)
        output_dir = training_args.output_dir
        saved = (
            f"the trained model is saved in {output_dir}; rerun the command to evaluate again (training is not "
            "repeated)"
            if holds_saved_model(output_dir)
            else "nothing new was saved"
        )
        print(f"\ninterrupted (Ctrl-C): {saved}", file=sys.stderr)
        return 130


def run(model_args, data_args, training_args) -> int:
    if training_args.dataloader_pin_memory and training_args.device.type == "cpu":
        training_args.dataloader_pin_memory = False  # nothing to pin for (torch warns at every data loader)
    if model_args.model_name_or_path is None:  # a new model: train it, then evaluate and test it
        training_args.do_train = training_args.do_eval = training_args.do_predict = True
    elif not (training_args.do_train or training_args.do_eval or training_args.do_predict):
        raise UsageError("with --model_name_or_path, say what to do: --do_train, --do_eval and/or --do_predict")
    check_conflicts(model_args, data_args, training_args)
    hub_kwargs = {
        "cache_dir": model_args.cache_dir,
        "trust_remote_code": model_args.trust_remote_code,
        "revision": model_args.model_revision,
        "token": model_args.token,
    }
    encoder_source = encoder_to_start_from(model_args, hub_kwargs)
    model, tokenizer, config = None, None, None
    if model_args.model_name_or_path:
        model, tokenizer = load_model_and_tokenizer(
            model_args.model_name_or_path, model_args.config_name, model_args.tokenizer_name, **hub_kwargs
        )
        check_loaded_model_flags(model, model_args)
    else:
        config = new_model_config(model_args, hub_kwargs)
        check_fits_in_memory(config)
        if model_args.tokenizer_name:
            tokenizer = load_tokenizer(model_args.tokenizer_name, **hub_kwargs)
    hidden_size = (model.config if model is not None else config).hidden_size
    check_widths(model_args.source_embeddings, model_args.target_embeddings, hidden_size)
    if model_args.freeze_embeddings and not (model_args.source_embeddings or model_args.target_embeddings):
        raise UsageError("--freeze_embeddings freezes what --source_embeddings/--target_embeddings load: give one")
    if getattr(tokenizer, "normalization", data_args.normalization) != data_args.normalization:
        raise UsageError(
            f"--normalization {data_args.normalization}, but the tokenizer given normalizes "
            f"{tokenizer.normalization}: pass --normalization {tokenizer.normalization}, so that the data is read "
            "as the model reads its inputs"
        )
    if tokenizer is not None:  # the data is normalized by the rules the tokenizer was built with
        data_args.normalization_version = tokenizer.normalization_version
    if getattr(tokenizer, "vocabulary", data_args.vocabulary) != data_args.vocabulary:
        raise UsageError(
            f"--vocabulary {data_args.vocabulary}, but the tokenizer given has a {tokenizer.vocabulary} vocabulary: "
            f"pass --vocabulary {tokenizer.vocabulary}"
        )
    if data_args.forced_bos_token is not None:
        logger.warning("--forced_bos_token has no effect: this model has one target language and no language tokens")
    checkpoint = resume_checkpoint(training_args)
    if checkpoint is not None and training_args.do_train:
        check_plain_pickles(checkpoint)
    record = run_record(model_args, data_args, model.config if model is not None else config, training_args)
    if training_args.do_train and (checkpoint or holds_saved_model(training_args.output_dir)):
        check_same_run(checkpoint or training_args.output_dir, record)
        tokenizer = tokenizer or trained_vocabularies(checkpoint or training_args.output_dir, data_args)
    set_seed(training_args.seed)

    prepare_args = data_args  # a PrepareArguments
    shared_vocabulary = os.path.join(training_args.output_dir, SHARED_VOCABULARY_DIR)
    with training_args.main_process_first(desc="data preparation"):
        # Under DDP a subword vocabulary is trained once: by the first process, which the others read it from
        built_here = tokenizer is None and data_args.vocabulary != "word"
        if built_here and training_args.process_index > 0:
            tokenizer = load_tokenizer(shared_vocabulary)
        raw, tokenizer = load_corpus(data_args, prepare_args, tokenizer, training_args.do_train, model_args.token)
        if built_here and training_args.world_size > 1 and training_args.process_index == 0:
            tokenizer.save_pretrained(shared_vocabulary)
    splits = {
        "train": data_args.max_train_samples,
        "validation": data_args.max_eval_samples,
        "test": data_args.max_predict_samples,
    }
    raw = datasets.DatasetDict(
        {
            name: split if splits[name] is None else split.select(range(min(len(split), splits[name])))
            for name, split in raw.items()
        }
    )
    eval_target_length = (
        data_args.max_target_length if data_args.val_max_target_length is None else data_args.val_max_target_length
    )
    label_pad_token_id = -100 if data_args.ignore_pad_token_for_loss else tokenizer.pad_token_id
    tokenized = datasets.DatasetDict(
        {
            name: tokenize_translation(
                split,
                tokenizer,
                data_args.max_source_length,
                data_args.max_target_length if name == "train" else eval_target_length,
                source_prefix=data_args.source_prefix or "",
                pad_to_max_length=data_args.pad_to_max_length,
                label_pad_token_id=label_pad_token_id,
                num_proc=data_args.preprocessing_num_workers,
            )
            for name, split in raw.items()
        }
    )

    if model is None:
        model = build_model(config, tokenizer)
    if data_args.val_max_target_length is not None:  # else each sentence's limit follows its source
        model.generation_config.max_length = data_args.val_max_target_length + 1  # the start token counts
    if encoder_source is not None:
        start_encoder_from(model, tokenizer, *encoder_source, model_args)
    load_pretrained_embeddings(
        model, tokenizer, model_args.source_embeddings, model_args.target_embeddings, model_args.freeze_embeddings
    )
    if data_args.num_beams is not None:
        training_args.generation_num_beams = data_args.num_beams
    signature = sacrebleu_signatures()["bleu_signature"]
    print(
        f"BLEU and chrF by sacrebleu on the references as {tokenizer.normalization!r} normalizes them"
        f"{' (the text as written)' if tokenizer.normalization == 'none' else ''}; bleu_normalized after the "
        f"tutorial's normalization of both sides; BLEU signature: {signature}"
    )

    def decoder(name):
        """Generated ids of split `name` -> texts: `<unk>` as source words under `--replace_unknown`."""
        if not data_args.replace_unknown:
            return lambda token_ids: tokenizer.batch_decode(token_ids, skip_special_tokens=True)
        prefix = data_args.source_prefix or ""
        sources = [prefix + pair[tokenizer.source_lang] for pair in raw[name]["translation"]]
        return (
            lambda token_ids: unknown_replaced(
                trainer.model,  # the trainer's model when it runs: also the one reloaded from a finished run
                tokenizer,
                sources[: len(token_ids)],
                token_ids,
                training_args.per_device_eval_batch_size,
                data_args.max_source_length,
            )
        )

    def split_metrics(name):
        if name not in tokenized:
            return None
        references = [pair[tokenizer.target_lang] for pair in raw[name]["translation"]]
        flags = None  # subwords: no word is out of the vocabulary, so no in-vocabulary scores
        if tokenizer.vocabulary == "word":
            flags = in_vocabulary_flags(tokenized[name], tokenizer.unk_token_id)
        lengths = None  # the test's BLEU by source length
        if name == "test":
            lengths = source_word_counts([pair[tokenizer.source_lang] for pair in raw[name]["translation"]])
        return build_compute_metrics(tokenizer, references, flags, decoder(name), lengths)

    graceful_stop = GracefulStopCallback()
    callbacks = [graceful_stop]
    if training_args.max_train_minutes:
        callbacks.append(TimeLimitCallback(training_args.max_train_minutes))
    if training_args.early_stopping_patience is not None:
        callbacks.append(EarlyStoppingCallback(training_args.early_stopping_patience))

    settings = TokenizeSettings(
        data_args.max_source_length,
        data_args.max_target_length,
        data_args.source_prefix or "",
        data_args.pad_to_max_length,
        label_pad_token_id,
    )
    if data_args.subword_dropout > 0:  # the training pairs are tokenized anew in each batch: the collator reads them
        training_args.remove_unused_columns = False

    def make_trainer(model):
        collator = (
            default_data_collator
            if data_args.pad_to_max_length
            else DataCollatorForSeq2Seq(tokenizer, model=model, label_pad_token_id=label_pad_token_id)
        )
        train_collator = collator
        if data_args.subword_dropout > 0:
            train_collator = SubwordDropoutCollator(tokenizer, data_args.subword_dropout, collator, settings)
        train_columns = ["translation"] if data_args.subword_dropout == 0 else []
        trainer = GruSeq2SeqTrainer(
            model=model,
            args=training_args,
            train_dataset=tokenized["train"].remove_columns(train_columns) if training_args.do_train else None,
            eval_dataset=tokenized["validation"].remove_columns("translation") if "validation" in tokenized else None,
            processing_class=tokenizer,
            data_collator=collator,
            train_collator=train_collator,
            compute_metrics=split_metrics("validation"),
            callbacks=callbacks,
            decoder_learning_ratio=training_args.decoder_learning_ratio,
            run_record=record,
        )
        if training_args.max_train_minutes and trainer.pop_callback(ProgressCallback) is not None:
            trainer.add_callback(TimeBudgetProgressCallback(training_args.max_train_minutes))
        return trainer

    trainer = make_trainer(model)
    train = training_args.do_train
    if train:
        planned = trainer.set_initial_training_values(trainer.args, trainer.get_train_dataloader())[-1]
        output_dir = training_args.output_dir
        finished = holds_saved_model(output_dir) and trained_steps(output_dir) >= planned
        if finished or (checkpoint and trained_steps(checkpoint) >= planned):
            # The Trainer would resume a finished run and train one step more on every rerun
            source = output_dir if finished else checkpoint
            print(
                f"Training already finished ({trained_steps(source)} of {planned} steps in {source}): nothing "
                f"to train{'; the model is left as it is' if finished else ''}"
            )
            trainer = make_trainer(GruSeq2SeqForConditionalGeneration.from_pretrained(source))
            if not finished:
                trainer.save_model()
            train = False
        elif checkpoint is None and holds_saved_model(output_dir):
            raise UsageError(
                f"{output_dir} holds a model trained {trained_steps(output_dir)} of {planned} steps and "
                "no checkpoint to resume from: pass --overwrite_output_dir to start over"
            )

    if train:
        if trainer.is_world_process_zero():
            check_room_for_checkpoint(training_args.output_dir, model)
        build_gru_loops(trainer.model)  # before the time limit's clock, not in the first step
        try:
            train_result = trainer.train(resume_from_checkpoint=checkpoint)
            trainer.save_model()
        except TrainingDivergedError as error:
            print(f"error: {error}", file=sys.stderr)
            return 1
        except (OSError, SafetensorError, RuntimeError) as error:  # a full or read-only disk at a save
            problem = save_failure(error)
            if problem is None:
                raise
            last = get_last_checkpoint(training_args.output_dir)
            print(
                f"error: {problem}; "
                + (
                    f"the last complete checkpoint is {last}: make room, then rerun the same command to resume"
                    if last
                    else "no checkpoint was completed"
                ),
                file=sys.stderr,
            )
            return 1
        metrics = dict(train_result.metrics, train_samples=len(tokenized["train"]))
        trainer.log_metrics("train", metrics)
        trainer.save_metrics("train", metrics)
        trainer.save_state()
        if graceful_stop.signal_received is not None:
            print(
                f"Interrupted at step {trainer.state.global_step}: checkpoint and model saved in "
                f"{training_args.output_dir}; rerun the same command to resume."
            )
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
            token_ids = padded_predictions(results.predictions[: len(tokenized["test"])], tokenizer.pad_token_id)
            predictions = decoder("test")(token_ids)
            with open(
                os.path.join(training_args.output_dir, "generated_predictions.txt"), "w", encoding="utf-8"
            ) as handle:
                handle.write("\n".join(predictions) + "\n")

    if trainer.is_world_process_zero():
        print(f"sacrebleu signature: {signature}")
        if train:
            trainer.create_model_card(
                language=[data_args.source_lang, data_args.target_lang],
                dataset_args=data_summary(data_args),
                dataset=card_dataset(data_args),
            )
            save_plots(trainer, tokenizer, raw.get("validation"), data_args.num_attention_plots)
    if training_args.push_to_hub and train:
        trainer.push_to_hub(
            language=[data_args.source_lang, data_args.target_lang],
            dataset_args=data_summary(data_args),
            dataset=card_dataset(data_args),
        )
    if trainer.is_world_process_zero():
        shutil.rmtree(shared_vocabulary, ignore_errors=True)  # every process read it long ago
    if trainer.is_world_process_zero() and training_args.do_train:
        output_dir = shlex.quote(training_args.output_dir)  # also after a rerun of a finished run
        print(
            f"Model saved in {training_args.output_dir}; translate with:\n"
            f'  gru-translate {output_dir} "Je suis content."'
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
