"""gru-seq2seq: the Practical PyTorch attention GRU translator as a Hugging Face model package."""

from transformers import AutoConfig, AutoModel, AutoModelForSeq2SeqLM, AutoTokenizer

from .configuration_gru_seq2seq import GruSeq2SeqConfig
from .modeling_gru_seq2seq import GruSeq2SeqForConditionalGeneration, GruSeq2SeqModel, GruSeq2SeqPreTrainedModel
from .pipeline_gru_seq2seq import TranslationPipeline
from .tokenization_gru_seq2seq import GruSeq2SeqTokenizer, normalize_string, train_word_level

# The model's code: the files written beside every saved model (`save_pretrained` copies a model file and its
# relative imports, for `trust_remote_code`). They import only torch, transformers, tokenizers, the standard
# library and each other; the rest of the package (training, translation, loading, metrics, plots, the model
# card) never travels. tests/test_layout.py pins both.
MODEL_CODE_FILES = (
    "configuration_gru_seq2seq.py",
    "modeling_gru_seq2seq.py",
    "packed_gru.py",
    "gru_kernels.py",
    "gru_choice.py",
    "int8_weights.py",
    "generation_gru_seq2seq.py",
    "owner_lock.py",
    "tokenization_gru_seq2seq.py",
    "pipeline_gru_seq2seq.py",
    "saved_files.py",
)

AutoConfig.register(GruSeq2SeqConfig.model_type, GruSeq2SeqConfig)
AutoModelForSeq2SeqLM.register(GruSeq2SeqConfig, GruSeq2SeqForConditionalGeneration)
AutoModel.register(GruSeq2SeqConfig, GruSeq2SeqModel)
AutoTokenizer.register(GruSeq2SeqConfig, fast_tokenizer_class=GruSeq2SeqTokenizer)

__all__ = [
    "GruSeq2SeqConfig",
    "GruSeq2SeqForConditionalGeneration",
    "GruSeq2SeqModel",
    "GruSeq2SeqPreTrainedModel",
    "GruSeq2SeqTokenizer",
    "TranslationPipeline",
    "normalize_string",
    "train_word_level",
]
