"""The Tatoeba pipeline (data_scripts/prepare_tatoeba.py): the tutorial's figures, both file layouts, the grouped
split, clear errors; what real files throw at it (blank lines, 1 MB lines, lone CRs, header lines, broken JSON
lines, a file rewritten with its old mtime); a preparation killed while saving, onto a file or a full disk."""

import errno
import json
import os
import pathlib
import re
import signal
import subprocess
import sys

import pytest
from datasets import DatasetDict, load_from_disk
from runs import one_line_error

from data_scripts.prepare_tatoeba import (
    DataFileError,
    PrepareArguments,
    prepare_tatoeba,
    read_pairs,
    tokenize_translation,
)
from data_scripts.prepare_tatoeba import main as prepare_main
from modeling_gru_seq2seq import GruSeq2SeqTokenizer

SMALL = PrepareArguments(min_count=1, validation_fraction=0.2, test_fraction=0.2)
PAIRS = [
    ("I am cold.", "J'ai froid."),
    ("I am cold.", "Je suis froid."),
    ("Go!", "Va\u00a0!"),
    ("Hi.", "Salut."),
    ("I am here.", "Je suis là."),
    ("He is here.", "Il est là."),
    ("She is here.", "Elle est là."),
    ("Run!", "Cours\u202f!"),
    ("Who?", "Qui\u00a0?"),
    ("Wow!", "Ça alors\u00a0!"),
    ("Fire!", "Au feu\u00a0!"),
]


def write_pairs(path, pairs, columns=2):
    lines = ["\t".join(pair + ("CC-BY 2.0 (France) Attribution: tatoeba.org",) * (columns == 3)) for pair in pairs]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return str(path)


@pytest.mark.shared_data
def test_tutorial_figures_on_shared_file(shared_pairs_file, capsys):
    corpus = prepare_tatoeba(str(shared_pairs_file))
    stats = corpus.stats
    assert stats["pairs_read"] == 163630
    assert stats["pairs_after_length_filter"] == 29339
    assert (stats["words_indexed_fr"], stats["words_indexed_en"]) == (7537, 4743)
    assert (stats["words_kept_fr"], stats["words_kept_en"]) == (1903, 1681)
    assert stats["pairs_kept"] == 18845
    assert (corpus.tokenizer.source_vocab_size, corpus.tokenizer.target_vocab_size) == (1907, 1685)
    assert sum(len(split) for split in corpus.dataset.values()) == 18845
    printed = capsys.readouterr().out
    for figure in (
        "Read 163630",
        "Filtered to 29339",
        "Indexed 7537",
        "4743 words",
        "keep_words 1903",
        "keep_words 1681",
        "to 18845",
    ):
        assert figure in printed
    # the split is grouped by source sentence: no French sentence in two splits
    sources = {name: {pair["fr"] for pair in split["translation"]} for name, split in corpus.dataset.items()}
    assert not sources["train"] & sources["test"] and not sources["train"] & sources["validation"]
    assert not sources["validation"] & sources["test"]
    total = sum(map(len, sources.values()))
    assert 0.04 < len(sources["test"]) / total < 0.06 and 0.04 < len(sources["validation"]) / total < 0.06


def test_two_and_three_column_layouts_give_the_same_pairs(tmp_path):
    two = prepare_tatoeba(write_pairs(tmp_path / "two.txt", PAIRS), SMALL)
    three = prepare_tatoeba(write_pairs(tmp_path / "fra.txt", PAIRS, columns=3), SMALL)
    for split in ("train", "validation", "test"):
        assert two.dataset[split]["translation"] == three.dataset[split]["translation"]
    everything = [pair for split in two.dataset.values() for pair in split["translation"]]
    assert {"fr": "va !", "en": "go !"} in everything  # French -> English, normalized


def test_direction_and_length_unit_are_configurable(tmp_path):
    path = write_pairs(tmp_path / "pairs.txt", PAIRS)
    args = PrepareArguments(
        source_lang="en",
        target_lang="fr",
        min_count=1,
        min_length=4,
        max_length=4,
        length_unit="words",
        validation_fraction=0,
        test_fraction=0,
    )
    corpus = prepare_tatoeba(path, args)
    pairs = corpus.dataset["train"]["translation"]
    assert all(len(pair["en"].split()) == 4 and len(pair["fr"].split()) == 4 for pair in pairs)
    assert {"en": "i am cold .", "fr": "je suis froid ."} in pairs
    assert list(pairs[0]) == ["en", "fr"] and corpus.tokenizer.source_lang == "en"


def test_split_is_seeded_and_grouped_by_source(tmp_path):
    numbers = {
        "un": "one",
        "deux": "two",
        "trois": "three",
        "quatre": "four",
        "cinq": "five",
        "six": "six",
        "sept": "seven",
    }
    pairs = [
        (f"{subject} {en}.", f"Je vois {fr}.")
        for fr, en in numbers.items()
        for subject in ("I see", "I saw", "We see")
    ]  # 7 French sources, 3 translations each
    path = write_pairs(tmp_path / "pairs.txt", pairs)
    args = PrepareArguments(min_count=1, validation_fraction=0.3, test_fraction=0.3)
    first, again = prepare_tatoeba(path, args), prepare_tatoeba(path, args)
    other_seed = prepare_tatoeba(
        path, PrepareArguments(min_count=1, validation_fraction=0.3, test_fraction=0.3, split_seed=7)
    )
    split_sources = {name: {p["fr"] for p in split["translation"]} for name, split in first.dataset.items()}
    assert sum(map(len, split_sources.values())) == 7 == len(set().union(*split_sources.values()))
    assert all(first.dataset[s]["translation"] == again.dataset[s]["translation"] for s in split_sources)
    assert any(first.dataset[s]["translation"] != other_seed.dataset[s]["translation"] for s in split_sources)


def test_trimming_drops_pairs_with_rare_words(tmp_path):
    path = write_pairs(tmp_path / "pairs.txt", [("I am cold.", "J'ai froid.")] * 3 + [("I am hot.", "J'ai chaud.")])
    corpus = prepare_tatoeba(path, PrepareArguments(min_count=2, validation_fraction=0, test_fraction=0))
    assert corpus.dataset["train"]["translation"] == [{"fr": "j ai froid .", "en": "i am cold ."}] * 3
    assert "chaud" not in corpus.tokenizer.get_vocab() and "hot" not in corpus.tokenizer.target_vocab()


def test_given_validation_file_keeps_unknown_words_as_unk(tmp_path):
    train = write_pairs(tmp_path / "train.txt", PAIRS)
    valid = write_pairs(tmp_path / "valid.txt", [("I am blue.", "Je suis bleu.")])
    corpus = prepare_tatoeba(train, SMALL, validation_file=valid)
    assert corpus.dataset["validation"]["translation"] == [{"fr": "je suis bleu .", "en": "i am blue ."}]
    encoded = tokenize_translation(corpus.dataset, corpus.tokenizer)["validation"][0]
    assert encoded["input_ids"][-3:] == [corpus.tokenizer.unk_token_id, corpus.tokenizer.get_vocab()["."], 2]
    assert corpus.tokenizer.decode(encoded["labels"], skip_special_tokens=True) == "i am <unk> ."


def test_jsonl_translation_layout(tmp_path):
    path = tmp_path / "pairs.jsonl"
    path.write_text("\n".join(json.dumps({"translation": {"en": en, "fr": fr}}) for en, fr in PAIRS), encoding="utf-8")
    from_jsonl = prepare_tatoeba(str(path), SMALL)
    from_tsv = prepare_tatoeba(write_pairs(tmp_path / "pairs.txt", PAIRS), SMALL)
    assert from_jsonl.dataset["train"]["translation"] == from_tsv.dataset["train"]["translation"]


@pytest.mark.parametrize(
    "content, message",
    [
        (
            "Go.\tVa !\nHello there\nHi.\tSalut.\n",
            r"bad\.txt:2: expected 2 tab-separated columns like line 1, found 1",
        ),
        ("Go.\tVa !\nHi.\tSalut.\tx\tDrop\n", r"bad\.txt:2: expected 2 .* found 4"),
        ("Go.\tVa !\tattribution\nHi.\tSalut.\n", r"bad\.txt:2: expected 3 .* found 2"),
        ("one column only\n", r"bad\.txt:1: expected 2 tab-separated columns .* found 1"),
        ("", r"bad\.txt: no sentence pairs"),
        ("Go.\tVa !\nThis is far too long a sentence.\tC'est une phrase bien trop longue.\n", None),
    ],
)
def test_bad_lines_are_reported_with_file_and_line(tmp_path, content, message):
    path = tmp_path / "bad.txt"
    path.write_text(content, encoding="utf-8")
    if message is None:  # every pair is filtered out by a later step: name that step
        with pytest.raises(DataFileError, match=r"bad\.txt: no pairs left after the length filter"):
            prepare_tatoeba(str(path), PrepareArguments(min_length=1, max_length=2))
        return
    with pytest.raises(DataFileError, match=message):
        prepare_tatoeba(str(path), SMALL)


def test_skip_bad_lines_counts_what_it_skips(tmp_path, capsys):
    path = tmp_path / "bad.txt"
    path.write_text("Go.\tVa !\nno tab here\n\nHi.\tSalut.\tx\nRun!\tCours !\n", encoding="utf-8")
    pairs = read_pairs(str(path), PrepareArguments(skip_bad_lines=True))
    assert pairs["line"] == [1, 5] and pairs["fr"] == ["va !", "cours !"]
    captured = capsys.readouterr()
    assert "Skipped 2 bad lines" in captured.err and "Ignored 1 blank lines" in captured.err
    assert captured.out == ""  # notes never mix with a command's output


def test_invalid_utf8_names_the_line(tmp_path):
    path = tmp_path / "latin1.txt"
    path.write_bytes(b"Go.\tVa !\n" * 999 + "Tea.\tThé.\n".encode("latin-1"))
    with pytest.raises(DataFileError, match=r"latin1\.txt:1000: invalid UTF-8"):
        prepare_tatoeba(str(path), SMALL)


def test_missing_file(tmp_path):
    with pytest.raises(DataFileError, match=r"nope\.txt: no such file"):
        prepare_tatoeba(str(tmp_path / "nope.txt"))


def test_bom_and_crlf_are_read_as_plain_lines(tmp_path):
    path = tmp_path / "crlf.txt"
    path.write_bytes(b"\xef\xbb\xbf" + "\r\n".join("\t".join(pair) for pair in PAIRS).encode() + b"\r\n")
    plain = read_pairs(write_pairs(tmp_path / "plain.txt", PAIRS), SMALL)
    assert read_pairs(str(path), SMALL).to_dict() == plain.to_dict()


def test_cli_saves_dataset_tokenizer_and_exports(tmp_path):
    train = write_pairs(tmp_path / "pairs.txt", PAIRS)
    output_dir = tmp_path / "prepared"
    command = [
        sys.executable,
        "-m",
        "data_scripts.prepare_tatoeba",
        "--train_file",
        train,
        "--output_dir",
        str(output_dir),
        "--min_count",
        "1",
        "--test_fraction",
        "0.2",
        "--export",
        "tsv",
        "jsonl",
    ]
    result = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "Read 11 sentence pairs" in result.stdout
    dataset = load_from_disk(str(output_dir))
    tokenizer = GruSeq2SeqTokenizer.from_pretrained(output_dir / "tokenizer")
    row = dataset["train"][0]
    assert tokenizer.decode(row["labels"], skip_special_tokens=True) == row["translation"]["en"]
    # the TSV export is a pair file in the input's column order: it reads back to the same pairs
    reread = read_pairs(str(output_dir / "test.tsv"), SMALL)
    assert [{"fr": fr, "en": en} for fr, en in zip(reread["fr"], reread["en"], strict=False)] == dataset["test"][
        "translation"
    ]
    assert (output_dir / "train.jsonl").read_text().count("\n") == len(dataset["train"])
    # a second run refuses to overwrite; a bad file gives one line of error and a non-zero exit
    again = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert again.returncode != 0 and "already exists" in again.stderr and "Traceback" not in again.stderr
    missing = tmp_path / "missing.txt"
    bad = subprocess.run(
        command[:3] + ["--train_file", str(missing), "--output_dir", str(tmp_path / "x")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert bad.returncode == 2 and bad.stderr.strip() == f"error: {missing}: no such file"


# ---------------------------------------------------------------- broken Tatoeba files


SKIP = PrepareArguments(min_count=1, skip_bad_lines=True)
STRICT = PrepareArguments(min_count=1)
ONE_MB_OF_WORDS = b"a " * 500_000


# name: (content, the error without --skip_bad_lines (None: none), (pairs, blank lines, bad lines) with it)
BROKEN_FILES = {
    "blank lines before the first pair": (
        b"\n \n" + b"Go.\tVa !\nHi.\tSalut.\tx\nRun!\tCours !\n",
        r":4: expected 2 tab-separated columns like line 3, found 3: 'Hi\.\\tSalut\.\\tx'",
        (2, 2, 1),
    ),
    "1,500 blank lines, then pairs": (b"\n" * 1500 + b"Go.\tVa !\n\nHi.\tSalut.\n", None, (2, 1501, 0)),
    "a 1 MB line without a tab": (
        b"Go.\tVa !\n" + ONE_MB_OF_WORDS + b"\nHi.\tSalut.\n",
        r":2: expected 2 tab-separated columns like line 1, found 1: 'a a a ",
        (2, 0, 1),
    ),
    "a 1 MB pair": (b"Go.\tVa !\n" + ONE_MB_OF_WORDS + b"\t" + ONE_MB_OF_WORDS + b"\nHi.\tSalut.\n", None, (3, 0, 0)),
    "every line after the first bad": (
        b"Go.\tVa !\tCC-BY\nno tab\none\ttab\nfour\tcolumns\there\tx\n",
        r":2: expected 3 .* found 1",
        (1, 0, 3),
    ),
    "lone CR line ends with a blank line": (b"Go.\tVa !\r\rHi.\tSalut.\rRun!\tCours !\r", None, (3, 1, 0)),
}


def number_of_lines(content: bytes) -> int:
    """Lines as the reader sees them (universal newlines: `\\n`, `\\r\\n`, a lone `\\r`)."""
    text = content.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
    return text.count(b"\n") + (not text.endswith(b"\n"))


def printed_counts(stderr: str) -> tuple[int, int]:
    """(blank, bad) as `read_pairs` printed them on stderr."""
    blank = re.search(r"Ignored (\d+) blank lines", stderr)
    bad = re.search(r"Skipped (\d+) bad lines", stderr)
    return int(blank.group(1)) if blank else 0, int(bad.group(1)) if bad else 0


@pytest.mark.parametrize("name", BROKEN_FILES)
def test_broken_file_gives_a_clear_error_or_skips_and_counts_every_line(name, tmp_path, capsys):
    content, error, (num_pairs, num_blank, num_bad) = BROKEN_FILES[name]
    path = tmp_path / "pairs.txt"
    path.write_bytes(content)
    if error is not None:
        with pytest.raises(DataFileError, match=re.escape(str(path)) + error) as raised:
            read_pairs(str(path), STRICT)
        assert "\n" not in str(raised.value) and len(str(raised.value)) < 300  # one short line, even for 1 MB
        capsys.readouterr()
    pairs = read_pairs(str(path), SKIP)
    assert (len(pairs), *printed_counts(capsys.readouterr().err)) == (num_pairs, num_blank, num_bad)
    assert num_pairs + num_blank + num_bad == number_of_lines(content)  # never a silent wrong count


def test_invalid_utf8_after_lone_cr_line_ends_names_its_line(tmp_path):
    path = tmp_path / "mac.txt"
    path.write_bytes(b"Go.\tVa !\rHi.\tSalut.\rTea.\tTh\xe9.\r")
    with pytest.raises(DataFileError, match=re.escape(f"{path}:3: invalid UTF-8")):
        read_pairs(str(path), STRICT)


def test_split_left_empty_by_rounding_is_an_error(tmp_path):
    path = tmp_path / "same.txt"
    path.write_text("I see 1.\tJe vois 1.\nI see 2.\tJe vois 2.\n", encoding="utf-8")  # one source: "je vois ."
    with pytest.raises(DataFileError, match=re.escape(f"{path}: the test split is empty (0.05 of 1 source sentences")):
        prepare_tatoeba(str(path), PrepareArguments(min_count=1, validation_fraction=0))


def test_every_pair_holding_a_rare_word_names_the_trimming_step(tmp_path):
    path = tmp_path / "rare.txt"
    path.write_text("Go.\tVa !\nHi.\tSalut.\nRun!\tCours !\n", encoding="utf-8")
    with pytest.raises(DataFileError, match=re.escape(f"{path}: no pairs left after dropping pairs with trimmed")):
        prepare_tatoeba(str(path), PrepareArguments(min_count=2))


def test_data_file_rewritten_with_its_old_mtime_is_read_anew(pairs_file, tmp_path):
    lines = pathlib.Path(pairs_file).read_text(encoding="utf-8").splitlines(keepends=True)
    path = tmp_path / "pairs.txt"
    first = []
    for part in (lines[:300], lines[1000:1300]):
        path.write_text("".join(part), encoding="utf-8")
        os.utime(path, (1_700_000_000, 1_700_000_000))  # `cp -p`, `rsync -a`, untar keep mtimes
        pairs = read_pairs(str(path), PrepareArguments())
        first.append(pairs["en"][0])
    assert first[0] != first[1]


def test_a_header_line_is_skipped_with_a_note(tmp_path, capsys):
    path = tmp_path / "pairs.txt"
    path.write_text("English\tFrench\nGo.\tVa !\nHi.\tSalut !\n", encoding="utf-8")
    pairs = read_pairs(str(path), PrepareArguments())
    assert pairs["en"] == ["go .", "hi ."] and "Skipped line 1, a header" in capsys.readouterr().err
    path.write_text("en\tfr\nGo.\tVa !\n", encoding="utf-8")
    assert read_pairs(str(path), PrepareArguments())["en"] == ["go ."]
    path.write_text("Go.\tVa !\nEnglish\tFrench\n", encoding="utf-8")  # line 1 only
    assert len(read_pairs(str(path), PrepareArguments())) == 2


def test_broken_json_lines_name_their_line(tmp_path):
    path = tmp_path / "pairs.jsonl"
    path.write_text('{"translation": {"en": "Go.", "fr": "Va !"}}\n{"translation": {"en": "Hi.", "fr": \n')
    with pytest.raises(DataFileError, match=rf"^{path}:2: not valid JSON \(") as error:
        read_pairs(str(path), PrepareArguments())
    assert "\n" not in str(error.value)


# ---------------------------------------------------------------- preparation killed while saving, or nowhere to save


KILL_IN_SAVE_TO_DISK = """
import os, signal
from datasets import Dataset
original = Dataset.save_to_disk
def die_after_the_first_split(self, path, *args, **kwargs):
    if not path.endswith("train"):  # dataset_dict.json and train are written, validation and test are not
        os.kill(os.getpid(), signal.SIGKILL)
    return original(self, path, *args, **kwargs)
Dataset.save_to_disk = die_after_the_first_split
"""


KILL_WHILE_DELETING_A_CORPUS = """
import os, shutil, signal
original = shutil.rmtree
def delete_part_then_die(path, *args, **kwargs):
    if os.path.isfile(os.path.join(path, "dataset_dict.json")):  # a complete corpus being deleted
        original(os.path.join(path, "tokenizer"))
        os.kill(os.getpid(), signal.SIGKILL)
    return original(path, *args, **kwargs)
shutil.rmtree = delete_part_then_die
"""


def prepare_command(train_file, output_dir, *extra, prelude=""):
    argv = [
        "prepare_tatoeba",
        "--train_file",
        str(train_file),
        "--output_dir",
        str(output_dir),
        "--min_count",
        "1",
        *extra,
    ]
    code = (
        f"{prelude}\nimport runpy, sys\nsys.argv = {argv!r}\n"
        "runpy.run_module('data_scripts.prepare_tatoeba', run_name='__main__')"
    )
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)


def assert_complete_corpus(output_dir):
    assert set(load_from_disk(str(output_dir))) == {"train", "validation", "test"}
    assert GruSeq2SeqTokenizer.from_pretrained(output_dir / "tokenizer").source_vocab_size > 4


def test_killed_data_preparation_leaves_no_corpus_or_the_old_one_and_the_rerun_cleans_up(tmp_path):
    train_file = tmp_path / "pairs.txt"
    names = [first + second for first in "bdfklmnprt" for second in "aeio"]  # 40 sources: 2 + 2 + 36 pairs
    train_file.write_text("".join(f"I see {name}.\tJe vois {name}.\n" for name in names), encoding="utf-8")
    output_dir = tmp_path / "prepared"

    killed = prepare_command(train_file, output_dir, prelude=KILL_IN_SAVE_TO_DISK)
    assert killed.returncode == -signal.SIGKILL
    assert not output_dir.exists()  # nothing that could load as if complete
    with pytest.raises(FileNotFoundError):
        load_from_disk(str(output_dir))
    rerun = prepare_command(train_file, output_dir)
    assert rerun.returncode == 0, rerun.stderr
    assert_complete_corpus(output_dir)
    assert sorted(os.listdir(tmp_path)) == ["pairs.txt", "prepared"]  # the killed run's staging is gone

    replaced = prepare_command(train_file, output_dir, "--overwrite_output_dir", prelude=KILL_WHILE_DELETING_A_CORPUS)
    assert replaced.returncode == -signal.SIGKILL
    assert_complete_corpus(output_dir)  # the new corpus is in place before the old one is deleted
    again = prepare_command(train_file, output_dir, "--overwrite_output_dir")
    assert again.returncode == 0, again.stderr
    assert sorted(os.listdir(tmp_path)) == ["pairs.txt", "prepared"]


def test_prepare_tatoeba_onto_a_file_or_a_full_disk(pairs_file, tmp_path, monkeypatch, capsys):
    a_file = tmp_path / "corpus"
    a_file.write_text("mine")
    args = ["--train_file", str(tmp_path / "never-read.txt"), "--output_dir", str(a_file), "--overwrite_output_dir"]
    assert prepare_main(args) == 2
    assert "it is a file" in one_line_error(capsys) and a_file.read_text() == "mine"

    def full_disk(self, *args, **kwargs):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(DatasetDict, "save_to_disk", full_disk)
    output_dir = tmp_path / "new"
    assert prepare_main(["--train_file", pairs_file, "--output_dir", str(output_dir)]) == 1
    error = capsys.readouterr().err.strip().splitlines()[-1]
    assert error == f"error: --output_dir {output_dir}: cannot save there (No space left on device)"
    assert not output_dir.exists() and not [p for p in tmp_path.iterdir() if p.name.startswith(".new")]


def test_file_languages_default_to_english_then_the_other_language():
    assert PrepareArguments().file_languages == ["en", "fr"]
    assert PrepareArguments(source_lang="de", target_lang="en").file_languages == ["en", "de"]
    assert PrepareArguments(source_lang="en", target_lang="ru").file_languages == ["en", "ru"]
    given = PrepareArguments(source_lang="de", target_lang="en", file_languages=["de,en"])
    assert given.file_languages == ["de", "en"]
    with pytest.raises(ValueError, match=r"--file_languages: give the pair file's two columns"):
        PrepareArguments(source_lang="de", target_lang="ru")


def test_two_columns_of_one_language_are_labelled_by_role(tmp_path):
    with pytest.raises(ValueError, match="label the columns by role, e.g. --file_languages q,a"):
        PrepareArguments(source_lang="en", target_lang="en")
    path = write_pairs(tmp_path / "qa.txt", [("What is your name?", "My name is Tom."), ("How old are you?", "Ten.")])
    pairs = read_pairs(path, PrepareArguments(source_lang="q", target_lang="a", file_languages=["q", "a"]))
    assert pairs["q"] == ["what is your name ?", "how old are you ?"] and pairs["a"] == ["my name is tom .", "ten ."]


def test_unicode_normalization_reads_other_scripts(tmp_path):
    path = write_pairs(tmp_path / "rus.txt", [("Hello, world!", "Привет, мир!")])
    assert read_pairs(path, PrepareArguments(source_lang="ru", target_lang="en"))["ru"] == [", !"]  # a-z only
    pairs = read_pairs(path, PrepareArguments(source_lang="ru", target_lang="en", normalization="unicode"))
    assert pairs["ru"] == ["привет , мир !"] and pairs["en"] == ["hello , world !"]
    with pytest.raises(ValueError, match="--normalization: got 'utf8', want one of ascii, unicode"):
        PrepareArguments(normalization="utf8")


def test_autoencode_puts_the_source_side_in_both_columns(tmp_path):
    path = write_pairs(tmp_path / "pairs.txt", PAIRS)
    corpus = prepare_tatoeba(path, PrepareArguments(min_count=1, autoencode=True, validation_fraction=0.2))
    for split in corpus.dataset.values():
        assert all(pair["fr"] == pair["en"] for pair in split["translation"])
    assert corpus.tokenizer.target_vocab() == corpus.tokenizer.get_vocab()  # one vocabulary, the source side's
    assert "froid" in corpus.tokenizer.target_vocab()


def sources_of(split) -> list[str]:
    return [pair["fr"] for pair in split["translation"]]


def unknown_words(sentences: list[str], tokenizer) -> set[str]:
    vocabulary = tokenizer.get_vocab()
    return {word for sentence in sentences for word in sentence.split() if word not in vocabulary}


def test_unknown_pairs_keep_trains_on_pairs_with_trimmed_words(names_file):
    """`drop` (the tutorial's) leaves only the pairs of frequent names; `keep` every pair, rare names read as <unk>."""
    args = {"min_count": 2, "validation_fraction": 0.1, "test_fraction": 0.1}
    dropped = prepare_tatoeba(names_file, PrepareArguments(**args))
    kept = prepare_tatoeba(names_file, PrepareArguments(**args, unknown_pairs="keep"))
    assert dropped.stats["pairs_kept"] == 768 - 256 and kept.stats["pairs_kept"] == 768
    assert kept.tokenizer.get_vocab() == dropped.tokenizer.get_vocab()  # the same vocabularies
    assert not unknown_words(sources_of(dropped.dataset["train"]), dropped.tokenizer)
    assert len(unknown_words(sources_of(kept.dataset["train"]), kept.tokenizer)) > 150  # rare names, in training
    with pytest.raises(ValueError, match="--unknown_pairs: got 'skip', want one of drop, keep"):
        PrepareArguments(unknown_pairs="skip")


def test_open_test_holds_its_sentences_out_before_the_vocabularies_are_built(names_file, tmp_path):
    """Even with every word kept (`--min_count 1`), the open test holds words that training never saw: its rare
    names. The default split carves the test from pairs whose words are all in the vocabularies."""
    args = {"min_count": 1, "validation_fraction": 0.1, "test_fraction": 0.1}
    closed = prepare_tatoeba(names_file, PrepareArguments(**args))
    opened = prepare_tatoeba(names_file, PrepareArguments(**args, open_test=True))
    assert not unknown_words(sources_of(closed.dataset["test"]), closed.tokenizer)
    test_sources = sources_of(opened.dataset["test"])
    rare = unknown_words(test_sources, opened.tokenizer)
    assert len(test_sources) == round(768 * 0.1) and len(rare) > 10
    seen = set(sources_of(opened.dataset["train"]) + sources_of(opened.dataset["validation"]))
    assert not seen & set(test_sources)
    assert opened.stats["pairs_kept"] + len(test_sources) == 768  # the rest, trimmed as usual
    with pytest.raises(ValueError, match="--open_test holds out the test split: give a --test_fraction above 0"):
        PrepareArguments(open_test=True, test_fraction=0)
    test_file = write_pairs(tmp_path / "test.txt", PAIRS)
    with pytest.raises(ValueError, match="--open_test holds a test split out of the training pairs, but a test"):
        prepare_tatoeba(names_file, PrepareArguments(**args, open_test=True), test_file=test_file)


def test_open_test_all_lengths_holds_its_sentences_out_before_the_length_filter(pairs_file):
    """The uniform test: `--open_test_all_lengths` carves it before the length filter, so it keeps sentences the
    filter drops from training (longer than 25 characters here), and none of its sources is trained on."""
    args = {"validation_fraction": 0.05, "test_fraction": 0.05, "open_test": True}
    filtered = prepare_tatoeba(pairs_file, PrepareArguments(**args))
    uniform = prepare_tatoeba(pairs_file, PrepareArguments(**args, open_test_all_lengths=True))
    longest = lambda split: max(len(source) for source in sources_of(split))  # noqa: E731
    assert longest(filtered.dataset["test"]) <= 25 < longest(uniform.dataset["test"])
    assert longest(uniform.dataset["train"]) <= 25  # training is length-filtered as before
    seen = set(sources_of(uniform.dataset["train"]) + sources_of(uniform.dataset["validation"]))
    assert not seen & set(sources_of(uniform.dataset["test"]))
    assert uniform.stats["pairs_read"] == 1680
    with pytest.raises(ValueError, match="--open_test_all_lengths is how --open_test holds its split out"):
        PrepareArguments(open_test_all_lengths=True)


@pytest.mark.shared_data
def test_unknown_words_figures_on_shared_file(shared_pairs_file):
    """`--unknown_pairs keep`: every length-filtered pair (29,339 instead of 18,845). `--open_test`: the test's
    1,485 pairs held out first, 37% of them with a source word outside the vocabulary."""
    kept = prepare_tatoeba(str(shared_pairs_file), PrepareArguments(unknown_pairs="keep"))
    assert kept.stats["pairs_kept"] == 29339 == sum(len(split) for split in kept.dataset.values())
    opened = prepare_tatoeba(str(shared_pairs_file), PrepareArguments(open_test=True))
    vocabulary = set(opened.tokenizer.get_vocab())
    test_sources = sources_of(opened.dataset["test"])
    with_unknown = [source for source in test_sources if not set(source.split()) <= vocabulary]
    assert (len(test_sources), len(with_unknown)) == (1485, 549)
    assert opened.stats["pairs_kept"] == 17654  # the other 27,854 pairs, trimmed as the tutorial does
