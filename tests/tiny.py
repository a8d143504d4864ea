"""Tiny models that have learned a handful of pairs by heart, for tests that need outputs to mean something."""

import torch

from modeling_gru_seq2seq import (
    GruSeq2SeqConfig,
    GruSeq2SeqForConditionalGeneration,
    GruSeq2SeqTokenizer,
    train_word_level,
)

# Pairs a tiny model learns by heart (the tests on CUDA and on the ecosystem's calls)
PAIRS = [
    ("je suis content .", "i am happy ."),
    ("je suis fatigue .", "i am tired ."),
    ("il est la .", "he is here ."),
    ("elle est la .", "she is here ."),
    ("elle a froid !", "she is cold !"),
    ("il a froid !", "he is cold !"),
    ("nous sommes amis .", "we are friends ."),
    ("tu es grand .", "you are tall ."),
]
SOURCES, TARGETS = [fr for fr, _ in PAIRS], [en for _, en in PAIRS]


def learn_by_heart(pairs: list[tuple[str, str]], device: str = "cpu", tokenizer=None, **config_fields):
    """`(model, tokenizer)`: a model (hidden 32, 1 layer unless `config_fields` say otherwise, no dropout,
    teacher-forced) trained on `device` until it knows the `(source, target)` pairs by heart: 150 full-batch
    Adam steps at 1e-2, about a second. The model is returned in train mode. `tokenizer`: the vocabularies to
    use (default: built from the pairs)."""
    sources, targets = [source for source, _ in pairs], [target for _, target in pairs]
    if tokenizer is None:
        tokenizer = GruSeq2SeqTokenizer.from_vocabularies(train_word_level(sources), train_word_level(targets))
    torch.manual_seed(0)
    settings = {"hidden_size": 32, "num_layers": 1, "dropout": 0.0, "teacher_forcing_ratio": 1.0, **config_fields}
    config = GruSeq2SeqConfig(
        source_vocab_size=tokenizer.source_vocab_size, target_vocab_size=tokenizer.target_vocab_size, **settings
    )
    model = GruSeq2SeqForConditionalGeneration(config).to(device).train()
    batch = tokenizer(sources, text_target=targets, padding=True, return_tensors="pt")
    batch["labels"][batch["labels"] == tokenizer.pad_token_id] = -100
    batch = {name: tensor.to(device) for name, tensor in batch.items()}
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(150):
        optimizer.zero_grad()
        model(**batch).loss.backward()
        optimizer.step()
    return model, tokenizer
