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
