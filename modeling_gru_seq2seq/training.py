"""What `run_translation.py` adds to `Seq2SeqTrainer`: its arguments (the tutorial's optimization as
defaults), the tutorial's optimizer, atomic checkpoints, a time limit and the translation metrics."""

import json
import math
import os
import shutil
import signal
import time
from dataclasses import dataclass, field

import numpy as np
import torch
from torch.utils.data import SequentialSampler
from tqdm.auto import tqdm
from transformers import Seq2SeqTrainer, Seq2SeqTrainingArguments, TrainerCallback
from transformers.optimization import get_scheduler
from transformers.trainer_callback import ProgressCallback
from transformers.trainer_utils import SchedulerType, get_last_checkpoint, has_length, rotate_checkpoints
from transformers.utils import is_torch_bf16_gpu_available

from .commands import CHECKPOINT_STAGING_DIR, MODEL_STAGING_DIR, RUN_ARGUMENTS_FILE
from .gru_choice import choice, native_bf16
from .metrics import corpus_scores
from .model_card import write_model_card
from .pipeline_gru_seq2seq import save_translation_pipeline
from .tokenization_gru_seq2seq import normalize_string

# `--lr_scheduler_type`s whose shape spans the run's `num_training_steps`: under `--max_train_minutes` they span the
# time budget instead (`GruSeq2SeqTrainer.create_scheduler`)
BUDGET_SCHEDULES = frozenset(
    {"linear", "cosine", "cosine_with_restarts", "polynomial", "cosine_with_min_lr", "cosine_warmup_with_min_lr"}
)
SCHEDULE_RESOLUTION = 10_000  # the budget-spanning schedule's positions: its shape is read at 1/10,000 steps


def budget_warmup_problem(warmup_steps: float, schedule: str) -> str | None:
    """Why a warmup cannot go with a schedule that spans a time limit (`--warmup_steps` counts steps there), or
    None."""
    kind = SchedulerType(schedule).value
    if warmup_steps >= 1 and kind in BUDGET_SCHEDULES:
        return (
            f"--warmup_steps {warmup_steps:g} counts steps, but with --max_train_minutes the "
            f"{kind} schedule spans the time limit: give the warmup as a share of it "
            "(a --warmup_steps below 1, e.g. 0.05)"
        )
    return None


class TrainingDivergedError(RuntimeError):
    """A gradient norm that is not finite: training stops before the optimizer step that would write it into
    the weights, so every checkpoint and the model in memory stay finite."""


@dataclass
class GruSeq2SeqTrainingArguments(Seq2SeqTrainingArguments):
    """`Seq2SeqTrainingArguments` with the tutorial's optimization as defaults, plus three flags.

    It lives in the package (not in `run_translation.py`), so the `training_args.bin` a run saves loads with
    `torch.load(..., weights_only=False)` in any process that has the package installed.
    """

    overwrite_output_dir: bool = field(default=False, metadata={"help": "Start over instead of resuming."})
    max_train_minutes: float | None = field(
        default=None, metadata={"help": "Stop training after this wall time, then evaluate and save."}
    )
    decoder_learning_ratio: float = field(default=5.0, metadata={"help": "Decoder learning rate multiplier."})
    early_stopping_patience: int | None = field(
        default=None,
        metadata={
            "help": "Stop training after this many evaluations without a better --metric_for_best_model "
            "(transformers' EarlyStoppingCallback); with --load_best_model_at_end the best checkpoint is the saved "
            "model."
        },
    )
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

    def __post_init__(self):
        """`--bf16` without an accelerator trains on the CPU's bfloat16 units (transformers would ask for
        `--use_cpu` first), and is refused in one line on a CPU without them (emulated, many times slower)."""
        if (self.bf16 or self.bf16_full_eval) and not self.use_cpu and not is_torch_bf16_gpu_available():
            if not native_bf16():
                flag = "--bf16" if self.bf16 else "--bf16_full_eval"
                raise ValueError(
                    f"{flag}: this CPU has no bfloat16 units (AVX512-BF16 or AMX): bfloat16 would be emulated, many "
                    "times slower than float32; train without it"
                )
            self.use_cpu = True
        super().__post_init__()


class GruSeq2SeqTrainer(Seq2SeqTrainer):
    """`Seq2SeqTrainer` with the tutorial's two learning rates and checkpoints that appear only when complete.

    Teacher forcing: one draw per optimizer step against `config.teacher_forcing_ratio`, from a generator
    seeded by `(args.seed, global_step)` and passed to the model: every DDP process makes the same choice
    for its share of the batch, and a resumed run repeats the draws of an uninterrupted one.

    Optimizer: Adam (no weight decay), the encoder at `learning_rate`, the decoder (its embedding,
    attention, GRU and output layers) at `learning_rate * decoder_learning_ratio`, as the tutorial's two
    optimizers.

    Checkpoints: the Trainer writes `checkpoint-N` in place and `get_last_checkpoint` takes the highest
    number without checking it is complete, so a run killed mid-save would resume from a broken folder.
    Here each checkpoint is written under `output_dir/.checkpoint-staging/` and renamed into place when
    complete; a killed save leaves only the staging folder, which the next save clears.
    """

    def __init__(
        self,
        *args,
        decoder_learning_ratio: float = 5.0,
        run_record: dict | None = None,
        train_collator=None,
        **kwargs,
    ):
        super().__init__(*args, **kwargs)
        self.decoder_learning_ratio = decoder_learning_ratio
        self.train_collator = train_collator  # builds training batches (default: `data_collator`, as evaluation)
        self.run_record = run_record  # written as `run_arguments.json` into every checkpoint and the saved model

    def _write_run_record(self, directory: str) -> None:
        if self.run_record is not None:
            with open(os.path.join(directory, RUN_ARGUMENTS_FILE), "w", encoding="utf-8") as handle:
                json.dump(self.run_record, handle, indent=2)

    def _get_grad_norm(self, model, grad_norm=None):
        """The Trainer's gradient norm, checked: a NaN or infinite one stops training (`TrainingDivergedError`)
        before the optimizer step. (The Trainer would log `loss 0, grad_norm nan` and train on; every process
        sees the same norm, so under DDP all stop at the same step.)"""
        grad_norm = super()._get_grad_norm(model, grad_norm)
        if grad_norm is not None and not math.isfinite(float(grad_norm)):
            last = get_last_checkpoint(self.args.output_dir) if os.path.isdir(self.args.output_dir) else None
            raise TrainingDivergedError(
                f"training diverged at step {self.state.global_step + 1}: the gradient norm is {float(grad_norm)}; "
                f"the learning rate ({self.args.learning_rate:g}, the decoder's x{self.decoder_learning_ratio:g}) "
                "is the likely cause: lower --learning_rate and rerun"
                + (f" (the last checkpoint, {last}, holds finite weights and resumes)" if last else "")
            )
        return grad_norm

    def get_train_dataloader(self):
        """The Trainer's, its batches built by `train_collator` when one is given (subword dropout samples a new
        segmentation for each training batch; evaluation keeps `data_collator`)."""
        if self.train_collator is None:
            return super().get_train_dataloader()
        data_collator, self.data_collator = self.data_collator, self.train_collator
        try:
            return super().get_train_dataloader()
        finally:
            self.data_collator = data_collator

    def training_step(self, model, inputs, num_items_in_batch=None):
        generator = torch.Generator().manual_seed(self.args.seed * 1_000_003 + self.state.global_step)
        ratio = self.model.config.teacher_forcing_ratio
        inputs = {**inputs, "teacher_forcing": bool(torch.rand((), generator=generator) < ratio)}
        return super().training_step(model, inputs, num_items_in_batch)

    def save_model(self, output_dir: str | None = None, _internal_call: bool = False) -> None:
        """Save the model, tokenizer and translation pipeline into `args.output_dir` so that an interrupted
        save never leaves a folder that loads as if complete (other folders: the Trainer's plain save).

        Everything is written to `output_dir/.model-staging/`, then moved into place with `config.json`
        last (an older `config.json` is removed first): until the move ends, `from_pretrained` finds no
        `config.json` and says so, and rerunning the command resumes from the last checkpoint. This also
        covers the save that `push_to_hub` makes. Checkpoints are staged by `_save_checkpoint`.
        """
        if output_dir is not None and os.path.abspath(output_dir) != os.path.abspath(self.args.output_dir):
            return super().save_model(output_dir, _internal_call)  # a checkpoint, or a copy elsewhere
        output_dir = self.args.output_dir
        staging_dir = os.path.join(output_dir, MODEL_STAGING_DIR)
        if self.args.should_save:
            shutil.rmtree(staging_dir, ignore_errors=True)
        self.accelerator.wait_for_everyone()
        super().save_model(staging_dir, _internal_call=True)  # _internal_call: no push from the staging folder
        if self.is_world_process_zero():
            save_translation_pipeline(self.model, self.processing_class, staging_dir)
            self._write_run_record(staging_dir)
            names = sorted(os.listdir(staging_dir), key=lambda name: name == "config.json")
            if os.path.exists(os.path.join(output_dir, "config.json")):
                os.remove(os.path.join(output_dir, "config.json"))
            for name in names:
                os.replace(os.path.join(staging_dir, name), os.path.join(output_dir, name))
            os.rmdir(staging_dir)
        self.accelerator.wait_for_everyone()
        if self.args.push_to_hub and not _internal_call:
            self.push_to_hub(commit_message="Model save")

    def _get_eval_sampler(self, eval_dataset):
        """Evaluation in dataset order, whatever `train_sampling_strategy` says (transformers' `group_by_length`
        also reorders evaluation batches, and predictions come back in that order): the metrics pair each
        prediction with its split's reference by position, and `generated_predictions.txt` follows the test
        file. Distributed: the Trainer's (None, each process a contiguous shard)."""
        if eval_dataset is None or not has_length(eval_dataset):
            return None
        return SequentialSampler(eval_dataset) if self.args.world_size <= 1 else None

    def prediction_step(self, *args, **kwargs):
        """`Seq2SeqTrainer.prediction_step`, leaving the model's generation config as it was: the parent writes
        `GenerationConfig`'s defaults into its unset fields (a `max_length` of 20 among them), which would then
        replace the length limit that follows each source (`output_length_limits`) in the next batches and in the
        saved `generation_config.json`."""
        config = self.model.generation_config
        unset = [key for key in config._get_default_generation_params() if getattr(config, key, None) is None]
        try:
            return super().prediction_step(*args, **kwargs)
        finally:
            for key in unset:
                setattr(config, key, None)

    def evaluation_loop(self, *args, **kwargs):
        """Gather predictions across processes with plain `gather`: every row comes back, in dataset order,
        followed by the padding duplicates of the last batches, which `build_compute_metrics` and the script
        cut to the dataset's length. (With 2 CPU processes, `gather_for_metrics` returned 24 rows for 40
        examples, losing rows; the parent resets this after each loop.)"""
        self.gather_function = self.accelerator.gather
        return super().evaluation_loop(*args, **kwargs)

    def create_model_card(
        self, language: list[str] | None = None, dataset_args: str = "", dataset: str = "tatoeba", **kwargs
    ) -> None:
        """The package's model card (`model_card.write_model_card`) instead of the Trainer's template,
        which also pushes it (`push_to_hub` calls this). `dataset`: the dataset's id for the card's metadata."""
        if self.is_world_process_zero():
            path = write_model_card(
                self.args.output_dir,
                self.model.config,
                language or ["fr", "en"],
                dataset_args,
                repo_id=self.hub_model_id,
                dataset=dataset,
                normalization=getattr(self.processing_class, "normalization", "ascii"),
            )
            if os.path.basename(path) != "README.md":
                print(
                    f"{self.args.output_dir}/README.md is not a gru-seq2seq model card, so it is left as it is: "
                    f"the model card is {path}"
                )

    def create_optimizer(self, model=None) -> torch.optim.Optimizer:
        if self.optimizer is None:
            model = self.model if model is None else model
            decoder_parameters = {id(p) for p in model.decoder.parameters()}
            trainable = [p for p in model.parameters() if p.requires_grad]
            lr = self.args.learning_rate
            self.optimizer = torch.optim.Adam(
                [
                    {"params": [p for p in trainable if id(p) not in decoder_parameters], "lr": lr},
                    {
                        "params": [p for p in trainable if id(p) in decoder_parameters],
                        "lr": lr * self.decoder_learning_ratio,
                    },
                ],
                lr=lr,
                # one kernel per step instead of a dozen per tensor: a third of the time on CPU
                fused=all(p.device.type in ("cpu", "cuda") for p in trainable),
            )
        return self.optimizer

    def create_scheduler(self, num_training_steps: int, optimizer=None):
        """The Trainer's scheduler, except that under a time limit (a `TimeLimitCallback`, `--max_train_minutes`)
        a schedule that spans the run (`BUDGET_SCHEDULES`: linear, cosine, ...) spans whichever limit ends it
        first: its position is the larger of steps done / `num_training_steps` and minutes spent / the budget,
        so a linear decay reaches zero when the time runs out. (The Trainer would spread it over the steps of
        `--num_train_epochs`, which a time-limited run never reaches.) The minutes are the time limit's, the same
        on every process; a resumed run gets the budget again, so its schedule starts over on the time side,
        as its time limit does. A warmup is a fraction of the budget (`--warmup_steps` below 1)."""
        budget = next((c for c in self.callback_handler.callbacks if isinstance(c, TimeLimitCallback)), None)
        kind = SchedulerType(self.args.lr_scheduler_type).value
        if self.lr_scheduler is not None or budget is None or kind not in BUDGET_SCHEDULES:
            return super().create_scheduler(num_training_steps, optimizer)
        problem = budget_warmup_problem(self.args.warmup_steps, kind)
        if problem:
            raise ValueError(problem)
        optimizer = self.optimizer if optimizer is None else optimizer
        # the schedule's shape over SCHEDULE_RESOLUTION positions, read off a stand-in optimizer with the same lr
        stand_in = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=optimizer.defaults["lr"])
        shape = get_scheduler(
            kind,
            optimizer=stand_in,
            num_warmup_steps=self.args.get_warmup_steps(SCHEDULE_RESOLUTION),
            num_training_steps=SCHEDULE_RESOLUTION,
            scheduler_specific_kwargs=self.args.lr_scheduler_kwargs,
        ).lr_lambdas[0]

        def factor(step: int) -> float:
            position = min(1.0, max(step / max(1, num_training_steps), budget.progress))
            return shape(round(position * SCHEDULE_RESOLUTION))

        self.lr_scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, factor)
        self._created_lr_scheduler = True
        if self.is_world_process_zero():
            print(
                f"the learning rate follows the {kind} schedule over the {budget.seconds / 60:g}-minute time limit "
                f"(or over {num_training_steps} steps, if they end first)"
            )
        return self.lr_scheduler

    def _save_checkpoint(self, model, trial) -> None:
        run_dir = self._get_output_dir(trial=trial)
        staging_dir = os.path.join(run_dir, CHECKPOINT_STAGING_DIR)
        name = f"checkpoint-{self.state.global_step}"
        if self.args.should_save:
            shutil.rmtree(staging_dir, ignore_errors=True)
        self.accelerator.wait_for_everyone()
        self._get_output_dir = lambda trial=None: staging_dir  # the parent writes staging_dir/checkpoint-N
        try:
            super()._save_checkpoint(model, trial)
        finally:
            del self._get_output_dir
        self.accelerator.wait_for_everyone()  # every rank has written its RNG state
        if self.args.should_save:
            self._write_run_record(os.path.join(staging_dir, name))
            final_dir = os.path.join(run_dir, name)
            if os.path.exists(final_dir):
                shutil.rmtree(final_dir)
            os.replace(os.path.join(staging_dir, name), final_dir)
            shutil.rmtree(staging_dir, ignore_errors=True)
            self._point_at_best_checkpoint(run_dir, final_dir)
            rotate_checkpoints(run_dir, self.args.save_total_limit, self.state.best_model_checkpoint)
        self.accelerator.wait_for_everyone()

    def _point_at_best_checkpoint(self, run_dir: str, final_dir: str) -> None:
        """`state.best_model_checkpoint` as the checkpoint's folder in `run_dir`, where it is kept: the parent set
        it while writing in the staging folder (a path that is gone once renamed, or an older one that was never
        there), so the best checkpoint would neither be kept by the rotation nor found by
        `--load_best_model_at_end`. The checkpoint just written records it too."""
        if not self.state.best_global_step:
            return
        best = os.path.join(run_dir, f"checkpoint-{self.state.best_global_step}")
        if os.path.isdir(best) and self.state.best_model_checkpoint != best:
            self.state.best_model_checkpoint = best
            self.state.save_to_json(os.path.join(final_dir, "trainer_state.json"))


def any_process(flag: bool) -> bool:
    """True when `flag` is True on any process (all processes must call this at the same step), so that
    distributed processes stop at the same step instead of waiting on each other forever."""
    return slowest_process(float(flag)) > 0


def slowest_process(seconds: float) -> float:
    """The largest of `seconds` over the processes (all must call this at the same step), so that every process
    reads the same clock (or the same flag, `any_process`)."""
    if not (torch.distributed.is_available() and torch.distributed.is_initialized()):
        return seconds
    tensor = torch.tensor([seconds], device="cuda" if torch.distributed.get_backend() == "nccl" else "cpu")
    torch.distributed.all_reduce(tensor, op=torch.distributed.ReduceOp.MAX)
    return float(tensor.item())


class TimeLimitCallback(TrainerCallback):
    """Stop training after `minutes` of wall time (then the script evaluates and saves as usual), with the line
    `time limit reached at step N (M minutes)`.

    The clock starts at `on_train_begin`, so a resumed run gets the full budget again (and the compiled GRU
    loops, built or loaded by `build_gru_loops` before training, are not in it). The final model is evaluated
    once: the evaluation the Trainer would run at the cut (an epoch's end, or an `--eval_steps` step) is left to
    the script's own final one (`do_eval`), unless `load_best_model_at_end` needs it to pick the best.
    """

    def __init__(self, minutes: float):
        self.seconds = minutes * 60
        self.clock = time.monotonic
        self.start = None
        self.elapsed = 0.0  # seconds at the last step's end, the slowest process's: the same on every process
        self.reached = False

    @property
    def progress(self) -> float:
        """The share of the budget spent at the last step's end (0 to 1)."""
        return min(1.0, self.elapsed / self.seconds)

    def on_train_begin(self, args, state, control, **kwargs):
        self.start = self.clock()
        self.elapsed = 0.0

    def on_step_end(self, args, state, control, **kwargs):
        if self.reached:
            return
        self.elapsed = slowest_process(self.clock() - self.start)
        if self.elapsed < self.seconds:
            return
        self.reached = True
        control.should_training_stop = True
        self._skip_evaluation(args, control)
        if state.is_world_process_zero:
            tqdm.write(f"time limit reached at step {state.global_step} ({self.elapsed / 60:.2f} minutes)")

    def on_epoch_end(self, args, state, control, **kwargs):
        if self.reached:
            self._skip_evaluation(args, control)

    @staticmethod
    def _skip_evaluation(args, control) -> None:
        if args.do_eval and not args.load_best_model_at_end:
            control.should_evaluate = False


class TimeBudgetProgressCallback(ProgressCallback):
    """transformers' training progress bar for a run with a time limit: its total is the steps the run will
    reach, `max_steps` or the steps the time left allows at the speed so far (whichever comes first), so the bar
    ends full and its ETA follows the budget (the step total alone would show an ETA of hours while minutes
    remain, and stop part way)."""

    def __init__(self, minutes: float):
        super().__init__()
        self.seconds = minutes * 60
        self.start = None
        self.first_step = 0

    def on_train_begin(self, args, state, control, **kwargs):
        super().on_train_begin(args, state, control, **kwargs)
        self.start, self.first_step = time.monotonic(), state.global_step  # (a resumed run starts part way)
        if self.training_bar is not None:
            self.training_bar.reset(total=state.max_steps)
            self.training_bar.update(state.global_step)
            self.current_step = state.global_step

    def on_step_end(self, args, state, control, **kwargs):
        super().on_step_end(args, state, control, **kwargs)
        if self.training_bar is None:
            return
        elapsed = time.monotonic() - self.start
        steps = state.global_step - self.first_step
        if control.should_training_stop:
            total = state.global_step
        else:
            reachable = state.global_step + steps / max(elapsed, 1e-9) * max(self.seconds - elapsed, 0.0)
            total = min(state.max_steps, max(state.global_step + 1, math.ceil(reachable)))
        if total != self.training_bar.total:
            self.training_bar.total = total
            self.training_bar.refresh()


def build_gru_loops(model) -> None:
    """Build (or load) the compiled GRU loops, and time them on this machine the first time (`gru_choice`), now
    rather than in the first training step: before a time limit's clock starts. Off the CPU nothing is done."""
    if model.device.type == "cpu":
        choice(model.config.hidden_size, rows=1, training=True)


class GracefulStopCallback(TrainerCallback):
    """On SIGINT (Ctrl-C) or SIGTERM, finish the current step, save a checkpoint and stop training.

    `signal_received` then holds the signal number; rerunning the same command resumes from that
    checkpoint. A second signal acts at once (the previous handlers are back after the first).
    """

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self):
        self.signal_received = None
        self.previous_handlers = {}

    def on_train_begin(self, args, state, control, **kwargs):
        self.previous_handlers = {number: signal.signal(number, self._handle) for number in self.SIGNALS}

    def _handle(self, number, frame):
        self.signal_received = number
        self._restore()
        print(
            f"\n{signal.Signals(number).name}: saving a checkpoint after this step, then stopping "
            "(send it again to stop at once)",
            flush=True,
        )

    def on_step_end(self, args, state, control, **kwargs):
        if any_process(self.signal_received is not None):
            control.should_save = True
            control.should_training_stop = True

    def on_train_end(self, args, state, control, **kwargs):
        self._restore()

    def _restore(self):
        for number, handler in self.previous_handlers.items():
            signal.signal(number, handler)
        self.previous_handlers = {}


def padded_predictions(token_ids: np.ndarray, pad_token_id: int) -> np.ndarray:
    """Generated ids as the Trainer gathers them, with its -100 padding (rows of different lengths) replaced by
    the tokenizer's padding, which `batch_decode` can read."""
    return np.where(token_ids < 0, pad_token_id, token_ids)


# source-length buckets of `bleu_len_*` (words, both ends included)
LENGTH_BUCKETS = {"1_5": (1, 5), "6_10": (6, 10), "11_20": (11, 20), "21_plus": (21, None)}


def source_word_counts(sources: list[str]) -> list[int]:
    """Words per source sentence: its space-separated pieces holding a letter or digit (punctuation that a
    normalization spaces out is not a word)."""
    return [sum(any(c.isalnum() for c in piece) for piece in source.split()) for source in sources]


def build_compute_metrics(
    tokenizer,
    references: list[str],
    in_vocabulary: list[bool] | None,
    decode=None,
    source_lengths: list[int] | None = None,
):
    """`compute_metrics` for one split: BLEU, chrF and generated length; `bleu_normalized`, BLEU after the
    tutorial's normalization of both predictions and references (so runs of any `--normalization` compare); and
    with `in_vocabulary` (word vocabularies), `bleu_in_vocab` / `chrf_in_vocab` over the examples whose words are
    all in the vocabularies. With `source_lengths` (words per source, `source_word_counts`), BLEU by source length:
    `bleu_len_1_5`, `bleu_len_6_10`, `bleu_len_11_20`, `bleu_len_21_plus` (each bucket that has examples).

    References are the split's target sentences as the tokenizer normalizes them (not decoded labels, which
    would turn unknown words into `<unk>`): with `--normalization none`, the text as written, so BLEU and chrF
    are sacreBLEU's usual cased, detokenized scores. Predictions beyond `len(references)` (the padded duplicates
    distributed evaluation returns) are dropped. `decode`: generated ids `(examples, length)` -> texts (default:
    `batch_decode` without special tokens; `run_translation.py --replace_unknown` writes `<unk>` as source words).
    """
    decode = decode or (lambda token_ids: tokenizer.batch_decode(token_ids, skip_special_tokens=True))
    normalized_references = [normalize_string(reference) for reference in references]

    def compute_metrics(eval_prediction) -> dict:
        token_ids = (
            eval_prediction.predictions[0]
            if isinstance(eval_prediction.predictions, tuple)
            else eval_prediction.predictions
        )
        token_ids = padded_predictions(token_ids[: len(references)], tokenizer.pad_token_id)
        predictions = decode(token_ids)
        scores = corpus_scores(predictions, references)
        normalized = corpus_scores([normalize_string(text) for text in predictions], normalized_references)
        is_eos = token_ids == tokenizer.eos_token_id
        after_eos = (np.cumsum(is_eos, axis=1) - is_eos) > 0  # beam search fills finished rows with <eos>
        generated = ~after_eos & (token_ids != tokenizer.pad_token_id) & (token_ids != tokenizer.bos_token_id)
        metrics = {"bleu": scores["bleu"], "chrf": scores["chrf"], "bleu_normalized": normalized["bleu"]}
        if in_vocabulary is not None:
            kept = [i for i, known in enumerate(in_vocabulary) if known]
            in_vocab_scores = corpus_scores([predictions[i] for i in kept], [references[i] for i in kept])
            metrics.update(bleu_in_vocab=in_vocab_scores["bleu"], chrf_in_vocab=in_vocab_scores["chrf"])
        for name, (shortest, longest) in LENGTH_BUCKETS.items() if source_lengths is not None else ():
            kept = [
                i
                for i, length in enumerate(source_lengths[: len(predictions)])
                if shortest <= length and (longest is None or length <= longest)
            ]
            if kept:
                scores = corpus_scores([predictions[i] for i in kept], [references[i] for i in kept])
                metrics[f"bleu_len_{name}"] = scores["bleu"]
        metrics["gen_len"] = float(generated.sum(axis=1).mean()) if len(token_ids) else 0.0
        return metrics

    return compute_metrics
