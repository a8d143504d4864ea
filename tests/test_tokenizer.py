"""The normalizer equals the tutorial's normalize_string; the two-vocabulary tokenizer encodes, decodes,
saves and loads (also as remote code in a process that cannot import the package)."""

import json
import re
import subprocess
import sys
import unicodedata

import pytest
from transformers import AutoTokenizer

from modeling_gru_seq2seq import GruSeq2SeqTokenizer, normalize_string, train_word_level

TRICKY = [
    "Ça va ?",
    "Œuvre d'art.",
    "J'ai 20 ans.",
    "F.B.I.",
    "a,b",
    "Va\u00a0!",
    "Quoi\u202f?",
    "",
    "   ",
    "Élève, écoute!",
    "l'hôtel--très...",
    "N'est-ce pas?!",
    "ÀÉÎÕÜ ñ ß ø",
    "tab\there",
    "\ufeffBOM",
    "Emoji 😀 ok.",
    "Straße",
    "İstanbul",
    "a\u0301b",
    "Ĳ ﬁ",
    "x.y.z",
    "??",
    "...",
]


def tutorial_normalize_string(text: str) -> str:
    """The tutorial's normalize_string, written out with Python's `re` as an independent reference."""
    text = "".join(
        char for char in unicodedata.normalize("NFD", text.lower().strip()) if unicodedata.category(char) != "Mn"
    )
    text = re.sub(r"([,.!?])", r" \1 ", text)
    text = re.sub(r"[^a-zA-Z,.!?]+", r" ", text)
    return re.sub(r"\s+", r" ", text).strip()


@pytest.mark.parametrize("text", TRICKY)
def test_normalizer_matches_the_tutorial_on_tricky_strings(text):
    assert normalize_string(text) == tutorial_normalize_string(text)


@pytest.mark.shared_data
def test_normalizer_matches_the_tutorial_on_every_line_of_shared_file(shared_pairs_file):
    differences = []
    with open(shared_pairs_file, encoding="utf-8") as handle:
        for number, line in enumerate(handle, 1):
            for text in line.rstrip("\n").split("\t"):
                if normalize_string(text) != tutorial_normalize_string(text):
                    differences.append((number, text))
    assert number == 163630
    assert differences == []


@pytest.fixture(scope="module")
def tokenizer():
    source = train_word_level(["Je suis froid.", "Je suis là.", "Il est là!"] * 2, min_count=2)
    target = train_word_level(["I am cold.", "I am here.", "He is here!"] * 2 + ["rare"], min_count=2)
    return GruSeq2SeqTokenizer.from_vocabularies(source, target, "fr", "en")


def test_special_token_ids_and_min_count(tokenizer):
    assert [tokenizer.pad_token_id, tokenizer.bos_token_id, tokenizer.eos_token_id, tokenizer.unk_token_id] == [
        0,
        1,
        2,
        3,
    ]
    assert "rare" not in tokenizer.target_vocab()  # seen once, min_count 2
    assert tokenizer.source_vocab_size == 4 + len({"je", "suis", "froid", ".", "la", "il", "est", "!"})


def test_encode_source_and_target_vocabularies(tokenizer):
    batch = tokenizer(["Je suis froid!", "Il est là zorg"], text_target=["I am cold.", "he is here"])
    source_vocab, target_vocab = tokenizer.get_vocab(), tokenizer.target_vocab()
    assert batch["input_ids"][0] == [source_vocab[w] for w in ["je", "suis", "froid", "!"]] + [2]
    assert batch["input_ids"][1][-2:] == [tokenizer.unk_token_id, 2]  # unknown word, then <eos>
    assert batch["attention_mask"][1] == [1] * 5
    assert batch["labels"][0] == [target_vocab[w] for w in ["i", "am", "cold", "."]] + [2]
    # the tokenizer is back in source mode after encoding targets
    assert tokenizer(["je"])["input_ids"][0][0] == source_vocab["je"]


def test_decode_uses_target_vocabulary_and_keeps_unk(tokenizer):
    labels = tokenizer(text_target=["I am cold.", "he is gone"])["input_ids"]
    assert tokenizer.batch_decode(labels, skip_special_tokens=True) == ["i am cold .", "he is <unk>"]
    assert tokenizer.decode([1] + labels[0] + [0, 0], skip_special_tokens=True) == "i am cold ."
    assert tokenizer.decode(labels[0]) == "i am cold . <eos>"


def test_source_ids_decode_with_use_source_tokenizer_as_marian(tokenizer):
    ids = tokenizer(["Je suis froid!", "Il est là"])["input_ids"]
    assert tokenizer.decode(ids[0], use_source_tokenizer=True) == "je suis froid ! <eos>"
    assert tokenizer.decode(ids[0], skip_special_tokens=True, use_source_tokenizer=True) == "je suis froid !"
    assert tokenizer.batch_decode(ids, skip_special_tokens=True, use_source_tokenizer=True) == [
        "je suis froid !",
        "il est la",
    ]
    assert tokenizer.convert_ids_to_tokens(ids[1], use_source_tokenizer=True) == ["il", "est", "la", "<eos>"]
    assert tokenizer.convert_ids_to_tokens(ids[1][0], use_source_tokenizer=True) == "il"
    assert tokenizer.convert_ids_to_tokens(ids[1], skip_special_tokens=True, use_source_tokenizer=True) == [
        "il",
        "est",
        "la",
    ]


def test_ids_outside_the_vocabulary_raise_instead_of_decoding_to_nothing():
    source = train_word_level(["Je suis très froid ici."] * 2, min_count=2)
    target = train_word_level(["I am cold."] * 2, min_count=2)
    tokenizer = GruSeq2SeqTokenizer.from_vocabularies(source, target, "fr", "en")
    assert tokenizer.source_vocab_size > tokenizer.target_vocab_size  # so the last source id is no target id
    source_id = tokenizer.source_vocab_size - 1
    for call in (
        lambda: tokenizer.decode([4, source_id]),
        lambda: tokenizer.batch_decode([[4], [source_id]]),
        lambda: tokenizer.convert_ids_to_tokens([source_id]),
        lambda: tokenizer.convert_ids_to_tokens(source_id),
        lambda: tokenizer.decode([-100, 4]),
    ):
        with pytest.raises(ValueError, match="outside the target vocabulary .*use_source_tokenizer=True"):
            call()
    with pytest.raises(ValueError, match=f"token id {tokenizer.source_vocab_size} is outside the source vocabulary"):
        tokenizer.decode([tokenizer.source_vocab_size], use_source_tokenizer=True)


def test_save_and_load_round_trip(tokenizer, tmp_path):
    tokenizer.save_pretrained(tmp_path)
    assert {"tokenizer.json", "target_tokenizer.json", "tokenizer_config.json"} <= {p.name for p in tmp_path.iterdir()}
    for loaded in (GruSeq2SeqTokenizer.from_pretrained(tmp_path), AutoTokenizer.from_pretrained(tmp_path)):
        assert type(loaded) is GruSeq2SeqTokenizer
        texts = (["Je suis là, zorg."], ["He is here!"])
        assert loaded(texts[0], text_target=texts[1]) == tokenizer(texts[0], text_target=texts[1])
        assert (loaded.source_lang, loaded.target_lang) == ("fr", "en")


REMOTE_SCRIPT = """
import json, sys
sys.modules["modeling_gru_seq2seq"] = None  # the package is installed: prove the saved files suffice
from transformers import AutoTokenizer
tokenizer = AutoTokenizer.from_pretrained(sys.argv[1], trust_remote_code=True)
batch = tokenizer(["Je suis là, zorg."], text_target=["He is here!"])
print(json.dumps({"module": type(tokenizer).__module__, "class": type(tokenizer).__name__,
                  "batch": dict(batch), "decoded": tokenizer.decode(batch["labels"][0], skip_special_tokens=True)}))
"""


def test_remote_code_loads_in_fresh_process(tokenizer, tmp_path):
    tokenizer.save_pretrained(tmp_path)
    assert (tmp_path / "tokenization_gru_seq2seq.py").is_file()
    result = subprocess.run(
        [sys.executable, "-c", REMOTE_SCRIPT, str(tmp_path)], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    loaded = json.loads(result.stdout.strip().splitlines()[-1])
    assert loaded["class"] == "GruSeq2SeqTokenizer"
    assert not loaded["module"].startswith("modeling_gru_seq2seq")
    assert loaded["batch"] == dict(tokenizer(["Je suis là, zorg."], text_target=["He is here!"]))
    assert loaded["decoded"] == "he is here !"


@pytest.mark.parametrize(
    "text, expected",
    [
        ("Привет, мир!", "привет , мир !"),
        ("Γειά σου, Κόσμε!", "γειά σου , κόσμε !"),
        ("مرحبا بالعالم!", "مرحبا بالعالم !"),
        ("私は学生です。", "私 は 学 生 で す 。"),
        ("今日は、いい天気。", "今 日 は 、 い い 天 気 。"),
        ("ＡＢＣ，ｄ！", "abc , d !"),
        ("Ça va, Marie-Ève ?", "ça va , marie ève ?"),
        ("  42 wörds -- here  ", "wörds here"),
    ],
)
def test_unicode_normalization_keeps_every_script(text, expected):
    assert normalize_string(text, "unicode") == expected
    assert normalize_string(expected, "unicode") == expected


def test_the_normalization_is_saved_with_the_tokenizer(tmp_path):
    words = train_word_level(["привет , мир !"], normalization="unicode")
    GruSeq2SeqTokenizer.from_vocabularies(words, words, "ru", "en").save_pretrained(tmp_path)
    loaded = GruSeq2SeqTokenizer.from_pretrained(tmp_path)
    assert loaded.normalization == "unicode"
    assert loaded.normalize("ПРИВЕТ, Мир!") == "привет , мир !"
    assert loaded.convert_ids_to_tokens(loaded("Привет, мир!").input_ids) == ["привет", ",", "мир", "!", "<eos>"]
    ascii_words = train_word_level(["a b"])
    assert GruSeq2SeqTokenizer.from_vocabularies(ascii_words, ascii_words).normalization == "ascii"


# `unicode`, version 2: joiners stay inside words, and the punctuation of other scripts is split off and kept

UNICODE_CASES = [
    ("ab\u200dcd", "ab\u200dcd", "ab cd"),  # a zero-width joiner inside a word
    ("می\u200cخواهم", "می\u200cخواهم", "می خواهم"),  # Persian: ZWNJ inside an ordinary word
    ("چطوری؟", "چطوری ؟", "چطوری"),  # the Arabic question mark
    ("¿Qué? ¡Hola!", "¿ qué ? ¡ hola !", "qué ? hola !"),
    ("नमस्ते।", "नमस्ते ।", "नमस्ते"),  # the Devanagari danda
    ("a، b؛ c", "a ، b ؛ c", "a b c"),
    ("\u200dab\u200c cd", "ab cd", "ab cd"),  # joiners at a word's edge are not words
    ("Привет, мир!", "привет , мир !", "привет , мир !"),
]


@pytest.mark.parametrize("text, version_2, version_1", UNICODE_CASES)
def test_unicode_normalization_keeps_joiners_in_words_and_splits_other_punctuation(text, version_2, version_1):
    assert normalize_string(text, "unicode") == version_2
    assert normalize_string(text, "unicode", 1) == version_1


def test_a_model_saved_with_the_first_unicode_rules_keeps_them(tmp_path):
    """A tokenizer saved before version 2 (its config holds no version, its normalizer the old rules) reads as
    version 1, and data prepared for it is normalized by those rules; new ones get version 2."""
    from data_scripts.prepare_tatoeba import PrepareArguments, read_pairs
    from modeling_gru_seq2seq.tokenization_gru_seq2seq import UNICODE_NORMALIZER_V1

    new = GruSeq2SeqTokenizer.from_vocabularies(
        train_word_level(["ab\u200dcd"], normalization="unicode"), train_word_level(["x"], normalization="unicode")
    )
    assert (new.normalization, new.normalization_version) == ("unicode", 2)
    old_source, old_target = (train_word_level([text], normalization="unicode") for text in ("ab cd", "x"))
    old_source.normalizer = old_target.normalizer = UNICODE_NORMALIZER_V1
    GruSeq2SeqTokenizer.from_vocabularies(old_source, old_target).save_pretrained(tmp_path)
    settings = json.loads((tmp_path / "tokenizer_config.json").read_text(encoding="utf-8"))
    for key in ("normalization", "normalization_version"):
        settings.pop(key)
    (tmp_path / "tokenizer_config.json").write_text(json.dumps(settings), encoding="utf-8")
    old = GruSeq2SeqTokenizer.from_pretrained(tmp_path)
    assert (old.normalization, old.normalization_version) == ("unicode", 1)
    assert old.normalize("ab\u200dcd") == "ab cd" and old("ab\u200dcd")["input_ids"][:2] != [3, 3]
    pairs = tmp_path / "pairs.txt"
    pairs.write_text("x\tab\u200dcd\n", encoding="utf-8")
    args = PrepareArguments(normalization="unicode")
    assert read_pairs(str(pairs), args)["fr"] == ["ab\u200dcd"]
    args.normalization_version = old.normalization_version
    assert read_pairs(str(pairs), args)["fr"] == ["ab cd"]
