"""gru-seq2seq: the Practical PyTorch attention GRU translator as a Hugging Face model package."""

from transformers import AutoConfig, AutoModelForSeq2SeqLM, AutoTokenizer

from .configuration_gru_seq2seq import GruSeq2SeqConfig
from .modeling_gru_seq2seq import GruSeq2SeqForConditionalGeneration, GruSeq2SeqPreTrainedModel
from .pipeline_gru_seq2seq import TranslationPipeline
from .tokenization_gru_seq2seq import GruSeq2SeqTokenizer, normalize_string, train_word_level

AutoConfig.register(GruSeq2SeqConfig.model_type, GruSeq2SeqConfig)
AutoModelForSeq2SeqLM.register(GruSeq2SeqConfig, GruSeq2SeqForConditionalGeneration)
AutoTokenizer.register(GruSeq2SeqConfig, fast_tokenizer_class=GruSeq2SeqTokenizer)

__all__ = [
    "GruSeq2SeqConfig",
    "GruSeq2SeqForConditionalGeneration",
    "GruSeq2SeqPreTrainedModel",
    "GruSeq2SeqTokenizer",
    "TranslationPipeline",
    "normalize_string",
    "train_word_level",
]
