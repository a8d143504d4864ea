"""GRU sequence-to-sequence model configuration (the Practical PyTorch attention translator)."""

import math
import re

from transformers import PreTrainedConfig

ATTENTION_SCORES = ("dot", "general", "concat")
DECODER_TYPES = ("luong", "bahdanau")
DECODER_INITS = ("tutorial", "seed", "sum")  # "seed": the earlier name of "tutorial", still read
VOCABULARIES = ("word", "bpe", "unigram")  # as the tokenizer's (`tokenization_gru_seq2seq.VOCABULARIES`)
UNK_TOKEN_ID = 3  # `<unk>` in both vocabularies (`tokenization_gru_seq2seq.SPECIAL_TOKENS`)
# The model's own settings (not the vocabularies): each a `run_translation.py` flag, shown in a trained model's card
MODEL_SETTINGS = (
    "attention",
    "decoder_type",
    "hidden_size",
    "num_layers",
    "dropout",
    "teacher_forcing_ratio",
    "decoder_init",
)
FIELD_CHOICES = {"attention": ATTENTION_SCORES, "decoder_type": DECODER_TYPES, "decoder_init": DECODER_INITS}


def _is_integer(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


# field: (what it must be, the check); `__post_init__` raises `field: got V, want ...` for any other value
FIELD_RANGES = {
    "source_vocab_size": ("an integer >= 4 (the special tokens)", lambda v: _is_integer(v) and v >= 4),
    "target_vocab_size": ("an integer >= 4 (the special tokens)", lambda v: _is_integer(v) and v >= 4),
    "hidden_size": ("an integer >= 1", lambda v: _is_integer(v) and v >= 1),
    "num_layers": ("an integer >= 1", lambda v: _is_integer(v) and v >= 1),
    "dropout": ("a number in [0, 1)", lambda v: _is_number(v) and 0 <= v < 1),
    "teacher_forcing_ratio": ("a number in [0, 1]", lambda v: _is_number(v) and 0 <= v <= 1),
    "output_length_ratio": ("a number >= 0", lambda v: _is_number(v) and v >= 0),
    "output_length_offset": ("an integer >= 0", lambda v: _is_integer(v) and v >= 0),
    "max_output_length": ("an integer >= 1", lambda v: _is_integer(v) and v >= 1),
}


class GruSeq2SeqConfig(PreTrainedConfig):
    r"""
    Configuration of a [`GruSeq2SeqForConditionalGeneration`]: a bidirectional GRU encoder and an attention
    GRU decoder, as in the Practical PyTorch "Translation with a sequence to sequence network and attention"
    tutorial. The defaults are the tutorial's hyperparameters.

    Args:
        source_vocab_size (`int`, *optional*, defaults to 4):
            Number of tokens in the source vocabulary (rows of the encoder embedding).
        target_vocab_size (`int`, *optional*, defaults to 4):
            Number of tokens in the target vocabulary (rows of the decoder embedding, columns of the logits).
            Also read and written as `vocab_size`, as in FSMT: transformers' generation utilities (e.g.
            `compute_transition_scores`) take `vocab_size` as the size of the logits.
        hidden_size (`int`, *optional*, defaults to 500):
            Width of the embeddings, of both GRUs' states and of the attention.
        num_layers (`int`, *optional*, defaults to 2):
            Number of stacked GRU layers, in the encoder (each bidirectional) and in the decoder.
        dropout (`float`, *optional*, defaults to 0.1):
            Dropout between stacked GRU layers and, in the decoder, on the target embeddings.
        attention (`str`, *optional*, defaults to `"dot"`):
            Luong score comparing a decoder state with an encoder output: `"dot"` (h_t . h_s), `"general"`
            (h_t^T W_a h_s) or `"concat"` (v_a^T tanh(W_a [h_t; h_s])). Used by the Luong decoder; the
            Bahdanau decoder always uses the additive (`"concat"`) score, as its paper and the tutorial do.
        decoder_type (`str`, *optional*, defaults to `"luong"`):
            `"luong"`: GRU step first, then attention from the new state (Luong et al., 2015).
            `"bahdanau"`: attention from the previous state, its context fed into the GRU and into the
            output layer (Bahdanau et al., 2015).
        teacher_forcing_ratio (`float`, *optional*, defaults to 0.5):
            In training, the probability that a batch is decoded with the reference as the previous token
            (otherwise the decoder is fed its own argmax). One draw per batch, as the tutorial. Evaluation is
            always teacher-forced.
        decoder_init (`str`, *optional*, defaults to `"sum"`):
            Initial state of the decoder GRU from the encoder's final states. `"tutorial"` (also read as
            `"seed"`, its earlier name) reproduces the tutorial's `encoder_hidden[:n_layers]`: torch orders the
            bidirectional final states layer by layer, forward then backward, so decoder layer `l` starts from
            the `l`-th entry of that list (for 2 layers: layer 0 forward and layer 0 backward). `"sum"` starts
            decoder layer `l` from the sum of encoder layer `l`'s forward and backward final states.
        vocabulary (`str`, *optional*, defaults to `"word"`):
            The kind of the tokenizer's vocabularies, set from it when a model is built: `"word"` (the tutorial's)
            or subwords, `"bpe"` or `"unigram"`. With subwords `generate()` never writes `<unk>` (its id is
            suppressed): every text has a spelling in pieces and bytes.
        output_length_ratio (`float`, *optional*, defaults to 2.0):
            Generation's default length limit, per sentence: `output_length_offset + output_length_ratio x` its
            source tokens (`<eos>` included) new tokens, at most `max_output_length`, for every search. A
            `max_new_tokens` or `max_length` given to `generate()` or set in the generation config replaces it.
        output_length_offset (`int`, *optional*, defaults to 10):
            The new tokens every sentence may have beyond `output_length_ratio x` its source tokens.
        max_output_length (`int`, *optional*, defaults to 256):
            The most new tokens of the default length limit, whatever the source's length.
        tie_word_embeddings (`bool`, *optional*, defaults to `False`):
            Share the target embedding matrix with the output projection. Luong decoder only (the
            Bahdanau output layer reads `2 * hidden_size` features).
        use_cache (`bool`, *optional*, defaults to `True`):
            Whether `forward` returns the decoder GRU state (a `GruSeq2SeqCache`) for the next step.
        pad_token_id (`int`, *optional*, defaults to 0):
            Padding token id (both vocabularies).
        bos_token_id (`int`, *optional*, defaults to 1):
            Start-of-sentence token id (SOS in the tutorial).
        eos_token_id (`int`, *optional*, defaults to 2):
            End-of-sentence token id (EOS in the tutorial).
        decoder_start_token_id (`int`, *optional*, defaults to 1):
            First decoder input: the SOS token, as the tutorial.
        is_encoder_decoder (`bool`, *optional*, defaults to `True`):
            Always `True`; tells `generate()` to run the encoder once and then the decoder.

    Example:

    ```python
    >>> from modeling_gru_seq2seq import GruSeq2SeqConfig, GruSeq2SeqForConditionalGeneration

    >>> config = GruSeq2SeqConfig(source_vocab_size=4000, target_vocab_size=3000, attention="general")
    >>> model = GruSeq2SeqForConditionalGeneration(config)
    ```
    """

    model_type = "gru_seq2seq"
    attribute_map = {"vocab_size": "target_vocab_size"}

    source_vocab_size: int = 4
    target_vocab_size: int = 4
    hidden_size: int = 500
    num_layers: int = 2
    dropout: float = 0.1
    attention: str = "dot"
    decoder_type: str = "luong"
    teacher_forcing_ratio: float = 0.5
    decoder_init: str = "sum"
    vocabulary: str = "word"
    output_length_ratio: float = 2.0
    output_length_offset: int = 10
    max_output_length: int = 256
    tie_word_embeddings: bool = False
    use_cache: bool = True
    pad_token_id: int | None = 0
    bos_token_id: int | None = 1
    eos_token_id: int | None = 2
    decoder_start_token_id: int | None = 1
    is_encoder_decoder: bool = True

    def __post_init__(self, **kwargs):
        for field, choices in (*FIELD_CHOICES.items(), ("vocabulary", VOCABULARIES)):
            value = getattr(self, field)
            if value not in choices:
                raise ValueError(f"{field}: got {value!r}, want one of {', '.join(choices)}")
        for field, (want, check) in FIELD_RANGES.items():
            value = getattr(self, field)
            if not check(value):
                raise ValueError(f"{field}: got {value!r}, want {want}")
        if self.tie_word_embeddings and self.decoder_type == "bahdanau":
            raise ValueError(
                "`tie_word_embeddings=True` needs `decoder_type='luong'`: the Bahdanau output layer reads "
                "[GRU output; context] (2 * hidden_size features), the embedding has hidden_size."
            )
        super().__post_init__(**kwargs)


def field_help(name: str) -> str:
    """The docstring entry of `GruSeq2SeqConfig` field `name` and its valid values, on one line (for
    command-line help)."""
    match = re.search(rf"^ {{8}}{name} \(.*?\):\n((?: {{12}}.*\n)+)", GruSeq2SeqConfig.__doc__, flags=re.MULTILINE)
    valid = FIELD_RANGES[name][0] if name in FIELD_RANGES else ", ".join(FIELD_CHOICES.get(name, ()))
    text = " ".join(line.strip() for line in match.group(1).splitlines())
    return f"{text} Valid: {valid}." if valid else text


GruSeq2SeqConfig.register_for_auto_class()
