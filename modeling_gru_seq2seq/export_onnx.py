"""Export a trained model as two ONNX graphs, with a translator beside them that needs neither torch nor
transformers.

    python -m modeling_gru_seq2seq.export_onnx runs/fr-en onnx/fr-en
    python onnx/fr-en/translate_onnx.py "Je suis content." "Il fait froid."

A recurrent decoder runs one step at a time, so the model becomes two graphs (as Joey NMT and OpenNMT users
export theirs by hand):
- `encoder.onnx`: `input_ids`, `attention_mask` `(batch, src_len)` -> `hidden` `(num_layers, batch, hidden)`
  (the decoder's state before the start token), `states` and `keys` `(batch, src_len, hidden)` (what the
  attention reads: the encoder outputs and their projected keys);
- `decoder_step.onnx`: `input_ids` `(batch, 1)` (the previous token), `hidden`, `states`, `keys` and `mask`
  `(batch, src_len)` -> `logits` `(batch, vocab)`, the new `hidden` and `attention` `(batch, src_len)`;
both with dynamic batch and source length, for every decoder type and attention score, word and subword
vocabularies. Beside them: the tokenizer files, `config.json` and `generation_config.json` (the search's settings)
and `translate_onnx.py`, greedy and beam search over the two graphs with `generate()`'s rules (onnxruntime,
`tokenizers` and numpy only).

The graphs are traced by torch's TorchScript exporter (`dynamo=False`), which maps the encoder's packed,
bidirectional GRU to ONNX's `GRU` with `sequence_lens`; `--dynamo` asks for torch's default exporter, which has no
such mapping for packed input (it is refused in one line where it fails). Export runs the torch operations, never
the package's compiled kernels; each graph is then checked in onnxruntime against the model on a padded batch of
mixed lengths, and an export that differs is an error, not a file.
"""

import argparse
import contextlib
import os
import re
import shutil
import sys
import tempfile
import warnings

import torch
from torch import nn

from .commands import UsageError
from .int8_weights import holds_int8
from .loading import ModelLoadError, load_model_and_tokenizer

ENCODER_FILE, DECODER_FILE, TRANSLATOR_FILE = "encoder.onnx", "decoder_step.onnx", "translate_onnx.py"
COPIED_FILES = ("tokenizer.json", "target_tokenizer.json", "tokenizer_config.json")  # beside the graphs
ENCODER_INPUTS, ENCODER_OUTPUTS = ("input_ids", "attention_mask"), ("hidden", "states", "keys")
DECODER_INPUTS = ("input_ids", "hidden", "states", "keys", "mask")
DECODER_OUTPUTS = ("logits", "new_hidden", "attention")
OPSET = 17
TOLERANCE = 1e-3  # the largest difference allowed between a graph's outputs and the model's


class EncoderGraph(nn.Module):
    """The encoder and the decoder's start, as one graph: what `generate()` computes once per batch."""

    def __init__(self, model):
        super().__init__()
        self.model = model
        self.eval()  # (the exporter sets every module to the graph's own mode: a new module's is training)

    def forward(self, input_ids, attention_mask):
        hidden, source = self.model.decoder_start(self.model.encoder(input_ids, attention_mask), attention_mask)
        return hidden, source.states, source.keys


class DecoderStepGraph(nn.Module):
    """One decoding step for every row: the decoder's `step`."""

    def __init__(self, model):
        super().__init__()
        self.model = model
        self.eval()  # (the exporter sets every module to the graph's own mode: a new module's is training)

    def forward(self, input_ids, hidden, states, keys, mask):
        from .modeling_gru_seq2seq import GruSeq2SeqSource

        decoded = self.model.decoder.step(input_ids, hidden, GruSeq2SeqSource(states, keys, mask))
        return decoded.logits[:, -1], decoded.hidden, decoded.attention_weights[:, -1]


def example_inputs(model, batch: int = 3, source_length: int = 6) -> tuple[tuple, tuple]:
    """A padded batch of mixed lengths (6, 4 and 1 tokens, ending in `<eos>`) for the encoder, and the decoder
    step's inputs after it: what the export traces and what the check compares."""
    config = model.config
    generator = torch.Generator().manual_seed(0)
    lengths = torch.tensor([source_length, 4, 1][:batch])
    mask = (torch.arange(source_length) < lengths[:, None]).long()
    ids = torch.randint(4, config.source_vocab_size, (batch, source_length), generator=generator)
    ids = torch.where(torch.arange(source_length) == lengths[:, None] - 1, config.eos_token_id, ids) * mask
    with torch.no_grad():
        hidden, states, keys = EncoderGraph(model)(ids, mask)
    tokens = torch.randint(4, config.target_vocab_size, (batch, 1), generator=generator)
    return (ids, mask), (tokens, hidden, states, keys, mask)


def dynamic_axes(names: tuple[str, ...], batch_first: dict[str, bool]) -> dict:
    """Each tensor's dynamic axes: `batch` (axis 1 for the GRU state, else 0) and `source_length` where it has
    one."""
    axes = {}
    for name in names:
        batch_axis = 0 if batch_first.get(name, True) else 1
        axes[name] = {batch_axis: "batch"}
        if name in ("input_ids", "attention_mask", "states", "keys", "mask", "attention"):
            axes[name][1] = "source_length"
    return axes


@contextlib.contextmanager
def quiet_native_stderr():
    """Nothing written to the process's stderr (file descriptor 2) inside: the exporters' native notes (the
    TorchScript tracer's shape-inference lines, the dynamo exporter's log) are not the user's business; errors
    still come as exceptions."""
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as sink:
        os.dup2(sink.fileno(), 2)
        try:
            yield
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)


def root_cause(error: BaseException) -> str:
    """The first line of the innermost cause of `error`, without terminal colours."""
    while error.__cause__ is not None:
        error = error.__cause__
    line = (str(error).strip().splitlines() or [type(error).__name__])[0]
    return re.sub(r"\x1b\[[0-9;]*m", "", line)[:200]


def export_graph(graph: nn.Module, inputs: tuple, path: str, names: tuple, outputs: tuple, dynamo: bool) -> None:
    """`torch.onnx.export` of `graph` at `inputs`, with dynamic batch and source length."""
    axes = dynamic_axes(names + outputs, {"hidden": False, "new_hidden": False})  # (num_layers, batch, hidden)
    if isinstance(graph, DecoderStepGraph):
        axes["input_ids"] = {0: "batch"}  # one token per row
    options = {"input_names": list(names), "output_names": list(outputs)}
    if dynamo:
        shapes = {name: {axis: torch.export.Dim.AUTO for axis in axes[name]} for name in names}
        options.update(dynamic_shapes=shapes, opset_version=max(OPSET, 18), dynamo=True, verbose=False)
    else:
        options.update(dynamic_axes=axes, opset_version=OPSET, dynamo=False)
    with warnings.catch_warnings(), torch.no_grad(), quiet_native_stderr():
        warnings.simplefilter("ignore")  # the tracer's notes
        torch.onnx.export(graph, inputs, path, **options)


def check_graph(graph: nn.Module, path: str, inputs: tuple, names: tuple) -> float:
    """The largest difference between the graph's outputs in onnxruntime and `graph`'s own at `inputs`."""
    import onnxruntime

    session = onnxruntime.InferenceSession(path, providers=["CPUExecutionProvider"])
    feeds = {name: tensor.numpy() for name, tensor in zip(names, inputs, strict=True)}
    got = session.run(None, feeds)
    with torch.no_grad():
        expected = graph(*inputs)
    return max(float(abs(torch.from_numpy(a) - b).max()) for a, b in zip(got, expected, strict=True))


def export_onnx(model_name_or_path, output_dir: str, dynamo: bool = False) -> list[str]:
    """Write the two graphs, the tokenizer and generation files and `translate_onnx.py` to `output_dir`; returns
    their paths. `model_name_or_path`: a saved model's folder or Hub id (loaded and checked as `gru-translate`
    loads it). Each graph is checked in onnxruntime against the model (`ValueError` where it differs)."""
    model, tokenizer = load_model_and_tokenizer(model_name_or_path)
    if holds_int8(model):
        raise ValueError("an int8 model does not export: export the float model (int8 runs in the package only)")
    model = model.to("cpu", torch.float32).eval()
    os.makedirs(output_dir, exist_ok=True)
    encoder_inputs, decoder_inputs = example_inputs(model)
    written = []
    for graph, inputs, file, names, outputs in (
        (EncoderGraph(model), encoder_inputs, ENCODER_FILE, ENCODER_INPUTS, ENCODER_OUTPUTS),
        (DecoderStepGraph(model), decoder_inputs, DECODER_FILE, DECODER_INPUTS, DECODER_OUTPUTS),
    ):
        path = os.path.join(output_dir, file)
        try:
            export_graph(graph, inputs, path, names, outputs, dynamo)
        except Exception as error:  # noqa: BLE001 - the exporter's failures come in many types
            exporter = "torch's default exporter (dynamo)" if dynamo else "torch's TorchScript exporter"
            hint = ": export without --dynamo (the TorchScript exporter maps it)" if dynamo else ""
            raise ValueError(f"{file}: {exporter} cannot export this graph ({root_cause(error)}){hint}") from None
        difference = check_graph(graph, path, inputs, names)
        if not difference <= TOLERANCE:
            os.remove(path)
            raise ValueError(
                f"{file}: onnxruntime's outputs differ from the model's by {difference:.3g} (more than {TOLERANCE}) "
                "on a padded batch of mixed lengths, so the graph is not kept"
            )
        written.append(path)
    tokenizer.save_pretrained(output_dir)  # (also special_tokens_map and the like: the translator reads its own)
    for file in os.listdir(output_dir):  # keep only what the translator reads beside the graphs
        if file.endswith(".py") and file != TRANSLATOR_FILE:
            os.remove(os.path.join(output_dir, file))
    model.config.to_json_file(os.path.join(output_dir, "config.json"))
    model.generation_config.to_json_file(os.path.join(output_dir, "generation_config.json"))
    shutil.copyfile(
        os.path.join(os.path.dirname(__file__), TRANSLATOR_FILE), os.path.join(output_dir, TRANSLATOR_FILE)
    )
    written += [os.path.join(output_dir, file) for file in (*COPIED_FILES, "config.json", "generation_config.json")]
    return [*written, os.path.join(output_dir, TRANSLATOR_FILE)]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m modeling_gru_seq2seq.export_onnx", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("model", help="a saved model's folder (or Hub id)")
    parser.add_argument("output_dir", help="where the graphs, the tokenizer files and translate_onnx.py go")
    parser.add_argument("--dynamo", action="store_true", help="use torch's default exporter (see the module's doc)")
    args = parser.parse_args(argv)
    try:
        import onnx  # noqa: F401
        import onnxruntime  # noqa: F401
    except ImportError as error:
        print(
            f"error: ONNX export needs onnx and onnxruntime: pip install 'gru-seq2seq[onnx]' ({error})",
            file=sys.stderr,
        )
        return 1
    try:
        paths = export_onnx(args.model, args.output_dir, dynamo=args.dynamo)
    except (UsageError, ModelLoadError, ValueError, OSError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    for path in paths:
        print(path)
    print(f'translate: python {os.path.join(args.output_dir, TRANSLATOR_FILE)} "Je suis content."', file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
