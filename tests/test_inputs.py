"""Inputs with nothing to translate, or that do not pair up: empty in, empty out, and one line for the rest."""

import pytest
from test_subword import PAIRS, SOURCES, TARGETS, subword_tokenizer
from tiny import PAIRS as WORD_PAIRS
from tiny import learn_by_heart

from modeling_gru_seq2seq import TranslationPipeline
from modeling_gru_seq2seq import translate as translate_command
from modeling_gru_seq2seq.pipeline_gru_seq2seq import save_translation_pipeline

BLANK = ["", "   ", "\u200b", "\u200b\u200d\u2060", "\t\n"]


@pytest.fixture(scope="module", params=["word", "bpe"])
def translator(request):
    if request.param == "word":
        model, tokenizer = learn_by_heart(WORD_PAIRS)
        first = WORD_PAIRS[0]
    else:
        model, tokenizer = learn_by_heart(PAIRS, tokenizer=subword_tokenizer("bpe"), vocabulary="bpe")
        first = PAIRS[0]
    return TranslationPipeline(model=model.eval(), tokenizer=tokenizer), first


def test_the_pipeline_translates_nothing_to_nothing(translator):
    """Empty, spaces and zero-width characters translate to "" (today a model invents a sentence for them), alone,
    in a list, beside a sentence and batched; `[]` gives `[]`."""
    translator, (source, target) = translator
    for text in BLANK:
        assert translator(text) == [{"translation_text": ""}]
    assert translator(["", ""]) == [{"translation_text": ""}] * 2
    assert translator(["", source, "\u200b"], batch_size=2) == [
        {"translation_text": ""},
        {"translation_text": target},
        {"translation_text": ""},
    ]
    assert translator([]) == []
    assert translator("", num_beams=2, num_return_sequences=2) == [{"translation_text": ""}] * 2


@pytest.mark.parametrize(
    "inputs, kwargs, message",
    [
        (None, {}, "inputs: got None, want a string or a list of strings"),
        (5, {}, "inputs: got 5, want a string or a list of strings"),
        (["a", None], {}, "inputs: got a list holding None, want a string or a list of strings"),
        ("Je suis content.", {"batch_size": 0}, "batch_size: got 0, want an integer >= 1"),
    ],
)
def test_the_pipeline_refuses_other_inputs_in_one_line(translator, inputs, kwargs, message):
    translator, _ = translator
    with pytest.raises(ValueError) as error:
        translator(inputs, **kwargs)
    assert str(error.value) == message


def test_translate_and_gru_translate_leave_invisible_lines_empty(tmp_path, capsys):
    model, tokenizer = learn_by_heart(PAIRS, tokenizer=subword_tokenizer("bpe"), vocabulary="bpe")
    results = translate_command.translate(model.eval(), tokenizer, ["\u200b", SOURCES[0], "  "])
    assert [result.text for result in results] == ["", TARGETS[0], ""]
    save_translation_pipeline(model, tokenizer, str(tmp_path / "model"))
    lines = tmp_path / "lines.txt"
    lines.write_text(f"\u200b\n{SOURCES[1]}\n\n", encoding="utf-8")
    assert translate_command.main([str(tmp_path / "model"), "--input_file", str(lines)]) == 0
    assert capsys.readouterr().out == f"\n{TARGETS[1]}\n\n"


def test_sources_and_targets_of_different_counts_are_refused(tiny_tokenizer):
    with pytest.raises(ValueError, match=r"^text and text_target: got 3 sources and 2 targets, want one target per"):
        tiny_tokenizer(["je suis content .", "il est la .", "elle a froid !"], text_target=["i am happy .", "he"])
    paired = tiny_tokenizer(["je suis content ."], text_target=["i am happy ."])
    assert len(paired["input_ids"]) == len(paired["labels"]) == 1
