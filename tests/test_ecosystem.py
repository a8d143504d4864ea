"""The model as transformers' own translation models behave: `vocab_size` and transition scores, embedding
accessors and resizing, hidden states, stop strings, assisted decoding refused in one line, tokenizer length
limits, the calls transformers' example `run_translation.py` makes, re-saved models as pipelines, the
pipeline from objects with transformers 4's arguments, and evaluate's way of calling pipeline and metric."""

import json
import logging
import os
import subprocess
import sys

import numpy as np
import pytest
import torch
from datasets import Dataset
from evaluate import TranslationEvaluator
from tiny import PAIRS, SOURCES, TARGETS, learn_by_heart
from transformers import (
    AutoConfig,
    AutoModel,
    AutoModelForSeq2SeqLM,
    AutoTokenizer,
    DataCollatorForSeq2Seq,
    Seq2SeqTrainer,
    Seq2SeqTrainingArguments,
    default_data_collator,
    pipeline,
)

from modeling_gru_seq2seq import (
    GruSeq2SeqConfig,
    GruSeq2SeqForConditionalGeneration,
    GruSeq2SeqModel,
    TranslationPipeline,
)
from modeling_gru_seq2seq.metrics import load_sacrebleu_chrf
from modeling_gru_seq2seq.pipeline_gru_seq2seq import save_translation_pipeline

LONG_SOURCE = " ".join(["je suis content ."] * 40)  # 160 words


def trained(decoder_type: str = "luong"):
    """A tiny model that has learned `PAIRS` by heart (about a second), and its tokenizer."""
    model, tokenizer = learn_by_heart(PAIRS, decoder_type=decoder_type)
    return model.eval(), tokenizer


@pytest.fixture(scope="module")
def model_and_tokenizer():
    return trained()


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory, model_and_tokenizer):
    directory = tmp_path_factory.mktemp("ecosystem") / "model"
    save_translation_pipeline(*model_and_tokenizer, directory)
    return directory


def source_batch(tokenizer, sentences=SOURCES[:3]):
    return tokenizer(sentences, padding=True, return_tensors="pt")


# ---------------------------------------------------------------- the model API


def test_vocab_size_is_the_target_vocabulary_and_transition_scores_work(model_and_tokenizer):
    model, tokenizer = model_and_tokenizer
    assert model.config.vocab_size == model.config.target_vocab_size == tokenizer.target_vocab_size
    assert model.config.source_vocab_size != model.config.vocab_size  # the two vocabularies differ here
    assert GruSeq2SeqConfig(vocab_size=9).target_vocab_size == 9

    output = model.generate(
        **source_batch(tokenizer), max_new_tokens=6, output_scores=True, return_dict_in_generate=True
    )
    transition_scores = model.compute_transition_scores(output.sequences, output.scores, normalize_logits=True)
    assert transition_scores.shape == (3, len(output.scores))
    best = torch.stack([scores.log_softmax(-1).amax(-1) for scores in output.scores], dim=1)
    finished = output.sequences[:, 1:] == tokenizer.pad_token_id  # after <eos>: padding, scored 0
    torch.testing.assert_close(transition_scores[~finished], best[~finished])

    beams = model.generate(
        **source_batch(tokenizer),
        max_new_tokens=6,
        num_beams=3,
        output_scores=True,
        return_dict_in_generate=True,
        length_penalty=0.0,
    )
    beam_scores = model.compute_transition_scores(beams.sequences, beams.scores, beams.beam_indices)
    torch.testing.assert_close(beam_scores.sum(dim=1), beams.sequences_scores)


def test_embedding_accessors_encoder_and_decoder(tiny_config):
    model, _ = trained()
    assert model.get_input_embeddings() is model.encoder.embedding
    assert model.get_output_embeddings() is model.decoder.out
    assert model.get_encoder() is model.encoder and model.get_decoder() is model.decoder
    new_embedding = torch.nn.Embedding(model.config.source_vocab_size, model.config.hidden_size)
    model.set_input_embeddings(new_embedding)
    assert model.encoder.embedding is new_embedding
    new_head = torch.nn.Linear(model.config.hidden_size, model.config.target_vocab_size)
    model.set_output_embeddings(new_head)
    assert model.decoder.out is new_head
    tiny_config.tie_word_embeddings = True
    tied = GruSeq2SeqForConditionalGeneration(tiny_config)
    assert tied.get_output_embeddings().weight is tied.decoder.embedding.weight


@pytest.mark.parametrize("mean_resizing", [True, False])
def test_resize_token_embeddings_resizes_the_source_side_only(tmp_path, mean_resizing):
    model, tokenizer = trained()
    assert len(tokenizer) == model.config.source_vocab_size == model.get_input_embeddings().num_embeddings
    old_source = model.get_input_embeddings().weight.detach().clone()
    old_head = model.get_output_embeddings().weight.detach().clone()
    old_target_size = model.config.target_vocab_size
    new_size = len(tokenizer) + 5

    returned = model.resize_token_embeddings(new_size, mean_resizing=mean_resizing)
    assert returned is model.get_input_embeddings() and returned.weight.shape == (new_size, 32)
    torch.testing.assert_close(returned.weight[: len(tokenizer)], old_source)
    assert torch.isfinite(returned.weight).all()
    assert model.config.source_vocab_size == new_size
    assert model.config.target_vocab_size == model.config.vocab_size == old_target_size
    torch.testing.assert_close(model.get_output_embeddings().weight, old_head)
    assert model.decoder.embedding.num_embeddings == old_target_size

    new_word = torch.tensor([[new_size - 1, 4, tokenizer.eos_token_id]])
    assert model.generate(input_ids=new_word, max_new_tokens=5).shape[0] == 1
    model.save_pretrained(tmp_path)
    reloaded = GruSeq2SeqForConditionalGeneration.from_pretrained(tmp_path)
    assert reloaded.get_input_embeddings().num_embeddings == new_size


def test_missing_decoder_inputs_is_one_clear_error(model_and_tokenizer):
    model, tokenizer = model_and_tokenizer
    with pytest.raises(ValueError, match="needs `labels` or `decoder_input_ids`.*DataCollatorForSeq2Seq") as error:
        model(**source_batch(tokenizer))
    assert "\n" not in str(error.value)


@pytest.mark.parametrize("decoder_type, width", [("luong", 1), ("bahdanau", 2)])
def test_base_model_under_automodel_gives_what_the_output_layer_reads(tmp_path, decoder_type, width, caplog):
    """`AutoModel` opens a saved translation model as `GruSeq2SeqModel` (as `MarianModel`): its
    `last_hidden_state` through the translation model's output layer gives the translation model's logits;
    the output layer's weights are dropped with a note; `encoder_last_hidden_state` is the encoder's."""
    model, tokenizer = trained(decoder_type)
    model.save_pretrained(tmp_path)
    assert json.loads((tmp_path / "config.json").read_text())["auto_map"]["AutoModel"] == (
        "modeling_gru_seq2seq.GruSeq2SeqModel"
    )
    with caplog.at_level(logging.WARNING):
        base = AutoModel.from_pretrained(tmp_path).eval()
    assert type(base) is GruSeq2SeqModel
    assert "has no output layer: the checkpoint's decoder.out.bias, decoder.out.weight are unused" in caplog.text
    assert not hasattr(base, "generate") or base.get_output_embeddings() is None
    batch = tokenizer(SOURCES[:3], text_target=TARGETS[:3], padding=True, return_tensors="pt")
    labels = batch["labels"].masked_fill(batch["labels"] == tokenizer.pad_token_id, -100)
    with torch.no_grad():
        head = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], labels=labels)
        outputs = base(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], labels=labels)
    assert outputs.last_hidden_state.shape == (*labels.shape, width * model.config.hidden_size)
    torch.testing.assert_close(
        model.get_output_embeddings()(outputs.last_hidden_state) * (labels != -100)[..., None], head.logits
    )
    torch.testing.assert_close(outputs.encoder_last_hidden_state, head.encoder_last_hidden_state)
    with pytest.raises(ValueError, match="always reads the given target tokens"):
        base(input_ids=batch["input_ids"], labels=labels, teacher_forcing=False)
    with pytest.raises(ValueError, match="missing: decoder.out.bias, decoder.out.weight"):
        base.save_pretrained(tmp_path / "base")
        GruSeq2SeqForConditionalGeneration.from_pretrained(tmp_path / "base")


def test_base_model_from_the_saved_code_alone_and_older_folders(tmp_path, model_dir):
    """`AutoModel` with `trust_remote_code` where the package cannot be imported; a folder saved before the base
    model existed (no `AutoModel` in `auto_map`) still opens through `AutoModelForSeq2SeqLM`."""
    script = (
        "import sys; sys.modules['modeling_gru_seq2seq'] = None\n"
        "from transformers import AutoModel\n"
        f"model = AutoModel.from_pretrained({str(model_dir)!r}, trust_remote_code=True)\n"
        "print(type(model).__name__, model.config.architectures)"
    )
    result = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "HF_MODULES_CACHE": str(tmp_path / "modules")},
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split()[0] == "GruSeq2SeqModel"
    assert "has no output layer" in result.stderr
    older = tmp_path / "older"
    older.mkdir()
    for path in model_dir.iterdir():
        (older / path.name).write_bytes(path.read_bytes())
    config = json.loads((older / "config.json").read_text())
    del config["auto_map"]["AutoModel"]
    (older / "config.json").write_text(json.dumps(config))
    loaded = AutoModelForSeq2SeqLM.from_pretrained(older, trust_remote_code=True)
    assert type(loaded).__name__ == "GruSeq2SeqForConditionalGeneration"


def test_gradient_checkpointing_is_refused_in_one_line_saying_why(model_and_tokenizer):
    with pytest.raises(ValueError, match="gradient checkpointing is not supported: a GRU layer keeps only") as error:
        model_and_tokenizer[0].gradient_checkpointing_enable()
    assert "\n" not in str(error.value)
    with pytest.raises(ValueError, match="gradient checkpointing is not supported"):
        model_and_tokenizer[0].activation_checkpointing_enable()


@pytest.mark.parametrize("decoder_type", ["luong", "bahdanau"])
def test_output_hidden_states(decoder_type):
    model, tokenizer = trained(decoder_type)
    batch = tokenizer(
        SOURCES[:3], text_target=["i am happy .", "he is", "she is cold !"], padding=True, return_tensors="pt"
    )
    labels = batch["labels"].masked_fill(batch["labels"] == tokenizer.pad_token_id, -100)
    inputs = {"input_ids": batch["input_ids"], "attention_mask": batch["attention_mask"]}
    assert model(**inputs, labels=labels).encoder_hidden_states is None
    for teacher_forcing in (True, False):
        output = model(**inputs, labels=labels, output_hidden_states=True, teacher_forcing=teacher_forcing)
        source_embeddings, encoder_top = output.encoder_hidden_states
        assert source_embeddings.shape == encoder_top.shape == (3, batch["input_ids"].shape[1], 32)
        torch.testing.assert_close(source_embeddings, model.encoder.embedding(batch["input_ids"]))
        torch.testing.assert_close(encoder_top, output.encoder_last_hidden_state)
        target_embeddings, decoder_top = output.decoder_hidden_states
        assert target_embeddings.shape == decoder_top.shape == (3, labels.shape[1], 32)
        decoded = labels != -100  # these labels have no gaps: decoded up to the last one
        decoder_inputs = model.prepare_decoder_input_ids_from_labels(labels)
        if teacher_forcing:
            torch.testing.assert_close(target_embeddings[decoded], model.decoder.embedding(decoder_inputs)[decoded])
        assert (target_embeddings[~decoded] == 0).all() and (decoder_top[~decoded] == 0).all()
        assert (decoder_top[decoded].abs().sum(-1) > 0).all()

    generated = model.generate(
        **inputs, max_new_tokens=4, num_beams=2, output_hidden_states=True, return_dict_in_generate=True
    )
    assert len(generated.encoder_hidden_states) == 2  # per sentence, not per beam (as BART's)
    assert generated.encoder_hidden_states[1].shape == (3, batch["input_ids"].shape[1], 32)
    assert all(len(step) == 2 and step[1].shape == (6, 1, 32) for step in generated.decoder_hidden_states)


def test_stop_strings_match_target_words(model_and_tokenizer):
    model, tokenizer = model_and_tokenizer
    inputs = tokenizer(["je suis content .", "nous sommes amis ."], padding=True, return_tensors="pt")
    full = tokenizer.batch_decode(model.generate(**inputs, max_new_tokens=8), skip_special_tokens=True)
    assert full == ["i am happy .", "we are friends ."]
    for stop_strings, expected in (
        (["am"], ["i am", "we are friends ."]),
        (["am happy", "are"], ["i am happy", "we are"]),
    ):
        output = model.generate(**inputs, max_new_tokens=8, stop_strings=stop_strings, tokenizer=tokenizer)
        assert tokenizer.batch_decode(output, skip_special_tokens=True) == expected


@pytest.mark.parametrize("kwargs", ["assistant_model", "prompt_lookup_num_tokens"])
def test_assisted_decoding_is_refused_in_one_line(model_and_tokenizer, kwargs):
    model, tokenizer = model_and_tokenizer
    extra = {"assistant_model": model} if kwargs == "assistant_model" else {"prompt_lookup_num_tokens": 2}
    with pytest.raises(ValueError, match="cannot be rewound") as error:
        model.generate(**source_batch(tokenizer), max_new_tokens=4, **extra)
    assert "\n" not in str(error.value)


def test_tokenizer_model_max_length_and_warned_cuts(tmp_path, model_and_tokenizer, caplog):
    _, tokenizer = model_and_tokenizer
    assert tokenizer.model_max_length == 100
    with caplog.at_level(logging.WARNING):
        encoded = tokenizer([LONG_SOURCE, "je suis"], truncation=True)
    assert [len(ids) for ids in encoded["input_ids"]] == [100, 3]
    assert encoded["input_ids"][0][-1] == tokenizer.eos_token_id
    assert "cut 1 of 2 source sequences to 100 tokens" in caplog.text and "#0: 161" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        labels = tokenizer(text_target=["i am happy . " * 5], max_length=6, truncation=True)["input_ids"]
    assert len(labels[0]) == 6 and "cut 1 of 1 target sequences to 6 tokens" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        tokenizer(SOURCES, truncation=True)
    assert "cut" not in caplog.text

    tokenizer.save_pretrained(tmp_path)
    assert json.loads((tmp_path / "tokenizer_config.json").read_text())["model_max_length"] == 100
    saved_unset = json.loads((tmp_path / "tokenizer_config.json").read_text())
    saved_unset["model_max_length"] = int(1e30)  # what earlier versions saved
    (tmp_path / "tokenizer_config.json").write_text(json.dumps(saved_unset))
    assert AutoTokenizer.from_pretrained(tmp_path).model_max_length == 100


# ---------------------------------------------------------------- transformers' example script, replayed


def example_script_datasets(tokenizer, pad_to_max_length: bool):
    """`preprocess_function` of transformers' `examples/pytorch/translation/run_translation.py`."""
    raw = Dataset.from_dict({"translation": [{"fr": fr, "en": en} for fr, en in PAIRS]})
    padding = "max_length" if pad_to_max_length else False

    def preprocess_function(examples):
        inputs = [example["fr"] for example in examples["translation"]]
        targets = [example["en"] for example in examples["translation"]]
        model_inputs = tokenizer(inputs, text_target=targets, max_length=12, padding=padding, truncation=True)
        if padding == "max_length":  # --ignore_pad_token_for_loss
            model_inputs["labels"] = [
                [(t if t != tokenizer.pad_token_id else -100) for t in label] for label in model_inputs["labels"]
            ]
        return model_inputs

    return raw.map(preprocess_function, batched=True, remove_columns=["translation"])


@pytest.mark.parametrize("pad_to_max_length, label_smoothing", [(False, 0.1), (True, 0.0)])
def test_transformers_example_script_calls(tmp_path, model_dir, pad_to_max_length, label_smoothing):
    config = AutoConfig.from_pretrained(model_dir, trust_remote_code=True)
    tokenizer = AutoTokenizer.from_pretrained(model_dir, trust_remote_code=True)
    model = AutoModelForSeq2SeqLM.from_pretrained(model_dir, config=config, trust_remote_code=True)
    assert model.get_input_embeddings().weight.shape[0] == len(tokenizer)  # the script's resize check
    dataset = example_script_datasets(tokenizer, pad_to_max_length)
    if pad_to_max_length:
        assert all(len(ids) == 12 for ids in dataset["input_ids"])
        collator = default_data_collator
    else:
        collator = DataCollatorForSeq2Seq(tokenizer, model=model, label_pad_token_id=-100)
    metric = load_sacrebleu_chrf()

    def compute_metrics(eval_preds):
        predictions, labels = eval_preds
        labels = np.where(labels != -100, labels, tokenizer.pad_token_id)
        decoded = tokenizer.batch_decode(predictions, skip_special_tokens=True)
        references = [[label] for label in tokenizer.batch_decode(labels, skip_special_tokens=True)]
        return {"bleu": metric.compute(predictions=decoded, references=references)["bleu"]}

    args = Seq2SeqTrainingArguments(
        output_dir=str(tmp_path),
        max_steps=2,
        per_device_train_batch_size=4,
        per_device_eval_batch_size=4,
        learning_rate=1e-4,
        report_to="none",
        use_cpu=True,
        disable_tqdm=True,
        save_strategy="no",
        label_smoothing_factor=label_smoothing,
        predict_with_generate=True,
        generation_max_length=12,
    )
    trainer = Seq2SeqTrainer(
        model=model,
        args=args,
        train_dataset=dataset,
        eval_dataset=dataset,
        processing_class=tokenizer,
        data_collator=collator,
        compute_metrics=compute_metrics,
    )
    assert np.isfinite(trainer.train().training_loss)
    metrics = trainer.evaluate(max_length=12, num_beams=2)
    assert np.isfinite(metrics["eval_loss"]) and metrics["eval_bleu"] > 50  # learned by heart; 2 tiny steps
    trainer.save_model()
    assert (tmp_path / "pipeline_gru_seq2seq.py").is_file()


def test_max_length_padding_with_label_smoothing_stops_in_one_line(tmp_path, model_dir):
    tokenizer = AutoTokenizer.from_pretrained(model_dir, trust_remote_code=True)
    model = AutoModelForSeq2SeqLM.from_pretrained(model_dir, trust_remote_code=True)
    args = Seq2SeqTrainingArguments(
        output_dir=str(tmp_path),
        max_steps=1,
        per_device_train_batch_size=4,
        report_to="none",
        use_cpu=True,
        disable_tqdm=True,
        save_strategy="no",
        label_smoothing_factor=0.1,
    )
    trainer = Seq2SeqTrainer(
        model=model,
        args=args,
        train_dataset=example_script_datasets(tokenizer, True),
        processing_class=tokenizer,
        data_collator=default_data_collator,
    )
    with pytest.raises(ValueError, match="needs `labels` or `decoder_input_ids`"):
        trainer.train()


# ---------------------------------------------------------------- the translation pipeline


RESAVE_SCRIPT = """
import json, sys
sys.modules["modeling_gru_seq2seq"] = None  # only the saved code
from transformers import AutoModelForSeq2SeqLM, AutoTokenizer, pipeline
source, target = sys.argv[1:]
model = AutoModelForSeq2SeqLM.from_pretrained(source, trust_remote_code=True)
tokenizer = AutoTokenizer.from_pretrained(source, trust_remote_code=True)
model.config.custom_pipelines = {}  # as a config that went through someone else's script might be
model.save_pretrained(target)
tokenizer.save_pretrained(target)
translator = pipeline("translation", model=target, trust_remote_code=True)
print(json.dumps([type(model).__module__, translator("je suis content .")]))
"""


def test_a_model_resaved_by_anyone_opens_as_a_pipeline(tmp_path, model_dir):
    model, tokenizer = trained()
    model.config.custom_pipelines = {}
    model.save_pretrained(tmp_path / "by_hand")  # the package's class
    tokenizer.save_pretrained(tmp_path / "by_hand")
    translator = pipeline("translation", model=str(tmp_path / "by_hand"), trust_remote_code=True)
    assert translator("je suis content .") == [{"translation_text": "i am happy ."}]

    environment = {**os.environ, "HF_MODULES_CACHE": str(tmp_path / "modules")}
    result = subprocess.run(
        [sys.executable, "-c", RESAVE_SCRIPT, str(model_dir), str(tmp_path / "resaved")],
        capture_output=True,
        text=True,
        timeout=120,
        env=environment,
    )
    assert result.returncode == 0, result.stderr
    module, translation = json.loads(result.stdout.strip().splitlines()[-1])
    assert module.startswith("transformers_modules.")  # re-saved from the code saved with the model
    assert (tmp_path / "resaved" / "pipeline_gru_seq2seq.py").is_file()
    assert "translation" in json.loads((tmp_path / "resaved" / "config.json").read_text())["custom_pipelines"]
    assert translation == [{"translation_text": "i am happy ."}]


def test_pipeline_from_objects_takes_transformers_4_arguments(model_and_tokenizer, caplog):
    model, tokenizer = model_and_tokenizer
    translator = TranslationPipeline(model=model, tokenizer=tokenizer)
    expected = tokenizer.batch_decode(model.generate(**source_batch(tokenizer, SOURCES[:2])), skip_special_tokens=True)
    assert translator(SOURCES[:2]) == [{"translation_text": text} for text in expected]
    assert translator(SOURCES[0], src_lang="fr", tgt_lang="en_XX") == [{"translation_text": expected[0]}]
    with pytest.raises(ValueError, match="src_lang='de', but this model translates fr to en"):
        translator(SOURCES[0], src_lang="de")
    with pytest.raises(ValueError, match="tgt_lang='es'"):
        TranslationPipeline(model=model, tokenizer=tokenizer, tgt_lang="es")

    ids = translator(SOURCES[0], return_tensors=True)[0]["translation_token_ids"]
    assert ids.tolist() == model.generate(**source_batch(tokenizer, SOURCES[:1]))[0].tolist()
    assert "translation_token_ids" in translator(SOURCES[0], return_text=False)[0]
    assert translator(SOURCES[0], clean_up_tokenization_spaces=True) == [{"translation_text": "i am happy."}]
    with caplog.at_level(logging.WARNING):
        (long_translation,) = translator(LONG_SOURCE, truncation=True, max_new_tokens=5)
    assert "cut 1 of 1 source sequences to 100 tokens" in caplog.text and long_translation["translation_text"]


def test_evaluate_calls_pipeline_and_metric_as_its_translation_evaluator(model_and_tokenizer):
    """evaluate 0.4's `TranslationEvaluator.compute` itself fails on transformers 5 before it reaches any
    pipeline (it names `transformers.TFPreTrainedModel`); what it does next is replayed: the pipeline called
    with its `PIPELINE_KWARGS` (`truncation=True`), the metric with one plain-string reference per input."""
    translator = TranslationPipeline(model=model_and_tokenizer[0], tokenizer=model_and_tokenizer[1])
    outputs = translator(SOURCES, **TranslationEvaluator.PIPELINE_KWARGS)
    predictions = [output["translation_text"] for output in outputs]
    metric = load_sacrebleu_chrf()
    flat = metric.compute(predictions=predictions, references=TARGETS)
    assert flat == metric.compute(predictions=predictions, references=[[target] for target in TARGETS])
    assert flat["bleu"] == pytest.approx(100.0)


REPLACE_UNKNOWN_SCRIPT = """
import json, sys
sys.modules["modeling_gru_seq2seq"] = None  # only the code saved with the model
from transformers import pipeline
translator = pipeline("translation", model=sys.argv[1], trust_remote_code=True)
sentences = ["Je vois Zorglub.", "Tom voit Zorglub.", "Zorglub a faim."]
results = {
    "plain": translator(sentences[0]),
    "one": translator(sentences[0], replace_unknown=True),
    "batched": translator(sentences, replace_unknown=True, batch_size=2),
    "beams": translator(sentences[1], replace_unknown=True, num_beams=2, num_return_sequences=2),
    "cleaned": translator(sentences[0], replace_unknown=True, clean_up_tokenization_spaces=True),
}
at_creation = pipeline("translation", model=sys.argv[1], trust_remote_code=True, replace_unknown=True)
results["at_creation"] = at_creation(sentences[2])
print(json.dumps(results))
"""


def test_pipeline_replace_unknown_from_the_saved_code_alone(names_run, tmp_path):
    """`replace_unknown=True`, per call or at creation, batched and with several returned beams, in the pipeline
    file saved with the model (the package itself cannot be imported)."""
    result = subprocess.run(
        [sys.executable, "-c", REPLACE_UNKNOWN_SCRIPT, str(names_run)],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "HF_MODULES_CACHE": str(tmp_path / "modules")},
    )
    assert result.returncode == 0, result.stderr
    results = json.loads(result.stdout.strip().splitlines()[-1])
    assert results["plain"] == [{"translation_text": "i see <unk> ."}]
    assert results["one"] == [{"translation_text": "i see zorglub ."}]
    assert results["batched"] == [
        {"translation_text": text} for text in ("i see zorglub .", "tom sees zorglub .", "zorglub is hungry .")
    ]
    beams = [beam["translation_text"] for beam in results["beams"]]
    assert len(beams) == 2 and beams[0] == "tom sees zorglub ." and all("<unk>" not in beam for beam in beams)
    assert results["cleaned"] == [{"translation_text": "i see zorglub."}]
    assert results["at_creation"] == [{"translation_text": "zorglub is hungry ."}]
