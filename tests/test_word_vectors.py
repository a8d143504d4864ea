"""word_vectors.py and run_translation.py's --source_embeddings, --target_embeddings and --freeze_embeddings:
word2vec/GloVe/fastText text files (with or without a header, gzipped or not) into the embeddings, the width
checked before any data is read, the loaded matrices frozen or trained."""

import gzip

import pytest
import torch
from runs import TINY

import run_translation
from modeling_gru_seq2seq import GruSeq2SeqForConditionalGeneration, GruSeq2SeqTokenizer
from modeling_gru_seq2seq.commands import UsageError
from modeling_gru_seq2seq.word_vectors import load_word_vectors


def write_vectors(path, vectors: dict, header: bool = True):
    width = len(next(iter(vectors.values())))
    lines = ([f"{len(vectors)} {width}"] if header else []) + [
        f"{word} {' '.join(f'{value:g}' for value in vector)}" for word, vector in vectors.items()
    ]
    text = "\n".join(lines) + "\n"
    if str(path).endswith(".gz"):
        with gzip.open(path, "wt", encoding="utf-8") as handle:
            handle.write(text)
    else:
        path.write_text(text, encoding="utf-8")
    return str(path)


@pytest.mark.parametrize("name, header", [("vectors.vec", True), ("vectors.txt", False), ("vectors.vec.gz", True)])
def test_vectors_of_the_vocabulary_words_are_copied_in(tmp_path, tiny_model, tiny_tokenizer, name, header):
    vectors = {
        "Je": [1.0] * 8,  # normalized: "je"
        "je": [9.0] * 8,  # the same word again: the first vector wins
        "Suis": [0.5, -0.5] * 4,
        "absent": [7.0] * 8,  # no such word in the vocabulary
    }
    path = write_vectors(tmp_path / name, vectors, header)
    embedding = tiny_model.get_input_embeddings()
    before = embedding.weight.detach().clone()
    vocabulary = tiny_tokenizer.get_vocab()
    found, words = load_word_vectors(embedding, path, vocabulary, tiny_tokenizer.normalize, "--source_embeddings")
    assert (found, words) == (2, tiny_tokenizer.source_vocab_size - 4)
    weight = embedding.weight.detach()
    assert torch.equal(weight[vocabulary["je"]], torch.full((8,), 1.0))
    assert torch.equal(weight[vocabulary["suis"]], torch.tensor([0.5, -0.5] * 4))
    others = [index for word, index in vocabulary.items() if word not in ("je", "suis")]
    assert torch.equal(weight[others], before[others])


def test_vectors_of_another_width_are_a_one_line_error(tmp_path, tiny_model, tiny_tokenizer):
    path = write_vectors(tmp_path / "wide.vec", {"je": [1.0] * 9})
    with pytest.raises(UsageError, match=r"line 2: a vector of 9 numbers, but the model's embeddings are 8 wide"):
        load_word_vectors(
            tiny_model.get_input_embeddings(), path, tiny_tokenizer.get_vocab(), tiny_tokenizer.normalize, "--flag"
        )


def test_run_translation_checks_the_width_before_reading_any_data(tmp_path, capsys):
    path = write_vectors(tmp_path / "wide.vec", {"je": [1.0] * 300})
    args = ["--train_file", str(tmp_path / "no such file.txt"), "--source_embeddings", path, "--hidden_size", "32"]
    assert run_translation.main([*args, "--output_dir", str(tmp_path / "out")]) == 2
    assert "--source_embeddings" in capsys.readouterr().err
    assert run_translation.main(["--freeze_embeddings", "--output_dir", str(tmp_path / "out2")]) == 2


SOURCE_VECTORS = {"je": [0.25] * 32, "suis": [-0.5] * 32, "tu": [0.75] * 32}
TARGET_VECTORS = {"i": [0.125] * 32, "am": [-0.25] * 32, "you": [0.5] * 32}


@pytest.mark.slow
@pytest.mark.parametrize("freeze", [True, False])
def test_training_keeps_frozen_vectors_and_moves_the_others(pairs_file, tmp_path, caplog, freeze):
    source = write_vectors(tmp_path / "fr.vec", SOURCE_VECTORS)
    target = write_vectors(tmp_path / "en.vec.gz", TARGET_VECTORS, header=False)
    output_dir = tmp_path / "out"
    args = [*TINY, "--train_file", pairs_file, "--output_dir", str(output_dir), "--do_train", "--max_steps", "5"]
    args += ["--learning_rate", "1e-2", "--eval_strategy", "no", "--save_strategy", "no", "--use_cpu", "true"]
    args += ["--source_embeddings", source, "--target_embeddings", target, "--num_attention_plots", "0"]
    assert run_translation.main([*args, *(["--freeze_embeddings"] if freeze else [])]) == 0
    log = caplog.text
    assert f"--source_embeddings {source}: vectors for 3 of the vocabulary's" in log
    assert f"--target_embeddings {target}: vectors for 3 of the vocabulary's" in log
    model = GruSeq2SeqForConditionalGeneration.from_pretrained(output_dir)
    tokenizer = GruSeq2SeqTokenizer.from_pretrained(output_dir)
    for embedding, vocabulary, vectors in (
        (model.get_input_embeddings(), tokenizer.get_vocab(), SOURCE_VECTORS),
        (model.get_decoder().embedding, tokenizer.target_vocab(), TARGET_VECTORS),
    ):
        for word, vector in vectors.items():
            same = torch.equal(embedding.weight[vocabulary[word]].detach(), torch.tensor(vector))
            assert same == freeze, (word, freeze)
