"""What the package's commands (`run_translation.py`, `gru-translate`) share: their usage error and the names of
what a training run writes in its output folder. Light to import (no Trainer, no `evaluate`)."""


class UsageError(Exception):
    """Bad arguments, an unusable model, output folder or input file: one line on stderr, exit code 2."""


CHECKPOINT_STAGING_DIR = ".checkpoint-staging"  # a checkpoint being written, renamed into place when complete
MODEL_STAGING_DIR = ".model-staging"  # the final model being written, moved into place when complete
RUN_ARGUMENTS_FILE = "run_arguments.json"  # what a checkpoint or model was trained with (`run_translation`)
WRITE_PROBE_PREFIX = "_write_probe."  # a small file written and removed at the start, to see the folder is writable
SHARED_VOCABULARY_DIR = ".vocabulary"  # under DDP, the subword vocabulary the first process trained, for the others
RUN_LOCK_FILE = "_gru_seq2seq_run.lock"  # held by the run using the folder (`_*`: the Trainer's push leaves it out)

# What a finished run writes in its output folder beside checkpoints (and the model's code files, `MODEL_CODE_FILES`):
# `--overwrite_output_dir` removes these, and a user's own files stay.
RUN_OUTPUT_FILES = (
    "config.json",
    "generation_config.json",
    "model.safetensors",
    "tokenizer.json",
    "target_tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "trainer_state.json",
    "training_args.bin",
    RUN_ARGUMENTS_FILE,
    "train_results.json",
    "eval_results.json",
    "predict_results.json",
    "all_results.json",
    "generated_predictions.txt",
    "loss.png",
)
RUN_OUTPUT_PATTERNS = ("attention_*.png",)  # the heatmaps
RUN_OUTPUT_DIRS = (CHECKPOINT_STAGING_DIR, MODEL_STAGING_DIR, SHARED_VOCABULARY_DIR, "runs")  # `runs`: TensorBoard's
