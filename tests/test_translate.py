"""`gru-translate`: the command driven as a subprocess (arguments, a file, stdin, beams, unknown words, an
empty and a 300-word line, a missing model, samples with BLEU, the terminal prompt), and the functions
behind it (batched translation in input order, attention weights, the heatmap figure); on an untrained model,
outputs bounded by --max_new_tokens, a closed output pipe, a full disk, notes kept off stdout and CR line ends;
and n-best lists, scores, sampling and --device (N lines per input, beams and `sequences_scores` as `generate`
gives them, greedy scores as summed log-probabilities, seeded samples, top_k=1 sampling as greedy search, one-line
errors for bad flags)."""

import io
import os
import pty
import re
import select
import shutil
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import sacrebleu
import torch
import transformers
from tiny import learn_by_heart
from transformers import AutoModelForSeq2SeqLM, AutoTokenizer

from data_scripts.prepare_tatoeba import PrepareArguments, read_pairs
from modeling_gru_seq2seq import GruSeq2SeqTokenizer, train_word_level
from modeling_gru_seq2seq import translate as translate_module
from modeling_gru_seq2seq.loading import load_model_and_tokenizer
from modeling_gru_seq2seq.pipeline_gru_seq2seq import save_translation_pipeline
from modeling_gru_seq2seq.translate import main, read_lines, translate

PAIRS = [
    ("je suis content .", "i am happy ."),
    ("je suis fatigue .", "i am tired ."),
    ("il est la .", "he is here ."),
    ("elle est la .", "she is here ."),
    ("elle a froid !", "she is cold !"),
    ("il a froid !", "he is cold !"),
    ("nous sommes amis .", "we are friends ."),
    ("vous etes en retard .", "you are late ."),
    ("tu es grand .", "you are tall ."),
    ("je suis en retard .", "i am late ."),
    ("il est fatigue .", "he is tired ."),
    ("elle est contente .", "she is happy ."),
]
LONG_LINE = " ".join(["je suis content ."] * 75)  # 300 words
FILE_LINES = ["Je suis content.", "", "Elle a froid, zorg !", LONG_LINE, "nous sommes amis ."]


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    """A tiny model that has learned `PAIRS` by heart (150 full-batch Adam steps, about a second)."""
    model, tokenizer = learn_by_heart(PAIRS)
    model.generation_config.max_length = 21  # 20 new tokens
    directory = tmp_path_factory.mktemp("translate") / "model"
    save_translation_pipeline(model.eval(), tokenizer, str(directory))
    return directory


@pytest.fixture(scope="module")
def loaded(model_dir):
    return AutoModelForSeq2SeqLM.from_pretrained(model_dir), AutoTokenizer.from_pretrained(model_dir)


def run_command(*args, stdin="", executable=(sys.executable, "-m", "modeling_gru_seq2seq.translate")):
    return subprocess.run([*executable, *map(str, args)], input=stdin, capture_output=True, text=True, timeout=120)


def texts(loaded, sentences, **kwargs):
    return [translation.text for translation in translate(*loaded, sentences, **kwargs)]


def test_sentences_as_arguments_with_the_console_script(model_dir, loaded):
    script = shutil.which("gru-translate", path=os.path.dirname(sys.executable))
    assert script, "no gru-translate next to python: reinstall the package (pip install -e .)"
    result = run_command(model_dir, "Je suis content.", "Il est là.", "Nous sommes amis.", executable=(script,))
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == ["i am happy .", "he is here .", "we are friends ."]
    assert result.stderr == ""


@pytest.fixture(scope="module")
def file_run(model_dir):
    path = model_dir.parent / "sentences.txt"
    path.write_text("\n".join(FILE_LINES) + "\n", encoding="utf-8")
    return run_command(model_dir, "--input_file", path, "--batch_size", 2)


def test_input_file_gives_one_line_per_input_line_in_order(file_run, loaded):
    assert file_run.returncode == 0, file_run.stderr
    assert file_run.stdout.split("\n") == [*texts(loaded, FILE_LINES, max_source_length=100), ""]
    assert file_run.stdout.splitlines()[0] == "i am happy ." and file_run.stdout.splitlines()[4] == "we are friends ."


def test_stdin_gives_the_same_lines_as_the_file(file_run, model_dir):
    result = run_command(model_dir, stdin="\n".join(FILE_LINES) + "\n")
    assert result.returncode == 0, result.stderr
    assert result.stdout == file_run.stdout and result.stderr == file_run.stderr


def test_empty_line_gives_an_empty_line_and_keeps_alignment(file_run, loaded):
    lines = file_run.stdout.split("\n")
    assert len(lines) == len(FILE_LINES) + 1 and lines[1] == ""
    assert [t.output_tokens for t in translate(*loaded, ["", "  ", "123 #"])] == [[], [], []]
    assert texts(loaded, ["", "il est la .", "  "]) == ["", "he is here .", ""]


def test_unknown_words_are_read_as_unk_and_reported(file_run, loaded):
    assert "sentence 3: 2 unknown words: ',', 'zorg'\n" in file_run.stderr
    [translation] = translate(*loaded, [FILE_LINES[2]])
    assert translation.source_tokens == ["elle", "a", "froid", "<unk>", "<unk>", "!", "<eos>"]
    assert file_run.stdout.splitlines()[2] == translation.text != ""


def test_300_word_line_is_cut_to_max_source_length_with_a_warning(file_run, loaded):
    assert "sentence 4: warning: 300 words, cut to the first 99 (--max_source_length 100)\n" in file_run.stderr
    first_99_words = " ".join(LONG_LINE.split()[:99])
    assert file_run.stdout.splitlines()[3] == texts(loaded, [first_99_words])[0]
    [cut] = translate(*loaded, [LONG_LINE], max_source_length=100, output_attentions=True)
    assert len(cut.source_tokens) == 100 and cut.attention.shape == (len(cut.output_tokens), 100)
    assert len(file_run.stderr.splitlines()) == 2  # the unknown words and the cut: no other noise


def test_num_beams_3_gives_generate_beam_search_outputs(model_dir, loaded):
    sentences = ["elle est contente .", "tu es grand .", "il est"]
    result = run_command(model_dir, *sentences, "--num_beams", 3, "--max_new_tokens", 6)
    assert result.returncode == 0, result.stderr
    model, tokenizer = loaded
    inputs = tokenizer(sentences, padding=True, return_tensors="pt")
    expected = tokenizer.batch_decode(
        model.generate(**inputs, num_beams=3, max_new_tokens=6), skip_special_tokens=True
    )
    assert result.stdout.splitlines() == expected and result.stderr == ""
    assert expected[:2] == ["she is happy .", "you are tall ."]


def test_missing_model_directory_is_a_one_line_error(tmp_path, capsys):
    result = run_command(tmp_path / "no-such-model", "Je suis content.")
    assert result.returncode == 2 and result.stdout == ""
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert result.stderr.startswith(f"error: {tmp_path / 'no-such-model'}: no such model directory")
    assert main([str(tmp_path), "Je suis content."]) == 2  # a directory without a model in it
    assert capsys.readouterr().err == f"error: {tmp_path}: not a saved model (no config.json in it)\n"


def test_batched_translation_keeps_input_order_and_equals_one_at_a_time(loaded):
    sentences = [fr for fr, _ in PAIRS] + ["", "il est", "je suis content . il est la ."]
    batched = translate(*loaded, sentences, batch_size=4)
    assert [t.text for t in batched] == texts(loaded, sentences, batch_size=1)
    assert [t.text for t in batched[: len(PAIRS)]] == [en for _, en in PAIRS]


def test_attention_rows_sum_to_one_and_equal_generate_cross_attentions(loaded):
    model, tokenizer = loaded
    sentences = ["je suis content .", "il est", "vous etes en retard .", "elle a froid , zorg !"]
    translations = translate(model, tokenizer, sentences, batch_size=3, output_attentions=True)
    inputs = tokenizer(sentences, padding=True, return_tensors="pt")
    generated = model.generate(**inputs, output_attentions=True, return_dict_in_generate=True)
    steps = torch.cat([step[0][:, 0] for step in generated.cross_attentions], dim=1).numpy()
    for row, translation in enumerate(translations):
        weights = translation.attention
        assert weights.shape == (len(translation.output_tokens), len(translation.source_tokens))
        np.testing.assert_allclose(weights.sum(axis=1), 1.0, atol=1e-5)
        np.testing.assert_allclose(weights, steps[row, : weights.shape[0], : weights.shape[1]], atol=1e-5)
    for translation in translate(model, tokenizer, sentences, num_beams=3, output_attentions=True):
        np.testing.assert_allclose(translation.attention.sum(axis=1), 1.0, atol=1e-5)


@pytest.fixture
def figures(monkeypatch):
    """The heatmaps the command draws, recorded as `(figure, path)`."""
    drawn, plot_attention = [], translate_module.plot_attention

    def recording_plot_attention(input_words, output_words, attentions, path=None):
        drawn.append((plot_attention(input_words, output_words, attentions, path), path))
        return drawn[-1][0]

    monkeypatch.setattr(translate_module, "plot_attention", recording_plot_attention)
    return drawn


def test_show_attention_draws_the_tutorial_heatmap(model_dir, loaded, tmp_path, figures, capsys):
    path = tmp_path / "out.png"
    assert main([str(model_dir), "Elle a froid, zorg !", "--show_attention", str(path)]) == 0
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    [(figure, saved_path)] = figures
    assert saved_path == str(path)
    [translation] = translate(*loaded, ["Elle a froid, zorg !"], output_attentions=True)
    heatmap, colour_bar = figure.axes
    assert colour_bar.get_ylim() == (0.0, 1.0)
    x_labels, y_labels = heatmap.get_xticklabels(), heatmap.get_yticklabels()
    assert [label.get_text() for label in x_labels] == ["elle", "a", "froid", "<unk>", "<unk>", "!", "<eos>"]
    assert all(label.get_rotation() == 90 for label in x_labels)
    assert [label.get_text() for label in y_labels] == translation.output_tokens
    assert y_labels[-1].get_text() == "<eos>"
    assert list(heatmap.get_xticks()) == list(range(7))  # one tick per word
    image = heatmap.get_images()[0].get_array()
    np.testing.assert_allclose(image, translation.attention, atol=1e-6)
    np.testing.assert_allclose(image.sum(axis=1), 1.0, atol=1e-5)


def test_show_attention_folder_holds_one_heatmap_per_sentence(model_dir, tmp_path, figures, capsys):
    folder = tmp_path / "heatmaps"
    assert main([str(model_dir), "je suis content .", "", "il est la .", "--show_attention", str(folder)]) == 0
    assert sorted(os.listdir(folder)) == ["attention_0.png", "attention_2.png"]  # none for the empty line
    assert [len(figure.axes[0].get_yticklabels()) for figure, _ in figures] == [5, 5]  # 4 words, <eos>
    assert main([str(model_dir), "a", "b", "--show_attention", str(tmp_path / "one.png")]) == 2
    assert "give a folder" in capsys.readouterr().err


def test_samples_print_pairs_and_corpus_bleu_of_the_file(model_dir, tmp_path):
    lines = [
        "I am happy.\tJe suis content.",
        "He is here!\tIl est là !",
        "She is cold!\tElle a froid !",
        "We are tired.\tNous sommes fatigués.",
        "You are late.\tTu es en retard.",
        "",
        "I am tall.\tJe suis grand.",
    ]
    pairs_file = tmp_path / "pairs.tsv"
    pairs_file.write_text("\n".join(lines) + "\n", encoding="utf-8")
    result = run_command(model_dir, "--samples", pairs_file, "-n", 6, "--seed", 3)
    assert result.returncode == 0, result.stderr
    blocks = re.findall(r"^> (.*)\n= (.*)\n< (.*)\n\n", result.stdout, flags=re.MULTILINE)
    assert len(blocks) == 6
    assert {source for source, _, _ in blocks} == {
        "je suis content .",
        "il est la !",
        "elle a froid !",
        "nous sommes fatigues .",
        "tu es en retard .",
        "je suis grand .",
    }
    assert ("je suis content .", "i am happy .", "i am happy .") in blocks
    outputs, references = [output for _, _, output in blocks], [reference for _, reference, _ in blocks]
    bleu, chrf = map(float, re.search(r"^BLEU (\S+)  chrF (\S+)  \(6 pairs", result.stdout, re.MULTILINE).groups())
    assert bleu == pytest.approx(sacrebleu.corpus_bleu(outputs, [references]).score, abs=0.005)
    assert chrf == pytest.approx(sacrebleu.corpus_chrf(outputs, [references]).score, abs=0.005)
    assert 0 < bleu < 100
    assert "BLEU signature: nrefs:1|case:mixed|eff:no|tok:13a" in result.stdout


def test_terminal_stdin_gives_the_tutorial_prompt(model_dir, loaded):
    """`> ` prompts, `< ` answers, unknown words on stderr, Ctrl-D ends with exit code 0."""
    controller, terminal = pty.openpty()
    process = subprocess.Popen(
        [sys.executable, "-m", "modeling_gru_seq2seq.translate", str(model_dir)],
        stdin=terminal,
        stdout=terminal,
        stderr=subprocess.PIPE,
    )
    os.close(terminal)

    def read_until_prompt(timeout=60.0):
        received, deadline = b"", time.monotonic() + timeout
        while not received.endswith(b"> ") and time.monotonic() < deadline:
            if select.select([controller], [], [], 1.0)[0]:
                received += os.read(controller, 4096)
        return received.decode().replace("\r\n", "\n")

    try:
        assert read_until_prompt() == "> "
        os.write(controller, b"Elle a froid, zorg !\n")
        answer = texts(loaded, ["Elle a froid, zorg !"])[0]
        assert read_until_prompt() == f"Elle a froid, zorg !\n< {answer}\n> "  # the terminal echoes input
        os.write(controller, b"\n")
        assert read_until_prompt() == "\n< \n> "
        os.write(controller, b"\x04")  # Ctrl-D: end of input
        assert process.wait(timeout=30) == 0
        assert process.stderr.read() == b"2 unknown words: ',', 'zorg'\n"
    finally:
        process.kill()
        process.stderr.close()
        os.close(controller)


# ---------------------------------------------------------------- bounded outputs, closed pipes, quiet stdout


def test_max_new_tokens_bounds_the_output_of_long_and_many_sentences(saved_model_dir, capsys):
    model, tokenizer = load_model_and_tokenizer(str(saved_model_dir))
    sentences = [" ".join(["je suis content ."] * 250)] + ["il est la ."] * 1024  # 1,000 words, then 1,024 lines
    lengths = {len(t.output_tokens) for t in translate(model, tokenizer, sentences, batch_size=256, max_new_tokens=3)}
    assert lengths == {3}  # untrained: never an early <eos>, so the limit is what stops it
    assert {len(t.output_tokens) for t in translate(model, tokenizer, sentences[:2])} == {20}  # the model's own
    assert main([str(saved_model_dir), "je suis content .", "il est la .", "--max_new_tokens", "2"]) == 0
    assert [len(line.split()) for line in capsys.readouterr().out.splitlines()] == [2, 2]


def test_closed_output_pipe_ends_quietly(saved_model_dir):
    """`gru-translate MODEL < file | head -1`: the reader is gone before the translations are written. With
    stdout buffered (PYTHONUNBUFFERED unset), two short lines wait in Python's buffer for the final flush,
    the hardest case; a larger or unbuffered output fails earlier, in the write, in the same handler."""
    script = shutil.which("gru-translate", path=os.path.dirname(sys.executable))
    buffered = {name: value for name, value in os.environ.items() if name != "PYTHONUNBUFFERED"}
    process = subprocess.Popen(
        [script, str(saved_model_dir)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=buffered,
    )
    process.stdout.close()
    _, stderr = process.communicate(b"je suis content .\nil est la .\n", timeout=120)
    assert process.returncode == 128 + signal.SIGPIPE
    assert stderr == b""


def test_data_notes_go_to_stderr_not_into_samples_output(saved_model_dir, tmp_path, capsys):
    samples = tmp_path / "samples.tsv"
    samples.write_text("I am happy.\tJe suis content.\n\nHe is here.\tIl est là.\n", encoding="utf-8")
    assert main([str(saved_model_dir), "--samples", str(samples), "-n", "2", "--seed", "0"]) == 0
    captured = capsys.readouterr()
    assert "Ignored 1 blank lines" in captured.err and "Ignored" not in captured.out
    assert captured.out.startswith("> ")


def test_gru_translate_output_errors_and_option_order(saved_model_dir):
    command = [sys.executable, "-m", "modeling_gru_seq2seq.translate", str(saved_model_dir)]
    with open("/dev/full", "w") as full:
        result = subprocess.run([*command, "je suis la"], stdout=full, stderr=subprocess.PIPE, text=True, timeout=120)
    assert result.returncode == 1
    assert result.stderr.strip().splitlines()[-1] == "error: cannot write the translations: No space left on device"
    assert "Traceback" not in result.stderr
    ordered = subprocess.run(
        [*command, "--num_beams", "3", "je suis la", "je suis"], capture_output=True, text=True, timeout=120
    )
    assert ordered.returncode == 0, ordered.stderr[-2000:]
    assert len(ordered.stdout.splitlines()) == 2


def test_cr_only_line_ends_are_line_ends(tmp_path):
    path = tmp_path / "old-mac.txt"
    path.write_bytes(b"Je suis content.\rIl fait froid.\r\rNous sommes amis.\r")
    assert read_lines(str(path)) == ["Je suis content.", "Il fait froid.", "", "Nous sommes amis."]
    path.write_bytes(b"a\r\nb\nc")
    assert read_lines(str(path)) == ["a", "b", "c"]


RUSSIAN = [
    ("I am happy.", "Я счастлив."),
    ("He is here.", "Он здесь."),
    ("She is cold!", "Ей холодно!"),
    ("We are ready.", "Мы готовы."),
    ("You are very tall.", "Ты очень высокий."),
]


def test_a_model_of_a_cyrillic_file_translates_it_and_scores_it(tmp_path, capsys):
    """`--normalization unicode` end to end: the file's pairs, the saved tokenizer, translation of raw Cyrillic
    text, and `--samples` (which normalizes the file as the tokenizer says)."""
    path = tmp_path / "rus.txt"
    path.write_text("".join(f"{english}\t{russian}\n" for english, russian in RUSSIAN), encoding="utf-8")
    pairs = read_pairs(str(path), PrepareArguments(source_lang="ru", target_lang="en", normalization="unicode"))
    assert pairs["ru"][0] == "я счастлив ."
    vocabularies = [train_word_level(pairs[lang], normalization="unicode") for lang in ("ru", "en")]
    tokenizer = GruSeq2SeqTokenizer.from_vocabularies(*vocabularies, source_lang="ru", target_lang="en")
    model, tokenizer = learn_by_heart(list(zip(pairs["ru"], pairs["en"], strict=True)), tokenizer=tokenizer)
    directory = tmp_path / "model"
    save_translation_pipeline(model.eval(), tokenizer, str(directory))
    loaded = AutoModelForSeq2SeqLM.from_pretrained(directory), AutoTokenizer.from_pretrained(directory)
    assert texts(loaded, [russian for _, russian in RUSSIAN]) == pairs["en"]
    assert main([str(directory), "--samples", str(path), "-n", "2", "--seed", "0"]) == 0
    assert "BLEU 100.00" in capsys.readouterr().out


UNSEEN_NAMES = ["Je vois Zorglub.", "Tom voit Zorglub.", "Zorglub a faim."]  # Zorglub: a name never seen


@pytest.mark.parametrize("num_beams", [1, 3])
def test_replace_unknown_writes_the_source_word_attended_most(names_run, num_beams):
    """A model trained with `--unknown_pairs keep` writes <unk> for a name it never saw; `replace_unknown` writes
    the source word that had the most attention at that step, with beam search too."""
    model, tokenizer = load_model_and_tokenizer(str(names_run))
    plain = translate(model, tokenizer, UNSEEN_NAMES, num_beams=num_beams, output_attentions=True)
    assert [translation.text for translation in plain] == ["i see <unk> .", "tom sees <unk> .", "<unk> is hungry ."]
    replaced = translate(model, tokenizer, UNSEEN_NAMES, num_beams=num_beams, replace_unknown=True)
    assert [translation.text for translation in replaced] == [
        "i see zorglub .",
        "tom sees zorglub .",
        "zorglub is hungry .",
    ]
    for translation, sentence in zip(plain, UNSEEN_NAMES, strict=True):
        words = tokenizer.normalize(sentence).split()
        steps = [step for step, token in enumerate(translation.output_tokens) if token == "<unk>"]
        assert [words[translation.attention[step, :-1].argmax()] for step in steps] == ["zorglub"]


def test_gru_translate_replace_unknown(names_run, capsys):
    assert main([str(names_run), *UNSEEN_NAMES[:2]]) == 0
    assert capsys.readouterr().out == "i see <unk> .\ntom sees <unk> .\n"
    assert main([str(names_run), "--replace_unknown", *UNSEEN_NAMES[:2]]) == 0
    assert capsys.readouterr().out == "i see zorglub .\ntom sees zorglub .\n"


# ---------------------------------------------------------------- n-best, scores, sampling, device (issue 30)

NBEST_SENTENCES = ["elle est contente .", "", "tu es grand .", "il est"]


def scored_lines(output: str) -> list[tuple[float, str]]:
    """`--print_scores` lines as `(score, text)`; each must be `<score with 4 decimals><TAB><text>`."""
    lines = output.splitlines()
    assert all(re.fullmatch(r"-?\d+\.\d{4}\t.*", line) for line in lines), lines
    return [(float(score), text) for score, text in (line.split("\t", 1) for line in lines)]


def test_num_return_sequences_gives_the_beams_best_first_as_generate(model_dir, loaded, capsys):
    flags = ["--num_beams", "4", "--num_return_sequences", "3", "--max_new_tokens", "6"]
    assert main([str(model_dir), *NBEST_SENTENCES, *flags]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 3 * len(NBEST_SENTENCES)
    model, tokenizer = loaded
    words = [sentence for sentence in NBEST_SENTENCES if sentence]
    inputs = tokenizer(words, padding=True, return_tensors="pt")
    generated = model.generate(**inputs, num_beams=4, num_return_sequences=3, max_new_tokens=6)
    beams = tokenizer.batch_decode(generated, skip_special_tokens=True)
    assert lines[:3] == beams[:3] and lines[3:6] == ["", "", ""] and lines[6:] == beams[3:]  # in input order
    assert lines[0] == "she is happy ." and lines[6] == "you are tall ." and len(set(lines[:3])) == 3
    options = {"num_beams": 4, "num_return_sequences": 3, "max_new_tokens": 6, "output_scores": True}
    translations = translate(*loaded, NBEST_SENTENCES, **options)
    assert [translation.text for translation in translations] == lines
    for first in range(0, len(translations), 3):  # best first
        scores = [translation.score for translation in translations[first : first + 3]]
        assert scores == sorted(scores, reverse=True)
    one_each = translate(*loaded, words, num_beams=4, max_new_tokens=6)  # N=1: one translation per sentence
    assert [translation.text for translation in one_each] == beams[::3]


@pytest.mark.parametrize("length_penalty", [None, 0.0, 2.0])
def test_print_scores_of_beam_search_are_sequences_scores(model_dir, loaded, capsys, length_penalty):
    penalty = [] if length_penalty is None else ["--length_penalty", str(length_penalty)]
    flags = ["--num_beams", "3", "--num_return_sequences", "2", "--print_scores", *penalty]
    assert main([str(model_dir), *NBEST_SENTENCES, *flags]) == 0
    lines = scored_lines(capsys.readouterr().out)
    assert lines[2:4] == [(0.0, ""), (0.0, "")]  # nothing to translate: "" with score 0.0, still 2 lines
    model, tokenizer = loaded
    words = [sentence for sentence in NBEST_SENTENCES if sentence]
    inputs = tokenizer(words, padding=True, return_tensors="pt")
    options = {} if length_penalty is None else {"length_penalty": length_penalty}
    generated = model.generate(
        **inputs, num_beams=3, num_return_sequences=2, output_scores=True, return_dict_in_generate=True, **options
    )
    texts_expected = tokenizer.batch_decode(generated.sequences, skip_special_tokens=True)
    expected = list(zip(generated.sequences_scores.tolist(), texts_expected, strict=True))
    got = lines[:2] + lines[4:]
    assert [text for _, text in got] == [text for _, text in expected]
    assert [score for score, _ in got] == pytest.approx([score for score, _ in expected], abs=6e-5)
    if length_penalty == 0.0:  # no length normalization: the beam's summed log-probabilities, as greedy scores them
        greedy = translate(*loaded, words, output_scores=True)
        assert greedy[0].text == got[0][1] and greedy[0].score == pytest.approx(got[0][0], abs=6e-5)


@torch.no_grad()
def summed_log_probs(model, tokenizer, sentence: str) -> tuple[str, float]:
    """Greedy search's output for `sentence` alone, and the sum of its tokens' log-probabilities from a separate
    teacher-forced pass (the softmax of the model's logits over the whole target vocabulary)."""
    inputs = tokenizer([sentence], return_tensors="pt")
    sequence = model.generate(**inputs)
    logits = model(**inputs, decoder_input_ids=sequence[:, :-1], teacher_forcing=True, use_cache=False).logits
    log_probs = torch.log_softmax(logits.double(), dim=-1).gather(-1, sequence[:, 1:, None])
    return tokenizer.decode(sequence[0], skip_special_tokens=True), float(log_probs.sum())


def test_print_scores_of_greedy_search_are_summed_log_probabilities(model_dir, loaded, capsys):
    assert main([str(model_dir), *NBEST_SENTENCES, "--print_scores"]) == 0
    lines = scored_lines(capsys.readouterr().out)
    assert lines[1] == (0.0, "")
    for (score, text), sentence in zip(lines, NBEST_SENTENCES, strict=True):
        if sentence:
            expected_text, expected_score = summed_log_probs(*loaded, sentence)
            assert text == expected_text and score == pytest.approx(expected_score, abs=6e-5)
    assert lines[3][0] < -0.5 < lines[0][0] < 0  # an unfinished source is less certain than a learned one
    [plain] = translate(*loaded, ["il est"])
    assert plain.score is None  # without output_scores


SAMPLING = ["--do_sample", "--temperature", "3", "--num_return_sequences", "4", "--print_scores"]


@torch.no_grad()
def test_do_sample_with_a_seed_is_reproducible_and_differs_from_greedy(model_dir, loaded, capsys):
    sentences = ["je suis content .", "il est la .", "nous sommes amis ."]
    outputs = []
    for seed in ("7", "7", "8"):
        assert main([str(model_dir), *sentences, *SAMPLING, "--seed", seed]) == 0
        outputs.append(capsys.readouterr().out)
    assert outputs[0] == outputs[1] != outputs[2]
    lines = scored_lines(outputs[0])
    assert len(lines) == 4 * len(sentences)
    greedy = texts(loaded, sentences)
    assert {text for _, text in lines} - set(greedy)  # some samples are not greedy search's output
    for first in range(0, len(lines), 4):  # samples best first, each scored by its summed log-probabilities
        scores = [score for score, _ in lines[first : first + 4]]
        assert scores == sorted(scores, reverse=True)
    model, tokenizer = loaded
    transformers.set_seed(3)
    first = translate(model, tokenizer, sentences, do_sample=True, temperature=3.0, num_return_sequences=2)
    transformers.set_seed(3)
    again = translate(
        model, tokenizer, sentences, do_sample=True, temperature=3.0, num_return_sequences=2, output_scores=True
    )
    assert [t.text for t in again] == [t.text for t in first]
    for row, sample in enumerate(again):  # each sample's score: its tokens' log-probabilities, summed
        inputs = tokenizer([sentences[row // 2]], return_tensors="pt")
        ids = torch.tensor(
            [[model.config.decoder_start_token_id, *map(tokenizer.target_vocab().get, sample.output_tokens)]]
        )
        logits = model(**inputs, decoder_input_ids=ids[:, :-1], teacher_forcing=True, use_cache=False).logits
        log_probs = torch.log_softmax(logits.double(), dim=-1).gather(-1, ids[:, 1:, None])
        assert sample.score == pytest.approx(float(log_probs.sum()), abs=1e-4)


def test_top_k_1_sampling_equals_greedy_search(model_dir, loaded, capsys):
    sentences = [*NBEST_SENTENCES, "elle a froid , zorg !"]
    assert main([str(model_dir), *sentences, "--print_scores"]) == 0
    greedy = capsys.readouterr().out
    flags = ["--do_sample", "--top_k", "1", "--temperature", "5", "--top_p", "0.5", "--print_scores"]
    assert main([str(model_dir), *sentences, *flags, "--seed", "0"]) == 0
    assert capsys.readouterr().out == greedy
    sampled = translate(*loaded, sentences, do_sample=True, top_k=1, output_scores=True, num_return_sequences=2)
    assert [(t.text, round(t.score, 4)) for t in sampled[::2]] == [
        (t.text, round(t.score, 4)) for t in translate(*loaded, sentences, output_scores=True)
    ]


@pytest.mark.parametrize(
    "flags, message",
    [
        (["--top_k", "-1", "--do_sample"], "--top_k: got -1, want an integer >= 0"),
        (["--top_k", "1.5", "--do_sample"], "argument --top_k: invalid int value: '1.5'"),
        (["--top_p", "0", "--do_sample"], "--top_p: got 0.0, want a number in (0, 1]"),
        (["--top_p", "1.5", "--do_sample"], "--top_p: got 1.5, want a number in (0, 1]"),
        (["--top_p", "nan", "--do_sample"], "--top_p: got nan, want a number in (0, 1]"),
        (["--temperature", "0", "--do_sample"], "--temperature: got 0.0, want a number > 0"),
        (["--temperature", "-2", "--do_sample"], "--temperature: got -2.0, want a number > 0"),
        (["--top_k", "5"], "--top_k: only sampling uses it; give --do_sample"),
        (
            ["--top_p", "0.9", "--temperature", "2"],
            "--top_p, --temperature: only sampling uses them; give --do_sample",
        ),
        (["--num_return_sequences", "0"], "--num_return_sequences must be at least 1"),
        (["--num_return_sequences", "2"], "--num_return_sequences 2: greedy search returns one sequence; give"),
        (["--num_beams", "2", "--num_return_sequences", "3"], "--num_return_sequences 3: beam search returns at most"),
        (["--length_penalty", "0.5"], "--length_penalty: weighs beam search's scores; give --num_beams > 1"),
        (["--length_penalty", "inf", "--num_beams", "2"], "--length_penalty: got inf, want a finite number"),
    ],
)
def test_bad_generation_flags_are_one_line_parser_errors(tmp_path, capsys, flags, message):
    with pytest.raises(SystemExit) as exit_info:
        main([str(tmp_path / "never-loaded"), "je suis content .", *flags])  # checked before any model loads
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    [error] = [line for line in err.splitlines() if "error" in line]  # argparse's usage, then one error line
    assert error == err.splitlines()[-1] and error.startswith(f"gru-translate: error: {message}"), err


def test_translate_refuses_inconsistent_options_in_one_line(loaded):
    for options, message in [
        ({"top_k": 3}, "top_k: only sampling uses it; give do_sample"),
        ({"num_return_sequences": 2}, "num_return_sequences 2: greedy search returns one sequence"),
        ({"num_beams": 2, "num_return_sequences": 3}, "num_return_sequences 3: beam search returns at most"),
        ({"do_sample": True, "temperature": 0}, "temperature: got 0, want a number > 0"),
    ]:
        with pytest.raises(ValueError, match=re.escape(message)):
            translate(*loaded, ["je suis content ."], **options)


def test_device_flag_names_where_the_model_runs_and_a_bad_one_is_one_line(model_dir, tmp_path, capsys):
    missing = str(tmp_path / "never-loaded")  # an unknown device is named before the model would fail to load
    assert main([missing, "--device", "nonsense", "je suis content ."]) == 2
    assert capsys.readouterr().err == (
        "error: --device nonsense: not a device name (want cpu, cuda, cuda:<index>, mps, ...)\n"
    )
    unavailable = "cuda" if not torch.cuda.is_available() else f"cuda:{torch.cuda.device_count()}"
    assert main([missing, "--device", unavailable, "je suis content ."]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: --device {unavailable}: ") and len(err.splitlines()) == 1, err
    assert main([missing, "--device", "meta", "je suis content ."]) == 2
    assert capsys.readouterr().err.startswith("error: --device meta: ")
    assert main([str(model_dir), "--device", "cpu", "je suis content .", "il est la ."]) == 0
    assert capsys.readouterr().out == "i am happy .\nhe is here .\n"
    assert translate_module.resolve_device(None).type == ("cuda" if torch.cuda.is_available() else "cpu")


@torch.no_grad()
def test_n_best_with_attention_replace_unknown_samples_and_the_prompt(model_dir, loaded, tmp_path, figures, capsys):
    """With N > 1: each returned sequence has its own attention (a heatmap each), `--samples` shows N `< ` lines
    per pair and scores the best, and the prompt answers with N `< ` lines."""
    model, tokenizer = loaded
    sentences = ["je suis content .", "", "elle a froid , zorg !"]
    translations = translate(
        model, tokenizer, sentences, num_beams=3, num_return_sequences=2, output_attentions=True, replace_unknown=True
    )
    plain = translate(model, tokenizer, sentences, num_beams=3, num_return_sequences=2)
    assert [t.text for t in translations] == [t.text for t in plain]  # the pairs' words are all known
    for row, translation in enumerate(translations):
        source = tokenizer([sentences[row // 2]], return_tensors="pt")
        if not translation.output_tokens:
            assert row // 2 == 1 and translation.attention.shape == (0, 1)
            continue
        ids = map(tokenizer.target_vocab().get, translation.output_tokens)
        sequence = torch.tensor([[model.config.decoder_start_token_id, *ids]])
        expected = translate_module.cross_attention(model, source["input_ids"], source["attention_mask"], sequence)
        np.testing.assert_allclose(translation.attention, expected[0].numpy(), atol=1e-5)
    assert translations[0].output_tokens != translations[1].output_tokens

    folder = tmp_path / "heatmaps"
    flags = ["--num_beams", "3", "--num_return_sequences", "2", "--show_attention", str(folder)]
    assert main([str(model_dir), *sentences, *flags]) == 0
    assert sorted(os.listdir(folder)) == [
        "attention_0_0.png",
        "attention_0_1.png",
        "attention_2_0.png",
        "attention_2_1.png",
    ]
    capsys.readouterr()

    pairs_file = tmp_path / "pairs.tsv"
    pairs_file.write_text("I am happy.\tJe suis content.\nHe is here.\tIl est là.\n", encoding="utf-8")
    flags = ["--samples", str(pairs_file), "-n", "2", "--seed", "0", "--num_beams", "2", "--num_return_sequences", "2"]
    assert main([str(model_dir), *flags, "--print_scores"]) == 0
    out = capsys.readouterr().out
    blocks = re.findall(r"^> (.*)\n= (.*)\n< (\S+)\t(.*)\n< (\S+)\t(.*)\n\n", out, flags=re.MULTILINE)
    assert len(blocks) == 2 and ("je suis content .", "i am happy .") in [block[:2] for block in blocks]
    assert all(block[3] == block[1] and float(block[2]) >= float(block[4]) for block in blocks), blocks
    assert "BLEU 100.00" in out  # of the best output of each pair

    arguments = translate_module.parse_args([str(model_dir), "--num_beams", "3", "--num_return_sequences", "3"])
    arguments.print_scores = True
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(sys, "stdin", io.StringIO("je suis content .\n"))
        translate_module.interactive(model, tokenizer, arguments)
    answers = capsys.readouterr().out.splitlines()
    assert (
        len(answers) == 4 and answers[3] == "> " and all(re.fullmatch(r"< -?\d+\.\d{4}\t.+", a) for a in answers[1:3])
    )
    assert answers[0].startswith("> < ") and answers[0].endswith("\ti am happy .")  # the prompt, the best answer
