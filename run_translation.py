"""Train the attention GRU translator with the Trainer API (placeholder until the trainer issue lands)."""

import sys

USAGE = """usage: python run_translation.py --train_file ../shared/data/eng-fra.txt --output_dir runs/fr-en

Training is not wired yet. Prepare the data meanwhile with:
    python -m data_scripts.prepare_tatoeba --train_file ../shared/data/eng-fra.txt --output_dir data/tatoeba"""

if __name__ == "__main__":
    print(USAGE)
    sys.exit(2)
