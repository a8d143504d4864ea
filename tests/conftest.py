"""Shared test setup: one thread (stable on 2 busy cores), offline Hub, generated pairs and the shared Tatoeba
file, and a tiny model: `tiny_tokenizer`, `tiny_config`, `tiny_model` and `saved_model_dir`."""

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import itertools  # noqa: E402
import pathlib  # noqa: E402

import pytest  # noqa: E402
import torch  # noqa: E402

from modeling_gru_seq2seq import (  # noqa: E402
    GruSeq2SeqConfig,
    GruSeq2SeqForConditionalGeneration,
    GruSeq2SeqTokenizer,
    train_word_level,
)
from modeling_gru_seq2seq.pipeline_gru_seq2seq import save_translation_pipeline  # noqa: E402

torch.set_num_threads(1)

REPO_ROOT = pathlib.Path(__file__).resolve().parents[1]
SHARED_PAIRS_FILE = pathlib.Path(
    os.environ.get("GRU_SEQ2SEQ_PAIRS_FILE", REPO_ROOT.parent / "shared" / "data" / "eng-fra.txt")
)


@pytest.fixture(scope="session")
def shared_pairs_file() -> pathlib.Path:
    """The shared 163,630-line Tatoeba file; a missing file fails under CI (`CI=true`), else skips."""
    if not SHARED_PAIRS_FILE.is_file():
        message = f"shared data file {SHARED_PAIRS_FILE} is missing (set GRU_SEQ2SEQ_PAIRS_FILE)"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(message)
        pytest.skip(message)
    return SHARED_PAIRS_FILE


# Generated pairs, in the shared file's layout (English<TAB>French, Tatoeba's style): every test but the ones on
# the shared file itself (marked `shared_data`) runs from a clone of the repository alone.
SUBJECTS_BE = [
    ("I am", "Je suis", "Je ne suis pas"),
    ("You are", "Tu es", "Tu n'es pas"),
    ("He is", "Il est", "Il n'est pas"),
    ("She is", "Elle est", "Elle n'est pas"),
    ("We are", "Nous sommes", "Nous ne sommes pas"),
    ("They are", "Ils sont", "Ils ne sont pas"),
]
ADJECTIVES = [
    ("happy", "content"),
    ("sad", "triste"),
    ("tired", "fatigué"),
    ("ready", "prêt"),
    ("sick", "malade"),
    ("busy", "occupé"),
    ("tall", "grand"),
    ("small", "petit"),
    ("rich", "riche"),
    ("poor", "pauvre"),
    ("young", "jeune"),
    ("old", "vieux"),
    ("free", "libre"),
    ("alone", "seul"),
    ("calm", "calme"),
    ("strong", "fort"),
    ("weak", "faible"),
    ("late", "en retard"),
    ("here", "là"),
    ("lazy", "paresseux"),
    ("brave", "courageux"),
    ("shy", "timide"),
    ("honest", "honnête"),
    ("kind", "gentil"),
    ("funny", "drôle"),
    ("angry", "fâché"),
    ("hungry", "affamé"),
    ("clever", "malin"),
    ("wet", "mouillé"),
    ("safe", "sauf"),
    ("famous", "célèbre"),
    ("polite", "poli"),
    ("rude", "grossier"),
    ("quiet", "tranquille"),
    ("early", "en avance"),
    ("lucky", "chanceux"),
    ("sorry", "désolé"),
    ("serious", "sérieux"),
    ("nervous", "nerveux"),
    ("wise", "sage"),
]
SUBJECTS_HAVE = [
    ("I have", "J'ai", "Je n'ai pas"),
    ("You have", "Tu as", "Tu n'as pas"),
    ("He has", "Il a", "Il n'a pas"),
    ("She has", "Elle a", "Elle n'a pas"),
    ("We have", "Nous avons", "Nous n'avons pas"),
    ("They have", "Ils ont", "Ils n'ont pas"),
]
NOUNS = [
    ("dog", "un chien"),
    ("cat", "un chat"),
    ("car", "une voiture"),
    ("book", "un livre"),
    ("key", "une clé"),
    ("pen", "un stylo"),
    ("job", "un travail"),
    ("plan", "un plan"),
    ("bike", "un vélo"),
    ("map", "une carte"),
    ("bag", "un sac"),
    ("house", "une maison"),
    ("phone", "un téléphone"),
    ("boat", "un bateau"),
    ("hat", "un chapeau"),
    ("gift", "un cadeau"),
    ("ticket", "un billet"),
    ("friend", "un ami"),
    ("garden", "un jardin"),
    ("watch", "une montre"),
]


def generated_pairs() -> list[tuple[str, str]]:
    """1,680 (English, French) pairs, 1,498 of them within the tutorial's 3..25 characters."""
    pairs = []
    for en, fr, fr_not in SUBJECTS_BE:
        for adjective_en, adjective_fr in ADJECTIVES:
            pairs += [
                (f"{en} {adjective_en}.", f"{fr} {adjective_fr}."),
                (f"{en} not {adjective_en}.", f"{fr_not} {adjective_fr}."),
                (f"{en} very {adjective_en}.", f"{fr} très {adjective_fr}."),
                (f"{en} so {adjective_en}!", f"{fr} si {adjective_fr} !"),
                (f"{en} still {adjective_en}.", f"{fr} encore {adjective_fr}."),
                (f"{en} {adjective_en} too.", f"{fr} {adjective_fr} aussi."),
            ]
    for en, fr, fr_not in SUBJECTS_HAVE:
        for noun_en, noun_fr in NOUNS:
            bare = noun_fr.split(" ", 1)[1]
            article = "d'" if bare[0] in "aeiouéh" else "de "
            pairs += [
                (f"{en} a {noun_en}.", f"{fr} {noun_fr}."),
                (f"{en} no {noun_en}.", f"{fr_not} {article}{bare}."),
            ]
    return pairs


@pytest.fixture(scope="session")
def pairs_file(tmp_path_factory) -> str:
    """A pair file of `generated_pairs()`: 1,498 pairs after the tutorial's filters (75 validation, 75 test)."""
    path = tmp_path_factory.mktemp("data") / "pairs.txt"
    path.write_text("".join(f"{en}\t{fr}\n" for en, fr in generated_pairs()), encoding="utf-8")
    return str(path)


# Pairs about names, rare names seen once: trimmed at `--min_count 2`, so that under `--unknown_pairs keep` a
# model learns to write `<unk>` where a rare name was (`names_run`).
NAME_SYLLABLES = ["ka", "lo", "mi", "ru", "te", "zo", "pa", "ni", "go", "be", "sa", "du", "fi", "vo", "ja", "xe"]
NAME_TEMPLATES = [  # (English, French)
    ("My name is {}.", "Je m'appelle {}."),
    ("{} is here.", "{} est ici."),
    ("I see {}.", "Je vois {}."),
    ("{} is hungry.", "{} a faim."),
    ("It's {}.", "C'est {}."),
    ("{} is tired.", "{} est fatigué."),
]

TWO_NAME_TEMPLATES = [("{} and {} are here.", "{} et {} sont ici."), ("{} sees {}.", "{} voit {}.")]


def name_pairs() -> list[tuple[str, str]]:
    """768 (English, French) pairs of names: 256 names of three syllables seen once each, and 64 of two seen
    often. The rare names go in turn through `NAME_TEMPLATES` and, beside Tom before or after them, through
    `TWO_NAME_TEMPLATES`; the frequent ones through all. Too many frequent names to carry in a summary of the
    sentence: the model learns to look at a name where it writes one, and so at a rare one."""
    syllables = NAME_SYLLABLES
    frequent = [(a + b).capitalize() for a in syllables for b in syllables][:64]
    rare = [(a + b + c).capitalize() for a in syllables for b in syllables for c in syllables][::16]
    variants = NAME_TEMPLATES + [  # beside Tom: `"{} sees {}."` -> `"{} sees Tom."` and `"Tom sees {}."`
        (en.format(*names), fr.format(*names))
        for en, fr in TWO_NAME_TEMPLATES
        for names in (("{}", "Tom"), ("Tom", "{}"))
    ]
    pairs = [(en.format(name), fr.format(name)) for name, (en, fr) in zip(rare, itertools.cycle(variants))]
    pairs += [(en.format(name), fr.format(name)) for name in frequent for en, fr in NAME_TEMPLATES]
    for first, second in zip(frequent, frequent[1:] + frequent[:1], strict=True):
        pairs += [(en.format(first, second), fr.format(first, second)) for en, fr in TWO_NAME_TEMPLATES]
    return pairs


@pytest.fixture(scope="session")
def names_file(tmp_path_factory) -> str:
    """A pair file of `name_pairs()`, English<TAB>French."""
    path = tmp_path_factory.mktemp("names") / "names.txt"
    path.write_text("".join(f"{en}\t{fr}\n" for en, fr in name_pairs()), encoding="utf-8")
    return str(path)


@pytest.fixture(scope="session")
def names_run(names_file, tmp_path_factory) -> pathlib.Path:
    """The folder of a `run_translation.py` run on `names_file` with `--unknown_pairs keep --replace_unknown
    --open_test` (trimming at 2, hidden 32, 300 steps, about 10 s): its model writes `<unk>` for a name it never
    saw."""
    import run_translation

    output_dir = tmp_path_factory.mktemp("names_run") / "model"
    flags = ["--train_file", names_file, "--output_dir", str(output_dir), "--min_count", "2"]
    flags += ["--unknown_pairs", "keep", "--replace_unknown", "--open_test"]
    flags += ["--validation_fraction", "0.1", "--test_fraction", "0.1"]
    flags += ["--hidden_size", "32", "--num_layers", "1", "--attention", "general", "--dropout", "0"]
    flags += ["--teacher_forcing_ratio", "1", "--learning_rate", "3e-3", "--per_device_train_batch_size", "32"]
    flags += ["--max_steps", "300", "--eval_strategy", "no", "--save_strategy", "no", "--num_attention_plots", "0"]
    flags += ["--disable_tqdm", "true", "--report_to", "none"]
    assert run_translation.main(flags) == 0
    return output_dir


# A tiny untrained model, built one way for every test that needs one. Function-scoped: each test gets fresh
# objects, so a test that needs a variant sets a field of `tiny_config` before it builds its model. (Models
# that must say something meaningful are trained by `tiny.learn_by_heart`.)
TINY_PAIRS = [
    ("je suis content .", "i am happy ."),
    ("il est la .", "he is here ."),
    ("elle a froid !", "she is cold !"),
]


@pytest.fixture
def tiny_tokenizer() -> GruSeq2SeqTokenizer:
    """The two vocabularies of `TINY_PAIRS`, French to English: 15 source ids and 14 target ids (4 special)."""
    return GruSeq2SeqTokenizer.from_vocabularies(
        train_word_level([fr for fr, _ in TINY_PAIRS]), train_word_level([en for _, en in TINY_PAIRS])
    )


@pytest.fixture
def tiny_config(tiny_tokenizer) -> GruSeq2SeqConfig:
    """`tiny_tokenizer`'s vocabulary sizes, hidden size 8, one layer; every other field the default."""
    return GruSeq2SeqConfig(
        source_vocab_size=tiny_tokenizer.source_vocab_size,
        target_vocab_size=tiny_tokenizer.target_vocab_size,
        hidden_size=8,
        num_layers=1,
    )


@pytest.fixture
def tiny_model(tiny_config) -> GruSeq2SeqForConditionalGeneration:
    """An untrained model of `tiny_config`, its weights drawn after `torch.manual_seed(0)`."""
    torch.manual_seed(0)
    return GruSeq2SeqForConditionalGeneration(tiny_config)


@pytest.fixture
def saved_model_dir(tiny_model, tiny_tokenizer, tmp_path_factory) -> pathlib.Path:
    """`tiny_model` and `tiny_tokenizer` saved with `save_pretrained` (through `save_translation_pipeline`, as
    run_translation.py saves a model) into a folder of its own, `.../model`; generation stops after 20 new
    tokens, and the model being untrained, its outputs run to that limit."""
    tiny_model.generation_config.max_length = 21  # 20 new tokens
    directory = tmp_path_factory.mktemp("saved_model") / "model"
    save_translation_pipeline(tiny_model, tiny_tokenizer, str(directory))
    return directory


# Hypothesis profiles (tests/test_properties.py): `ci` runs 200 examples per property and is loaded when
# CI=true; `dev`, the local default, runs 50. No deadline: timings on shared CPUs vary too much.
from hypothesis import settings  # noqa: E402

settings.register_profile("ci", max_examples=200, deadline=None, print_blob=True)
settings.register_profile("dev", max_examples=50, deadline=None)
settings.load_profile("ci" if os.environ.get("CI", "").lower() == "true" else "dev")
