"""generation_gru_seq2seq.py: the lean greedy and beam search loops give GenerationMixin's tokens, and every call
they do not cover goes through GenerationMixin."""

import copy
import warnings

import pytest
import torch
from tiny import learn_by_heart
from transformers import GenerationConfig, GenerationMixin

from modeling_gru_seq2seq import GruSeq2SeqConfig, GruSeq2SeqForConditionalGeneration

PAIRS = [
    ("je suis content .", "i am happy ."),
    ("il est la .", "he is here ."),
    ("elle a froid !", "she is cold !"),
    ("nous sommes prets .", "we are ready ."),
    ("tu es tres grand .", "you are very tall ."),
    ("ils sont malades .", "they are sick ."),
]


def random_batch(source_vocab_size: int, rows: int = 6, length: int = 7):
    """Right-padded source ids ending in `<eos>` (id 2): half the rows full length, half two tokens shorter."""
    generator = torch.Generator().manual_seed(1)
    input_ids = torch.randint(4, source_vocab_size, (rows, length), generator=generator)
    attention_mask = torch.ones_like(input_ids)
    input_ids[:, -1] = 2
    attention_mask[rows // 2 :, length - 2 :] = 0
    input_ids[rows // 2 :, length - 2 :] = 0
    input_ids[rows // 2 :, length - 3] = 2
    return input_ids, attention_mask


def both_paths(model, **kwargs):
    """`(lean, GenerationMixin's)` outputs of one call; the lean path must have been taken."""
    assert model._lean_generation((), kwargs) is not None, "the call did not take the lean path"
    return model.generate(**kwargs), GenerationMixin.generate(model, **kwargs)


@pytest.mark.parametrize("decoder_type, attention", [("luong", "dot"), ("luong", "concat"), ("bahdanau", "concat")])
@pytest.mark.parametrize("num_beams", [1, 3])
@pytest.mark.parametrize(
    "limits",
    [{"max_new_tokens": 6}, {"max_length": 9}, {"max_new_tokens": 8, "eos_token_id": [2, 7]}],
    ids=["max_new_tokens", "max_length", "two_eos"],
)
def test_untrained_models_give_generation_mixins_tokens(decoder_type, attention, num_beams, limits):
    torch.manual_seed(0)
    config = GruSeq2SeqConfig(
        source_vocab_size=40,
        target_vocab_size=30,
        hidden_size=16,
        num_layers=2,
        decoder_type=decoder_type,
        attention=attention,
    )
    model = GruSeq2SeqForConditionalGeneration(config).eval()
    input_ids, attention_mask = random_batch(40)
    lean, reference = both_paths(
        model, input_ids=input_ids, attention_mask=attention_mask, num_beams=num_beams, **limits
    )
    assert torch.equal(lean, reference)


@pytest.mark.parametrize("num_beams", [1, 5])
@pytest.mark.parametrize("batch_size", [1, 6])
def test_a_trained_model_gives_generation_mixins_tokens_and_its_translations(tiny_tokenizer, num_beams, batch_size):
    """Sentences end at different steps: greedy drops each from the batch at its `<eos>` (padding after it, as
    GenerationMixin), beam search finishes beams at different lengths."""
    model, tokenizer = learn_by_heart(PAIRS, num_layers=2)
    model.eval()
    sources = [source for source, _ in PAIRS][:batch_size]
    inputs = tokenizer(sources, padding=True, return_tensors="pt")
    lean, reference = both_paths(model, **inputs, num_beams=num_beams, max_new_tokens=10, max_length=None)
    assert torch.equal(lean, reference)
    assert tokenizer.batch_decode(lean, skip_special_tokens=True) == [target for _, target in PAIRS][:batch_size]
    if batch_size > 1:
        ends = {row.index(tokenizer.eos_token_id) for row in lean.tolist()}
        assert len(ends) > 1, "every sentence ended at the same step"


def test_suppressed_tokens_are_never_generated(tiny_model):
    tiny_model.eval()
    input_ids = torch.tensor([[5, 6, 2]])
    free = tiny_model.generate(input_ids=input_ids, max_new_tokens=8)
    banned = sorted(set(free[0, 1:].tolist()) - {2})
    assert banned, "the untrained model generated nothing but <eos>"
    lean, reference = both_paths(tiny_model, input_ids=input_ids, max_new_tokens=8, suppress_tokens=[0, 1, *banned])
    assert torch.equal(lean, reference)
    assert not set(lean[0, 1:].tolist()) & set(banned)


def test_a_generation_config_and_positional_inputs_take_the_lean_path(tiny_model):
    tiny_model.eval()
    input_ids = torch.tensor([[5, 6, 2], [7, 2, 0]])
    config = GenerationConfig(**tiny_model.generation_config.to_dict())
    config.num_beams, config.max_new_tokens = 2, 5
    assert tiny_model._lean_generation((input_ids, config), {}) is not None
    lean = tiny_model.generate(input_ids, config)
    assert torch.equal(lean, GenerationMixin.generate(tiny_model, input_ids, config))


@pytest.mark.parametrize(
    "kwargs",
    [
        {"do_sample": True},
        {"output_scores": True, "return_dict_in_generate": True},
        {"return_dict_in_generate": True},
        {"num_return_sequences": 2, "num_beams": 2},
        {"repetition_penalty": 1.5},
        {"min_new_tokens": 3},
        {"encoder_outputs": None},
        {"logits_processor": None},
        {"streamer": None},
    ],
)
def test_anything_else_goes_through_generation_mixin(tiny_model, kwargs):
    tiny_model.eval()
    assert tiny_model._lean_generation((), {"input_ids": torch.tensor([[5, 6, 2]]), **kwargs}) is None


def test_generation_mixins_own_path_reuses_the_projected_keys(tiny_config, monkeypatch):
    """Each step after the first reads the `concat` keys from the cache instead of projecting the source again."""
    tiny_config.attention = "concat"
    model = GruSeq2SeqForConditionalGeneration(tiny_config).eval()
    calls = []
    project_keys = model.decoder.attention.project_keys
    monkeypatch.setattr(
        model.decoder.attention, "project_keys", lambda states: calls.append(1) or project_keys(states)
    )
    output = GenerationMixin.generate(model, input_ids=torch.tensor([[5, 6, 2]]), max_new_tokens=6, min_new_tokens=6)
    assert output.shape[1] == 7 and len(calls) == 1


def test_generation_follows_weights_a_fused_optimizer_changed(tiny_model):
    """A fused Adam step changes the weights without bumping their version counters: nothing that decoding keeps
    between calls may hold the old weights."""
    input_ids = torch.tensor([[5, 6, 2], [7, 8, 2], [9, 2, 0], [6, 5, 2], [8, 2, 0]])
    attention_mask = (input_ids != 0).long()
    tiny_model.eval()
    for num_beams in (1, 3):
        tiny_model.generate(input_ids=input_ids, attention_mask=attention_mask, num_beams=num_beams, max_new_tokens=5)
    optimizer = torch.optim.Adam(tiny_model.parameters(), lr=0.5, fused=True)
    tiny_model(input_ids=input_ids, attention_mask=attention_mask, labels=input_ids).loss.backward()
    optimizer.step()
    fresh = copy.deepcopy(tiny_model)
    for num_beams in (1, 3):
        kwargs = {
            "input_ids": input_ids,
            "attention_mask": attention_mask,
            "num_beams": num_beams,
            "max_new_tokens": 5,
        }
        assert torch.equal(tiny_model.generate(**kwargs), GenerationMixin.generate(fresh, **kwargs))
    with torch.no_grad():
        decoder_input_ids = torch.ones_like(input_ids)
        assert torch.equal(
            tiny_model(input_ids=input_ids, attention_mask=attention_mask, decoder_input_ids=decoder_input_ids).logits,
            fresh(input_ids=input_ids, attention_mask=attention_mask, decoder_input_ids=decoder_input_ids).logits,
        )


def test_a_generation_config_changed_between_calls_takes_effect(tiny_model):
    """The lean loops keep their set-up between calls, for as long as the settings are the same."""
    tiny_model.eval()
    input_ids = torch.tensor([[5, 6, 2]])
    first = tiny_model.generate(input_ids=input_ids, max_new_tokens=8)
    banned = sorted(set(first[0, 1:].tolist()) - {2})
    tiny_model.generation_config.suppress_tokens.extend(banned)  # changed in place, the same call
    lean = tiny_model.generate(input_ids=input_ids, max_new_tokens=8)
    assert torch.equal(lean, GenerationMixin.generate(tiny_model, input_ids=input_ids, max_new_tokens=8))
    assert not set(lean[0, 1:].tolist()) & set(banned)
    tiny_model.generation_config.max_length, tiny_model.generation_config.max_new_tokens = None, 3
    assert tiny_model.generate(input_ids=input_ids).shape[1] <= 4


@pytest.mark.parametrize("attention", ["dot", "general", "concat"])
def test_generate_after_quantize_dynamic(attention):
    """`torch.ao.quantization.quantize_dynamic` swaps the linear layers for int8 ones: the compiled decoding step
    (which reads float weights) steps aside and `generate()` runs them as they are, greedy and beam search."""
    model, tokenizer = learn_by_heart(PAIRS, attention=attention)
    model.eval()
    batch = tokenizer([source for source, _ in PAIRS], padding=True, return_tensors="pt")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch.ao.quantization's deprecation
        quantized = torch.ao.quantization.quantize_dynamic(model, {torch.nn.Linear}, dtype=torch.qint8)
    assert type(quantized.decoder.out) is not torch.nn.Linear  # the swap happened
    for num_beams in (1, 4):
        texts = tokenizer.batch_decode(quantized.generate(**batch, num_beams=num_beams), skip_special_tokens=True)
        assert texts == [target for _, target in PAIRS]
