"""A `translation` pipeline, saved with every model as a custom pipeline.

transformers 5 removed its built-in `translation` pipeline. The model's `save_pretrained` writes this file
beside the model code and records it under `custom_pipelines` in `config.json`; with the tokenizer saved
there too (`save_translation_pipeline` saves both), in any process

    pipeline("translation", model=directory, trust_remote_code=True)("Je suis content.")
    # [{"translation_text": "i m happy ."}]

This file imports nothing from its package: it is copied next to the model and loaded from there.
"""

import torch
from transformers import Pipeline

# What `config.json` records under `custom_pipelines` (the model's `save_pretrained` writes it)
CUSTOM_PIPELINES = {
    "translation": {"impl": "pipeline_gru_seq2seq.TranslationPipeline", "pt": ["AutoModelForSeq2SeqLM"]}
}

INPUTS = ("input_ids", "attention_mask")
REPLACE_UNKNOWN_WORDS_ONLY = (
    "replace_unknown writes <unk> as a source word, and this model's subword vocabulary has no <unk> to replace "
    "(it never writes one)"
)


class TranslationPipeline(Pipeline):
    """Text in, `[{"translation_text": ...}]` out (one dict per returned sequence), with `model.generate()`.

    Build it from a saved model with `pipeline("translation", model=directory, trust_remote_code=True)`, or from
    objects with `TranslationPipeline(model=model, tokenizer=tokenizer)` (transformers 5's `pipeline()` has no
    `translation` task of its own and refuses model objects for it with a `KeyError`).

    Arguments, at creation or per call, as transformers 4's `TranslationPipeline`:
        truncation (`bool`, defaults to `False`): cut sources longer than the tokenizer's `model_max_length`
            (100 tokens, `<eos>` included), with a warning.
        src_lang, tgt_lang (`str`, *optional*): checked against the model's languages (`fr_XX` matches `fr`).
        return_tensors (`bool`, defaults to `False`): return `{"translation_token_ids": ids}` (target ids,
            `<sos>` first) instead of text.
        return_text (`bool`, defaults to `True`): return `{"translation_text": ...}`; `False` returns the ids.
        clean_up_tokenization_spaces (`bool`, defaults to `False`): join punctuation to the word before it
            (`"i m happy ."` -> `"i m happy."`).
        replace_unknown (`bool`, defaults to `False`): write each output `<unk>` as the source word (as
            normalized) that received the most attention at that step (see `replace_unknown_words`). Word
            vocabularies only: a subword model never writes `<unk>`, and is refused in one line.
    Every other keyword is a generation parameter (`num_beams`, `max_new_tokens`, `do_sample`,
    `num_return_sequences`, ...). Inputs are right-padded when batched.

    At creation only:
        inference_dtype (`str`, *optional*): translate in `"float32"`, `"bfloat16"` or `"int8"` (the CPU): the model
            is converted by its `to_inference_dtype`, as `gru-translate --dtype` does, e.g.
            `pipeline("translation", model=directory, trust_remote_code=True, inference_dtype="int8")`.
            (`dtype=torch.bfloat16` loads the model in bfloat16 too; int8 is no dtype `from_pretrained` knows.)
    """

    _load_tokenizer = True
    _load_processor = False
    _load_image_processor = False
    _load_video_processor = False
    _load_feature_extractor = False
    _pipeline_calls_generate = True

    def __init__(self, *args, inference_dtype: str | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        if inference_dtype is not None:
            self.model.to_inference_dtype(inference_dtype)

    def __call__(self, inputs, **kwargs):
        """Translate a string or a list of strings: a list of dicts per string, flattened to one dict per
        string when each yields a single translation (as transformers 4's translation pipeline). A string with
        nothing to translate (empty, spaces, zero-width characters) translates to `""`, without running the
        model; `[]` gives `[]`."""
        batch_size = kwargs.get("batch_size")
        if batch_size is not None and (
            isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1
        ):
            raise ValueError(f"batch_size: got {batch_size!r}, want an integer >= 1")
        single = isinstance(inputs, str)
        if inputs is None or isinstance(inputs, (int, float, bytes)):
            raise ValueError(f"inputs: got {inputs!r}, want a string or a list of strings")
        if not single and not isinstance(inputs, (list, tuple)):  # a generator, a dataset: streamed as they are
            return super().__call__(inputs, **kwargs)
        for text in [] if single else inputs:
            if not isinstance(text, str):
                raise ValueError(f"inputs: got a list holding {text!r}, want a string or a list of strings")
        texts = [inputs] if single else list(inputs)
        kept = [index for index, text in enumerate(texts) if not self.tokenizer.is_blank(text)]
        translated = super().__call__([texts[index] for index in kept], **kwargs) if kept else []
        blank = (
            [{"translation_token_ids": torch.empty(0, dtype=torch.long)}]
            if kwargs.get("return_tensors") or kwargs.get("return_text") is False
            else [{"translation_text": ""}]
        )
        results = [blank * kwargs.get("num_return_sequences", 1) for _ in texts]
        for index, result in zip(kept, translated, strict=True):
            results[index] = result
        if single:
            return results[0]
        if all(len(result) == 1 for result in results):
            return [result[0] for result in results]
        return results

    def _sanitize_parameters(
        self,
        truncation=None,
        src_lang=None,
        tgt_lang=None,
        return_tensors=None,
        return_text=None,
        clean_up_tokenization_spaces=None,
        replace_unknown=None,
        **generate_kwargs,
    ):
        for argument, given, language in (
            ("src_lang", src_lang, self.tokenizer.source_lang),
            ("tgt_lang", tgt_lang, self.tokenizer.target_lang),
        ):
            if given is not None and given.split("_")[0] != language:
                raise ValueError(
                    f"{argument}={given!r}, but this model translates {self.tokenizer.source_lang} to "
                    f"{self.tokenizer.target_lang}"
                )
        preprocess_params = {} if truncation is None else {"truncation": truncation}
        postprocess_params = {}
        if replace_unknown and getattr(self.tokenizer, "vocabulary", "word") != "word":
            raise ValueError(REPLACE_UNKNOWN_WORDS_ONLY)
        if replace_unknown is not None:
            preprocess_params["replace_unknown"] = generate_kwargs["replace_unknown"] = replace_unknown
        if return_tensors is not None or return_text is not None:
            postprocess_params["return_tensors"] = bool(return_tensors) or return_text is False
        if clean_up_tokenization_spaces is not None:
            postprocess_params["clean_up_tokenization_spaces"] = clean_up_tokenization_spaces
        return preprocess_params, generate_kwargs, postprocess_params

    def preprocess(self, text: str, truncation: bool | str = False, replace_unknown: bool = False) -> dict:
        encoding = self.tokenizer(text, truncation=truncation, return_tensors="pt")
        inputs = {name: encoding[name] for name in INPUTS}
        if replace_unknown:  # one list per sentence: batching collects them, unbatching hands each its own
            inputs["source_words"] = [self.tokenizer.normalize(text).split()]
        return inputs

    def _forward(self, model_inputs: dict, replace_unknown: bool = False, **generate_kwargs) -> dict:
        source_words = model_inputs.pop("source_words", None)
        output_ids = self.model.generate(**model_inputs, **self._prepare_generate_kwargs(generate_kwargs))
        batch_size = model_inputs["input_ids"].shape[0]
        # (batch * num_return_sequences, length) -> (batch, num_return_sequences, length)
        outputs = {"output_ids": output_ids.reshape(batch_size, -1, output_ids.shape[-1])}
        if replace_unknown:
            per_source = output_ids.shape[0] // batch_size  # num_return_sequences
            input_ids, attention_mask = (model_inputs[name].repeat_interleave(per_source, dim=0) for name in INPUTS)
            words = most_attended_words(self.model, input_ids, attention_mask, output_ids)
            outputs["word_indices"] = words.reshape(batch_size, -1, words.shape[-1])
            outputs["source_words"] = source_words
        return outputs

    def postprocess(
        self, model_outputs: dict, return_tensors: bool = False, clean_up_tokenization_spaces=False
    ) -> list[dict]:
        if return_tensors:
            return [{"translation_token_ids": ids} for ids in model_outputs["output_ids"][0]]
        texts = [
            self.tokenizer.decode(ids, skip_special_tokens=True, clean_up_tokenization_spaces=False)
            for ids in model_outputs["output_ids"][0]
        ]
        if "word_indices" in model_outputs:
            ids, word_indices = (model_outputs[name][0].tolist() for name in ("output_ids", "word_indices"))
            source_words = model_outputs["source_words"][0]
            texts = [
                replace_unknown_words(*row, source_words, self.tokenizer)
                for row in zip(texts, ids, word_indices, strict=True)
            ]
        if clean_up_tokenization_spaces:
            texts = [self.tokenizer.clean_up_tokenization(text) for text in texts]
        return [{"translation_text": text} for text in texts]


def cross_attention(model, input_ids: torch.Tensor, attention_mask: torch.Tensor, sequences: torch.Tensor):
    """`(rows, steps, src_len)`: the attention paid while predicting each token of `sequences[:, 1:]` (generated
    ids, the start token first), from one teacher-forced pass along them, so the same for any search."""
    outputs = model(
        input_ids=input_ids,
        attention_mask=attention_mask,
        decoder_input_ids=sequences[:, :-1],
        teacher_forcing=True,
        output_attentions=True,
        use_cache=False,
    )
    return outputs.cross_attentions[0][:, 0].float()  # one layer, one head


@torch.no_grad()
def most_attended_words(
    model, input_ids: torch.Tensor, attention_mask: torch.Tensor, sequences: torch.Tensor, attention=None
) -> torch.Tensor:
    """`(rows, steps)`: for each token of `sequences[:, 1:]`, the index among its source's words (its `<eos>`
    and padding left out) of the word that received the most attention at that step; -1 for a source with no
    words. `attention`: `cross_attention`'s result, when already computed."""
    if attention is None:
        attention = cross_attention(model, input_ids, attention_mask, sequences)
    is_word = attention_mask.bool() & (input_ids != model.config.eos_token_id)
    position = attention.masked_fill(~is_word[:, None, :], -1.0).argmax(dim=-1)
    word_index = torch.where(is_word, is_word.cumsum(dim=-1) - 1, -1)  # position -> its word's index
    return word_index.gather(1, position)


def replace_unknown_words(text: str, ids, word_indices, source_words: list[str], tokenizer) -> str:
    """`text`, the decoded `ids` (a row of generated ids, the start token first; special tokens skipped,
    `<unk>` kept), with each `<unk>` written as `source_words[index]`, `index` being its step's entry of
    `word_indices` (see `most_attended_words`). The source words are as the tokenizer normalized them: the words
    the model read. A source with no words leaves `<unk>` as it is."""
    unknown, steps = tokenizer.unk_token_id, zip(ids[1:], word_indices, strict=True)
    words = iter([source_words[index] if index >= 0 else tokenizer.unk_token for i, index in steps if i == unknown])
    return " ".join(next(words) if word == tokenizer.unk_token else word for word in text.split(" "))


def save_translation_pipeline(model, tokenizer, save_directory: str) -> None:
    """Save `model` (with this pipeline, see its `save_pretrained`) and `tokenizer` to `save_directory`, so that
    `pipeline("translation", model=save_directory, trust_remote_code=True)` loads all three."""
    model.save_pretrained(save_directory)
    tokenizer.save_pretrained(save_directory)
