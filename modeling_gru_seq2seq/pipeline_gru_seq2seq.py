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
    Every other keyword is a generation parameter (`num_beams`, `max_new_tokens`, `do_sample`,
    `num_return_sequences`, ...). Inputs are right-padded when batched.
    """

    _load_tokenizer = True
    _load_processor = False
    _load_image_processor = False
    _load_video_processor = False
    _load_feature_extractor = False
    _pipeline_calls_generate = True

    def __call__(self, inputs, **kwargs):
        """Translate a string or a list of strings: a list of dicts per string, flattened to one dict per
        string when each yields a single translation (as transformers 4's translation pipeline)."""
        results = super().__call__(inputs, **kwargs)
        if isinstance(inputs, list) and all(len(result) == 1 for result in results):
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
        if return_tensors is not None or return_text is not None:
            postprocess_params["return_tensors"] = bool(return_tensors) or return_text is False
        if clean_up_tokenization_spaces is not None:
            postprocess_params["clean_up_tokenization_spaces"] = clean_up_tokenization_spaces
        return preprocess_params, generate_kwargs, postprocess_params

    def preprocess(self, text: str, truncation: bool | str = False) -> dict[str, torch.Tensor]:
        encoding = self.tokenizer(text, truncation=truncation, return_tensors="pt")
        return {"input_ids": encoding["input_ids"], "attention_mask": encoding["attention_mask"]}

    def _forward(self, model_inputs: dict[str, torch.Tensor], **generate_kwargs) -> dict[str, torch.Tensor]:
        output_ids = self.model.generate(**model_inputs, **self._prepare_generate_kwargs(generate_kwargs))
        # (batch * num_return_sequences, length) -> (batch, num_return_sequences, length)
        return {"output_ids": output_ids.reshape(model_inputs["input_ids"].shape[0], -1, output_ids.shape[-1])}

    def postprocess(
        self, model_outputs: dict[str, torch.Tensor], return_tensors: bool = False, clean_up_tokenization_spaces=False
    ) -> list[dict]:
        if return_tensors:
            return [{"translation_token_ids": ids} for ids in model_outputs["output_ids"][0]]
        return [
            {
                "translation_text": self.tokenizer.decode(
                    ids, skip_special_tokens=True, clean_up_tokenization_spaces=clean_up_tokenization_spaces
                )
            }
            for ids in model_outputs["output_ids"][0]
        ]


def save_translation_pipeline(model, tokenizer, save_directory: str) -> None:
    """Save `model` (with this pipeline, see its `save_pretrained`) and `tokenizer` to `save_directory`, so that
    `pipeline("translation", model=save_directory, trust_remote_code=True)` loads all three."""
    model.save_pretrained(save_directory)
    tokenizer.save_pretrained(save_directory)
