"""Translate sentences with a trained model, batched, optionally with the attention each output word paid."""

import dataclasses

import numpy as np
import torch


@dataclasses.dataclass
class Translation:
    """One translated sentence.

    `source_tokens`: normalized source words plus `<eos>`; `output_tokens`: generated words up to and with
    `<eos>` (when reached); `attention`: `(len(output_tokens), len(source_tokens))` weights (greedy only).
    """

    text: str
    source_tokens: list[str]
    output_tokens: list[str]
    attention: np.ndarray | None = None


@torch.no_grad()
def translate(
    model,
    tokenizer,
    sentences: list[str],
    batch_size: int = 64,
    num_beams: int = 1,
    max_new_tokens: int | None = None,
    output_attentions: bool = False,
) -> list[Translation]:
    """Translate `sentences` in batches of `batch_size`, in input order.

    `output_attentions` needs greedy decoding (`num_beams=1`): the heatmap rows are the chosen words.
    """
    if output_attentions and num_beams != 1:
        raise ValueError("attention weights are returned for greedy decoding only (num_beams=1)")
    model.eval()
    translations = []
    for start in range(0, len(sentences), batch_size):
        batch_sentences = sentences[start : start + batch_size]
        inputs = tokenizer(batch_sentences, padding=True, return_tensors="pt").to(model.device)
        generated = model.generate(
            **inputs,
            num_beams=num_beams,
            max_new_tokens=max_new_tokens,
            output_attentions=output_attentions,
            return_dict_in_generate=True,
        )
        sequences = generated.sequences[:, 1:].cpu()  # drop the start token
        texts = tokenizer.batch_decode(sequences, skip_special_tokens=True)
        attention = None
        if output_attentions:  # steps x (batch, heads=1, 1, src_len) -> (batch, steps, src_len)
            attention = torch.cat([step[0][:, 0] for step in generated.cross_attentions], dim=1).float().cpu()
        for row, text in enumerate(texts):
            source_length = int(inputs["attention_mask"][row].sum())
            source_tokens = tokenizer.tokenize(batch_sentences[row])[: source_length - 1] + [tokenizer.eos_token]
            output_tokens = _until_eos(sequences[row].tolist(), tokenizer)
            weights = None
            if attention is not None:
                weights = attention[row, : len(output_tokens), :source_length].numpy()
            translations.append(Translation(text, source_tokens, output_tokens, weights))
    return translations


def _until_eos(token_ids: list[int], tokenizer) -> list[str]:
    """Target tokens up to and with the first `<eos>`; padding after it dropped."""
    if tokenizer.eos_token_id in token_ids:
        token_ids = token_ids[: token_ids.index(tokenizer.eos_token_id) + 1]
    return tokenizer.convert_ids_to_tokens(token_ids)
