"""A `translation` pipeline, saved with the model as a custom pipeline.

transformers 5 removed its built-in `translation` pipeline. `save_translation_pipeline(model, tokenizer,
directory)` saves the model, the tokenizer and this file, and records the pipeline under
`custom_pipelines` in `config.json`, so that in any process

    pipeline("translation", model=directory, trust_remote_code=True)("Je suis content.")
    # [{"translation_text": "i m happy ."}]

This file imports nothing from its package: it is copied next to the model and loaded from there.
"""

import torch
from transformers import AutoModelForSeq2SeqLM, Pipeline
from transformers.pipelines import PIPELINE_REGISTRY


class TranslationPipeline(Pipeline):
    """Text in, `[{"translation_text": ...}]` out (one dict per returned sequence), with `model.generate()`.

    Keyword arguments, at creation or per call, are generation parameters (`num_beams`,
    `max_new_tokens`, `do_sample`, `num_return_sequences`, ...). Inputs are right-padded when batched.
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

    def _sanitize_parameters(self, **generate_kwargs):
        return {}, generate_kwargs, {}

    def preprocess(self, text: str) -> dict[str, torch.Tensor]:
        encoding = self.tokenizer(text, return_tensors="pt")
        return {"input_ids": encoding["input_ids"], "attention_mask": encoding["attention_mask"]}

    def _forward(self, model_inputs: dict[str, torch.Tensor], **generate_kwargs) -> dict[str, torch.Tensor]:
        output_ids = self.model.generate(**model_inputs, **self._prepare_generate_kwargs(generate_kwargs))
        # (batch * num_return_sequences, length) -> (batch, num_return_sequences, length)
        return {"output_ids": output_ids.reshape(model_inputs["input_ids"].shape[0], -1, output_ids.shape[-1])}

    def postprocess(self, model_outputs: dict[str, torch.Tensor]) -> list[dict[str, str]]:
        return [
            {"translation_text": self.tokenizer.decode(ids, skip_special_tokens=True)}
            for ids in model_outputs["output_ids"][0]
        ]


PIPELINE_REGISTRY.register_pipeline(
    "translation", pipeline_class=TranslationPipeline, pt_model=AutoModelForSeq2SeqLM
)


def save_translation_pipeline(model, tokenizer, save_directory: str) -> None:
    """Save `model`, `tokenizer` and this pipeline to `save_directory` (the model's `config.json` gains
    `custom_pipelines`; this file is copied beside the model code), so that
    `pipeline("translation", model=save_directory, trust_remote_code=True)` loads all three."""
    TranslationPipeline(model=model, tokenizer=tokenizer, device=model.device).save_pretrained(save_directory)
