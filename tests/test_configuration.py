"""GruSeq2SeqConfig (configuration_gru_seq2seq.py): the tutorial's defaults, and unknown choices, out-of-range
values and wrong types refused, naming the field."""

import pytest

from modeling_gru_seq2seq import GruSeq2SeqConfig

PAD, SOS, EOS = 0, 1, 2


@pytest.mark.parametrize(
    "field, value", [("attention", "additive"), ("decoder_type", "transformer"), ("decoder_init", "zeros")]
)
def test_config_rejects_unknown_choices_naming_field_and_choices(field, value):
    with pytest.raises(ValueError, match=field) as error:
        GruSeq2SeqConfig(**{field: value})
    choices = {"attention": "concat", "decoder_type": "bahdanau", "decoder_init": "seed"}[field]
    assert choices in str(error.value)


def test_config_rejects_out_of_range_ratio_and_untieable_decoder():
    with pytest.raises(ValueError, match="teacher_forcing_ratio"):
        GruSeq2SeqConfig(teacher_forcing_ratio=1.5)
    with pytest.raises(ValueError, match="tie_word_embeddings"):
        GruSeq2SeqConfig(decoder_type="bahdanau", tie_word_embeddings=True)


def test_config_defaults_are_the_tutorial_hyperparameters():
    config = GruSeq2SeqConfig()
    assert (config.hidden_size, config.num_layers, config.dropout) == (500, 2, 0.1)
    assert (config.attention, config.decoder_type, config.decoder_init) == ("dot", "luong", "sum")
    assert (config.teacher_forcing_ratio, config.tie_word_embeddings) == (0.5, False)
    assert config.is_encoder_decoder
    special_ids = (config.pad_token_id, config.bos_token_id, config.decoder_start_token_id, config.eos_token_id)
    assert special_ids == (PAD, SOS, SOS, EOS)


def test_config_json_fields_are_checked(tmp_path):
    for field, value, want in (
        ("hidden_size", "abc", "an integer >= 1"),
        ("source_vocab_size", "1907", "an integer"),
        ("dropout", 2, "a number in [0, 1)"),
    ):
        with pytest.raises(
            ValueError,
            match=rf"{field}: got {value!r}, want {want}".replace("[", r"\[").replace("(", r"\(").replace(")", r"\)"),
        ):
            GruSeq2SeqConfig(**{field: value})
