"""PyTorch GRU sequence-to-sequence model with attention: the Practical PyTorch translator, batched.

Top to bottom: the encoder, what the decoder reads from the source (`GruSeq2SeqSource`) and the attention over
it, the decoders (one interface: `step` one token, `forward` a whole target; Luong runs a teacher-forced target in
one call), the `PreTrainedModel` base and the model with a language-modelling head (encode, initial state,
decode, loss). Generation (the cache, the lean search loops) is in `generation_gru_seq2seq.py`.
Shapes use `batch`, `src_len` (source tokens), `tgt_len` (target tokens), `hidden` (`config.hidden_size`)
and `vocab` (`config.target_vocab_size`). Padding is on the right.
"""

import logging
import math
from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence, pad_sequence
from transformers import PreTrainedModel
from transformers.modeling_outputs import Seq2SeqLMOutput, Seq2SeqModelOutput
from transformers.utils import ModelOutput

from .configuration_gru_seq2seq import ATTENTION_SCORES, GruSeq2SeqConfig
from .generation_gru_seq2seq import GruSeq2SeqCache, GruSeq2SeqGenerationMixin
from .gru_choice import Loops, choice
from .gru_kernels import recurrence_ops
from .int8_weights import INT8_NOT_SAVED, INT8_NOT_TRAINED, Int8Linear, holds_int8, quantize_gru_weights
from .packed_gru import PackedGRU, bf16_inference, bf16_inference_loops, holds_int8_weights, int8_loops
from .saved_files import check_model_files

logger = logging.getLogger(__name__)

# Why `gradient_checkpointing_enable()` (and `--gradient_checkpointing`) is refused.
GRADIENT_CHECKPOINTING_REFUSED = (
    "gradient checkpointing is not supported: a GRU layer keeps only a few hidden-size vectors per token for its "
    "backward pass, so recomputing layers would save little (most training memory is the output layer's logits); "
    "to use less memory, lower --per_device_train_batch_size and raise --gradient_accumulation_steps"
)


def linear_weights(module: nn.Module) -> tuple[torch.Tensor, torch.Tensor | None]:
    """The float weight and bias of a linear layer, also of a module put in its place that keeps them otherwise
    (`torch.ao.quantization.quantize_dynamic`'s: methods returning quantized tensors, read dequantized; an
    [`Int8Linear`]: its weight dequantized)."""
    if isinstance(module, Int8Linear):
        return module.dequantized_weight(), module.bias
    weight, bias = module.weight, getattr(module, "bias", None)
    if callable(weight):
        weight = weight()
    if callable(bias):
        bias = bias()
    weight = weight.dequantize() if weight.is_quantized else weight
    return weight, bias


def plain_linear(*modules: nn.Module) -> bool:
    """Whether each module is a float `nn.Linear` itself or an [`Int8Linear`] (the compiled decoding step reads their
    weights)."""
    return all(
        type(module) is Int8Linear or (type(module) is nn.Linear and module.weight.is_floating_point())
        for module in modules
    )


# the dtypes a trained model translates in (`to_inference_dtype`; `gru-translate --dtype`, `gru-serve --dtype`)
INFERENCE_DTYPES = ("float32", "bfloat16", "int8")


def flat_positions(mask: torch.Tensor) -> torch.LongTensor:
    """Indices of the True entries of a `(batch, tgt_len)` mask into its flattened `batch * tgt_len` positions.
    (`index_select` with them has a cheap backward; boolean indexing's accumulates slowly on the CPU.)"""
    return mask.flatten().nonzero().squeeze(1)


@dataclass
class GruSeq2SeqEncoderOutput(ModelOutput):
    """
    Output of [`GruSeq2SeqEncoder`]. Both fields are top-level batch-first tensors, so `generate()` expands
    them for beams and returned sequences with `repeat_interleave`.

    Args:
        last_hidden_state (`torch.Tensor` of shape `(batch, src_len, hidden)`):
            Encoder outputs, forward and backward directions summed; zeros at padding positions.
        final_hidden_state (`torch.Tensor` of shape `(batch, 2 * num_layers, hidden)`):
            The GRU's final states (`h_n`) in torch's order: layer 0 forward, layer 0 backward, layer 1
            forward, ... Each sentence's states are taken at its own last token.
        hidden_states (`tuple(torch.Tensor)`, *optional*, returned with `output_hidden_states=True`):
            `(embeddings, last_hidden_state)`, each `(batch, src_len, hidden)`: the source embeddings the GRU
            reads and its top layer's outputs (directions summed).
    """

    last_hidden_state: torch.Tensor | None = None
    final_hidden_state: torch.Tensor | None = None
    hidden_states: tuple[torch.Tensor, ...] | None = None


class GruSeq2SeqEncoder(nn.Module):
    """Embedding and a bidirectional GRU over packed sequences, as the tutorial's `EncoderRNN`."""

    main_input_name = "input_ids"

    def __init__(self, config: GruSeq2SeqConfig):
        super().__init__()
        self.embedding = nn.Embedding(config.source_vocab_size, config.hidden_size)
        self.gru = PackedGRU(
            config.hidden_size,
            config.hidden_size,
            config.num_layers,
            dropout=config.dropout if config.num_layers > 1 else 0.0,
            bidirectional=True,
            batch_first=True,
        )

    def forward(
        self,
        input_ids: torch.LongTensor,
        attention_mask: torch.Tensor | None = None,
        output_hidden_states: bool | None = None,
        **kwargs,
    ) -> GruSeq2SeqEncoderOutput:
        """
        Args:
            input_ids (`torch.LongTensor` of shape `(batch, src_len)`): source token ids.
            attention_mask (`torch.Tensor` of shape `(batch, src_len)`, *optional*): 1 for tokens, 0 for padding.
            output_hidden_states (`bool`, *optional*): also return `hidden_states`.
        """
        if attention_mask is None:
            attention_mask = torch.ones_like(input_ids)
        source_lengths = self.source_lengths(input_ids, attention_mask)
        embedded = self.embedding(input_ids)
        packed = pack_padded_sequence(embedded, source_lengths, batch_first=True, enforce_sorted=False)
        packed_outputs, final_hidden_state = self.gru(packed)
        outputs, _ = pad_packed_sequence(packed_outputs, batch_first=True, total_length=input_ids.shape[1])
        forward_outputs, backward_outputs = outputs.chunk(2, dim=-1)
        last_hidden_state = forward_outputs + backward_outputs
        return GruSeq2SeqEncoderOutput(
            last_hidden_state=last_hidden_state,
            final_hidden_state=final_hidden_state.transpose(0, 1),
            hidden_states=(embedded, last_hidden_state) if output_hidden_states else None,
        )

    def source_lengths(self, input_ids: torch.LongTensor, attention_mask: torch.Tensor) -> torch.LongTensor:
        """`(batch,)` sentence lengths on the CPU, where packing wants them, after one-line `ValueError`s for what
        would fail deep inside (or silently mistranslate): an empty batch, ids outside the source vocabulary, a
        row of padding only, padding that is not on the right. One copy from the device carries both the
        checks and the lengths, so the checks add no wait for the device. While the model is traced or exported
        (`torch.onnx.export`, `torch.export`) only the shapes are checked: the graph reads the lengths from the mask,
        and a check of the values would be data-dependent (the traced graph would not repeat it)."""
        if torch.jit.is_tracing() or torch.compiler.is_exporting():
            if input_ids.dim() != 2 or attention_mask is None or attention_mask.shape != input_ids.shape:
                raise ValueError("input_ids and attention_mask: want two tensors of shape (batch, src_len)")
            return (attention_mask != 0).sum(dim=1).cpu()
        if (
            not isinstance(input_ids, torch.Tensor)
            or input_ids.dtype.is_floating_point
            or input_ids.dtype
            in (
                torch.bool,
                torch.complex64,
                torch.complex128,
            )
        ):
            got = f"dtype {input_ids.dtype}" if isinstance(input_ids, torch.Tensor) else type(input_ids).__name__
            raise ValueError(f"input_ids: got {got}, want a tensor of integer token ids (torch.long)")
        if input_ids.dim() != 2 or input_ids.shape[0] == 0 or input_ids.shape[1] == 0:
            raise ValueError(f"input_ids: got shape {tuple(input_ids.shape)}, want (batch >= 1, src_len >= 1)")
        if not isinstance(attention_mask, torch.Tensor) or attention_mask.shape != input_ids.shape:
            got = tuple(attention_mask.shape) if isinstance(attention_mask, torch.Tensor) else type(attention_mask)
            raise ValueError(f"attention_mask: got shape {got}, want {tuple(input_ids.shape)}, the shape of input_ids")
        vocab_size = self.embedding.num_embeddings
        outside = (input_ids < 0) | (input_ids >= vocab_size)
        not_binary = (attention_mask != 0) & (attention_mask != 1)
        lengths = (attention_mask != 0).sum(dim=1)
        positions = torch.arange(input_ids.shape[1], device=input_ids.device)
        not_right_padded = (attention_mask != 0) != (positions < lengths.unsqueeze(1))
        problems = torch.stack([outside.any(), not_binary.any(), (lengths == 0).any(), not_right_padded.any()])
        on_cpu = torch.cat([problems.long(), lengths.long()]).cpu()
        lengths = on_cpu[4:]
        any_outside, any_not_binary, any_empty_row, any_left_padding = on_cpu[:4].tolist()
        if any_not_binary:
            raise ValueError(
                f"attention_mask: got {attention_mask[not_binary][0].item()!r}, want only 0 (padding) and 1 (token)"
            )
        if any_outside:
            raise ValueError(
                f"input_ids: got {input_ids[outside][0].item()}, want ids in 0..{vocab_size - 1} (the source "
                "vocabulary: tokenizer(...) gives source ids, tokenizer(text_target=...) target ids)"
            )
        if any_empty_row:
            row = int((lengths == 0).nonzero()[0])
            raise ValueError(f"attention_mask: row {row} is all padding, want at least one token per sentence")
        if any_left_padding:
            raise ValueError(
                "attention_mask must be 1s then 0s in every row (padding on the right, no gaps): the encoder packs "
                "each sentence by its length; pad on the right (tokenizer.padding_side = 'right')"
            )
        return lengths


@dataclass
class GruSeq2SeqSource:
    """What the decoder reads from the source sentences, row for row.

    Args:
        states (`torch.Tensor` of shape `(batch, src_len, hidden)`): the encoder outputs h_s (directions summed).
        keys (`torch.Tensor` of shape `(batch, src_len, hidden)`): `GruSeq2SeqAttention.project_keys(states)`,
            the part of the attention score that depends only on the source (`states` itself for `dot` and
            `general`).
        mask (`torch.Tensor` of shape `(batch, src_len)`): 1 for source tokens, 0 for padding.
    """

    states: torch.Tensor
    keys: torch.Tensor
    mask: torch.Tensor

    def select(self, order: torch.LongTensor) -> "GruSeq2SeqSource":
        """The rows `order` (a permutation or a subset), keys shared with the states where they are the same."""
        states = self.states.index_select(0, order)
        keys = states if self.keys is self.states else self.keys.index_select(0, order)
        return GruSeq2SeqSource(states, keys, self.mask.index_select(0, order))

    def to(self, dtype: torch.dtype) -> "GruSeq2SeqSource":
        """States and keys in `dtype` (keys still shared with the states where they are the same)."""
        states = self.states.to(dtype)
        return GruSeq2SeqSource(states, states if self.keys is self.states else self.keys.to(dtype), self.mask)

    def first(self, rows: int) -> "GruSeq2SeqSource":
        """The first `rows` rows (views, no copy)."""
        return GruSeq2SeqSource(self.states[:rows], self.keys[:rows], self.mask[:rows])


class GruSeq2SeqAttention(nn.Module):
    """Global attention over the encoder outputs with a Luong score (Luong et al., 2015, eq. 8):

        dot:     score(h_t, h_s) = h_t . h_s
        general: score(h_t, h_s) = h_t^T W_a h_s
        concat:  score(h_t, h_s) = v_a^T tanh(W_a [h_t; h_s])

    Where this follows the papers rather than the tutorial's `Attn`:
    - `concat` applies the paper's tanh (the tutorial's score is linear, `v . W [h_t; h_s]`); it is the
      additive score of Bahdanau et al. (2015);
    - `general` has no bias: a bias adds the same number to every score of a query, which the softmax
      removes (in the tutorial it never gets a gradient);
    - padding gets weight exactly 0 (the tutorial attends to padded positions).
    `general` multiplies W_a into the query (`(W_a^T h_t) . h_s`, the same score) and `concat` projects the
    encoder outputs once per call (`project_keys`), so each decoding step costs O(hidden^2), not
    O(src_len * hidden^2), in the projection.

    Args:
        score (`str`): `"dot"`, `"general"` or `"concat"`.
        hidden_size (`int`): width of queries and encoder outputs.
    """

    def __init__(self, score: str, hidden_size: int):
        super().__init__()
        self.score = score
        self.hidden_size = hidden_size
        if score == "general":
            self.query_projection = nn.Linear(hidden_size, hidden_size, bias=False)
        elif score == "concat":
            self.projection = nn.Linear(2 * hidden_size, hidden_size)  # W_a over [h_t; h_s]
            self.v = nn.Parameter(torch.empty(hidden_size))

    def project_keys(self, encoder_outputs: torch.Tensor) -> torch.Tensor:
        """The part of the score that depends only on the source, `(batch, src_len, hidden)`."""
        if self.score == "concat":
            weight, bias = linear_weights(self.projection)
            return F.linear(encoder_outputs, weight[:, self.hidden_size :].to(encoder_outputs.dtype), bias)
        return encoder_outputs

    def forward(self, query: torch.Tensor, source: GruSeq2SeqSource) -> tuple[torch.Tensor, torch.Tensor]:
        """
        Args:
            query (`torch.Tensor` of shape `(batch, tgt_len, hidden)`): decoder states h_t.
            source ([`GruSeq2SeqSource`]): the encoder outputs h_s, their keys (`project_keys`) and mask.

        Returns:
            context `(batch, tgt_len, hidden)` and attention weights `(batch, tgt_len, src_len)`.
        """
        device = query.device.type
        if torch.is_autocast_enabled(device):
            # scores in float32: Luong's unscaled scores reach the hundreds, where bfloat16 steps by 1 and float16 by
            # 1/8 (a small share of the work: the score and context products, and `general`'s query projection)
            with torch.autocast(device, enabled=False):
                return self.forward(query.float(), source.to(torch.float32))
        keys = source.keys
        if self.score == "dot":
            scores = query @ keys.transpose(1, 2)
        elif self.score == "general":
            scores = self.query_projection(query) @ keys.transpose(1, 2)
        else:
            query_part = F.linear(query, linear_weights(self.projection)[0][:, : self.hidden_size].to(query.dtype))
            scores = torch.tanh(query_part.unsqueeze(2) + keys.unsqueeze(1)) @ self.v
        scores = scores.masked_fill(source.mask.unsqueeze(1) == 0, torch.finfo(scores.dtype).min)
        attention_weights = scores.softmax(dim=-1)
        return attention_weights @ source.states, attention_weights


@dataclass
class GruSeq2SeqDecoderOutput:
    """
    Output of the decoders ([`GruSeq2SeqLuongDecoder`], [`GruSeq2SeqBahdanauDecoder`]) to the head model: a plain
    dataclass, not a `ModelOutput`, since decoding makes one per step and a `ModelOutput` costs about 50 us to
    build (a tenth of a step for one sentence).

    Args:
        logits (`torch.Tensor` of shape `(batch, tgt_len, vocab)`): next-token scores.
        hidden (`torch.Tensor` of shape `(num_layers, batch, hidden)`): the GRU state after each row's last token.
        attention_weights (`torch.Tensor` of shape `(batch, tgt_len, src_len)`): attention over the source.
        hidden_states (`tuple(torch.Tensor)`): `(embeddings, gru_outputs)`, each `(batch, tgt_len, hidden)`: the
            target embeddings the GRU reads (after dropout) and its top layer's outputs.
    """

    logits: torch.Tensor | None = None
    hidden: torch.Tensor | None = None
    attention_weights: torch.Tensor | None = None
    hidden_states: tuple[torch.Tensor, ...] | None = None


class GruSeq2SeqDecoder(nn.Module):
    """What both decoders share: `step` decodes one token for every row; `forward` decodes a whole target,
    feeding the reference tokens (teacher forcing) or each step's own argmax, one `step` at a time.
    [`GruSeq2SeqLuongDecoder`] overrides `forward` to run a teacher-forced target in one call."""

    def step(
        self, input_ids: torch.LongTensor, hidden: torch.Tensor, source: GruSeq2SeqSource
    ) -> GruSeq2SeqDecoderOutput:
        """One token per row.

        Args:
            input_ids (`torch.LongTensor` of shape `(batch, 1)`): the previous target token.
            hidden (`torch.Tensor` of shape `(num_layers, batch, hidden)`): the GRU state before it.
            source ([`GruSeq2SeqSource`]): what the attention reads.
        """
        raise NotImplementedError

    def forward(
        self,
        input_ids: torch.LongTensor,
        hidden: torch.Tensor,
        source: GruSeq2SeqSource,
        target_lengths: torch.LongTensor | None = None,
        teacher_forcing: bool = True,
        output_hidden_states: bool = False,
    ) -> GruSeq2SeqDecoderOutput:
        """Decode `input_ids` one step at a time, feeding the reference tokens (`teacher_forcing`) or each
        step's argmax (no gradient flows through the choice).

        Args:
            input_ids (`torch.LongTensor` of shape `(batch, tgt_len)`): the previous target tokens (with
                `teacher_forcing=False`, only the first column is read).
            hidden (`torch.Tensor` of shape `(num_layers, batch, hidden)`): the GRU state before them.
            source ([`GruSeq2SeqSource`]): what the attention reads.
            target_lengths (`torch.LongTensor` of shape `(batch,)`, *optional*): decode only the first
                `target_lengths[i]` tokens of row i: rows run longest first and step t decodes only the rows
                longer than t, so no step is spent on padding; the outputs after a row's length are 0.
            teacher_forcing (`bool`): feed the reference tokens, else the decoder's own argmax.
            output_hidden_states (`bool`): also return `hidden_states`.
        """
        batch, tgt_len = input_ids.shape
        if target_lengths is None:
            order, active_rows = None, [batch] * tgt_len
        else:
            order = target_lengths.argsort(descending=True)
            positions = torch.arange(tgt_len, device=target_lengths.device)
            active_rows = (target_lengths.unsqueeze(1) > positions).sum(dim=0).tolist()  # rows decoding at step t
            input_ids, hidden, source = (
                input_ids.index_select(0, order),
                hidden.index_select(1, order),
                source.select(order),
            )
        next_input_ids = input_ids[:, :1]
        steps = []
        for position, rows in enumerate(active_rows):
            if teacher_forcing:
                next_input_ids = input_ids[:, position : position + 1]
            decoded = self.step(next_input_ids[:rows], hidden[:, :rows], source.first(rows))
            hidden = decoded.hidden if rows == batch else torch.cat([decoded.hidden, hidden[:, rows:]], dim=1)
            next_input_ids = decoded.logits.argmax(dim=-1)
            steps.append(decoded)

        def stack(per_step: list[torch.Tensor]) -> torch.Tensor:
            """(rows at step t, 1, ...) per step -> (batch, tgt_len, ...), zeros after each row's length."""
            stacked = pad_sequence([tensor.squeeze(1) for tensor in per_step])
            return stacked if order is None else stacked.index_select(0, order.argsort())

        if order is not None:
            hidden = hidden.index_select(1, order.argsort())
        hidden_states = None
        if output_hidden_states:
            hidden_states = tuple(stack([decoded.hidden_states[i] for decoded in steps]) for i in range(2))
        return GruSeq2SeqDecoderOutput(
            stack([decoded.logits for decoded in steps]),
            hidden,
            stack([decoded.attention_weights for decoded in steps]),
            hidden_states,
        )


class GruSeq2SeqLuongDecoder(GruSeq2SeqDecoder):
    """Luong et al. (2015) attention decoder, as the tutorial's `LuongAttnDecoderRNN`: a GRU step, attention
    from its output h_t, the attentional state tanh(W_c [h_t; c_t]) (eq. 5), logits W_s of it (eq. 6).

    Steps depend on each other only through the GRU state (no input feeding, as in the tutorial), so a whole
    teacher-forced target runs as one GRU call and one batched attention (`forward`); free-running decoding
    feeds back each argmax, a `step` at a time.
    """

    def __init__(self, config: GruSeq2SeqConfig, output_layer: bool = True):
        super().__init__()
        hidden_size = config.hidden_size
        self.embedding = nn.Embedding(config.target_vocab_size, hidden_size)
        self.embedding_dropout = nn.Dropout(config.dropout)
        self.gru = PackedGRU(
            hidden_size,
            hidden_size,
            config.num_layers,
            dropout=config.dropout if config.num_layers > 1 else 0.0,
            batch_first=True,
        )
        self.attention = GruSeq2SeqAttention(config.attention, hidden_size)
        self.concat = nn.Linear(2 * hidden_size, hidden_size)
        # without it (the base model), "logits" are what it would read: the attentional state
        self.out = nn.Linear(hidden_size, config.target_vocab_size) if output_layer else nn.Identity()

    def step(self, input_ids, hidden, source) -> GruSeq2SeqDecoderOutput:
        """`decode_in_parallel` of one token; in eval mode without gradients, where the compiled GRU loops run
        decoding here, the same operations in one compiled call (`luong_step` in `gru_kernels`)."""
        loops = self.compiled_step_loops(input_ids, hidden)
        if loops is None:
            return self.decode_in_parallel(input_ids, hidden, source)
        attention, empty = self.attention, hidden.new_empty(0)
        if attention.score == "general":
            score_weight = attention.query_projection.weight
        elif attention.score == "concat":
            score_weight = attention.projection.weight[:, : attention.hidden_size]
        else:
            score_weight = empty
        logits, hidden, attention_weights, embedded, gru_output = loops.ops.luong_step(
            input_ids,
            hidden,
            source.states,
            source.keys,
            source.mask,
            self.embedding.weight,
            self.gru._flat_weights,
            ATTENTION_SCORES.index(attention.score),
            score_weight,
            getattr(attention, "v", empty),
            self.concat.weight,
            self.concat.bias,
            self.out.weight,
            self.out.bias,
            loops.onednn,
        )
        return GruSeq2SeqDecoderOutput(logits, hidden, attention_weights, (embedded, gru_output))

    def compiled_step_loops(self, input_ids: torch.LongTensor, hidden: torch.Tensor) -> Loops | None:
        """The compiled loops `step` runs in one call, or `None`: in training mode, with gradients, off the CPU,
        in other dtypes, under autocast or tracing, with hooks on the decoder's layers (they would not run), without
        an output layer (the base model), with a layer replaced by another kind (`quantize_dynamic`'s quantized
        linear layers, which then run as they are), or where `nn.GRU` is the faster for decoding here."""
        if (
            self.training
            or torch.is_grad_enabled()
            or hidden.device.type != "cpu"
            or not (hidden.dtype in (torch.float32, torch.float64) or bf16_inference(self, hidden))
            or torch.is_autocast_enabled("cpu")
            or torch.jit.is_tracing()
            or torch.compiler.is_compiling()
            or any(module._forward_hooks or module._forward_pre_hooks for module in self.modules())
            or not plain_linear(self.concat, self.out, *self.attention.children())
            or type(self.gru).forward is not PackedGRU.forward
        ):
            return None
        if hidden.dtype == torch.bfloat16:
            return bf16_inference_loops()
        if holds_int8_weights(self.gru):
            return int8_loops() if hidden.dtype == torch.float32 else None
        loops = choice(self.gru.hidden_size, input_ids.shape[0], training=False)
        return loops if loops is not None and loops.ops is not None else None

    def forward(
        self, input_ids, hidden, source, target_lengths=None, teacher_forcing=True, output_hidden_states=False
    ) -> GruSeq2SeqDecoderOutput:
        if teacher_forcing:
            return self.decode_in_parallel(input_ids, hidden, source, target_lengths)
        return super().forward(input_ids, hidden, source, target_lengths, teacher_forcing, output_hidden_states)

    def decode_in_parallel(
        self,
        input_ids: torch.LongTensor,
        hidden: torch.Tensor,
        source: GruSeq2SeqSource,
        target_lengths: torch.LongTensor | None = None,
    ) -> GruSeq2SeqDecoderOutput:
        """A teacher-forced target in one GRU call and one attention; arguments as `GruSeq2SeqDecoder.forward`.
        With `target_lengths` the GRU runs packed, so padding costs no work, and the output layers see only
        the decoded tokens; logits, attention weights and GRU outputs after them are 0."""
        embedded = self.embedding_dropout(self.embedding(input_ids))
        if target_lengths is None:
            gru_outputs, hidden = self.gru(embedded, hidden)
        else:
            packed = pack_padded_sequence(embedded, target_lengths.cpu(), batch_first=True, enforce_sorted=False)
            packed_outputs, hidden = self.gru(packed, hidden)
            gru_outputs, _ = pad_packed_sequence(packed_outputs, batch_first=True, total_length=input_ids.shape[1])
        context, attention_weights = self.attention(gru_outputs, source)
        states = torch.cat([gru_outputs, context], dim=-1)
        hidden_states = (embedded, gru_outputs)
        if target_lengths is None:
            logits = self.out(torch.tanh(self.concat(states)))
            return GruSeq2SeqDecoderOutput(logits, hidden, attention_weights, hidden_states)
        decoded = torch.arange(input_ids.shape[1], device=input_ids.device) < target_lengths.unsqueeze(1)
        positions = flat_positions(decoded)
        decoded_logits = self.out(torch.tanh(self.concat(states.flatten(0, 1).index_select(0, positions))))
        logits = decoded_logits.new_zeros(decoded.numel(), decoded_logits.shape[-1])
        logits = logits.index_copy(0, positions, decoded_logits).unflatten(0, decoded.shape)
        is_decoded = decoded.unsqueeze(-1)
        hidden_states = (embedded * is_decoded, gru_outputs)  # the GRU outputs are 0 there already (packed)
        return GruSeq2SeqDecoderOutput(logits, hidden, attention_weights * is_decoded, hidden_states)


class GruSeq2SeqBahdanauDecoder(GruSeq2SeqDecoder):
    """Bahdanau et al. (2015) attention decoder, as the tutorial's `BahdanauAttnDecoderRNN`: attention from the
    previous top-layer state s_{i-1} with the additive score, a GRU step over [embedding(y_{i-1}); c_i],
    logits from [s_i; c_i].

    Follows the paper where the tutorial's code is inconsistent: the GRU input and the output layer are
    `2 * hidden` wide (the tutorial declares `hidden`, so its decoder cannot run as printed), and the score has
    the paper's tanh. The tutorial's final log-softmax is left to the loss: this returns logits. The attention
    query is the previous state, so steps run one after the other even when teacher-forced.
    """

    def __init__(self, config: GruSeq2SeqConfig, output_layer: bool = True):
        super().__init__()
        hidden_size = config.hidden_size
        self.embedding = nn.Embedding(config.target_vocab_size, hidden_size)
        self.embedding_dropout = nn.Dropout(config.dropout)
        self.attention = GruSeq2SeqAttention("concat", hidden_size)
        self.gru = PackedGRU(
            2 * hidden_size,
            hidden_size,
            config.num_layers,
            dropout=config.dropout if config.num_layers > 1 else 0.0,
            batch_first=True,
        )
        # without it (the base model), "logits" are what it would read: [s_i; c_i]
        self.out = nn.Linear(2 * hidden_size, config.target_vocab_size) if output_layer else nn.Identity()

    def step(self, input_ids, hidden, source) -> GruSeq2SeqDecoderOutput:
        embedded = self.embedding_dropout(self.embedding(input_ids))
        context, attention_weights = self.attention(hidden[-1].unsqueeze(1), source)
        gru_output, hidden = self.gru(torch.cat([embedded, context], dim=-1), hidden)
        logits = self.out(torch.cat([gru_output, context], dim=-1))
        return GruSeq2SeqDecoderOutput(logits, hidden, attention_weights, (embedded, gru_output))


class GruSeq2SeqPreTrainedModel(PreTrainedModel):
    """What both models share: loading, the encoder and decoder's accessors, saving, the decoder's start and the
    run from source to decoder outputs (`encode_and_decode`)."""

    config_class = GruSeq2SeqConfig
    # the encoder and decoder sit on each model itself, under the same names (`encoder.*`, `decoder.*`), so a
    # checkpoint of either model loads into the other (the base model drops the output layer's weights)
    base_model_prefix = ""
    main_input_name = "input_ids"
    # checkpoint weights this model has no place for, dropped on load with a note (not an error)
    _dropped_checkpoint_prefixes: tuple[str, ...] = ()

    @classmethod
    def from_pretrained(cls, *args, **kwargs):
        """`PreTrainedModel.from_pretrained`, strict: weights missing from the checkpoint, unexpected in it or of
        another shape than the config says (a `config.json` with other `num_layers` or `attention`, another
        model's weights) raise one line naming them, instead of loading with layers dropped or newly
        initialised; `ignore_mismatched_sizes=True` allows them, as in transformers. Weights that are not
        finite (NaN, inf) raise too. A local folder's weights and generation settings are checked first
        (`saved_files`): a missing or damaged file is one `SavedFileError` line naming it."""
        check_model_files(args[0] if args else kwargs.get("pretrained_model_name_or_path"))
        output_loading_info = kwargs.pop("output_loading_info", False)
        strict = not kwargs.pop("ignore_mismatched_sizes", False)
        report_logger = logging.getLogger("transformers.modeling_utils")
        drop_report = logging.Filter()  # transformers' LOAD REPORT: the error below names the same tensors
        drop_report.filter = lambda record: not (strict and "LOAD REPORT" in record.getMessage())
        report_logger.addFilter(drop_report)
        try:
            model, info = super().from_pretrained(
                *args, output_loading_info=True, ignore_mismatched_sizes=True, **kwargs
            )
        finally:
            report_logger.removeFilter(drop_report)
        dropped = [key for key in info["unexpected_keys"] if key.startswith(cls._dropped_checkpoint_prefixes)]
        if dropped:
            info["unexpected_keys"] = [key for key in info["unexpected_keys"] if key not in dropped]
            unused = ", ".join(sorted(dropped))
            logger.warning(f"{cls.__name__} has no output layer: the checkpoint's {unused} are unused")
        if strict:
            problems = [
                f"{kind} {', '.join(sorted(names)[:4])}{' ...' if len(names) > 4 else ''}"
                for kind, names in (
                    ("missing:", info["missing_keys"]),
                    ("unexpected:", info["unexpected_keys"]),
                    ("other shapes than the config's:", [key for key, *_ in info["mismatched_keys"]]),
                )
                if names
            ]
            if problems:
                raise ValueError(
                    f"the weights do not fit the config ({'; '.join(problems)}); "
                    "pass ignore_mismatched_sizes=True to load them anyway"
                )
        non_finite = [
            name
            for name, tensor in model.state_dict().items()
            if tensor.is_floating_point() and not torch.isfinite(tensor).all()
        ]
        if non_finite:
            raise ValueError(
                f"non-finite weights (NaN or inf) in {', '.join(non_finite[:4])}"
                f"{' ...' if len(non_finite) > 4 else ''}: the saved model is broken"
            )
        return (model, info) if output_loading_info else model

    @classmethod
    def _supports_default_dynamic_cache(cls) -> bool:
        # The decoder state is a GruSeq2SeqCache returned by `forward`; without this, generate() would hand
        # `forward` an empty attention cache (EncoderDecoderCache) to fill.
        return False

    def get_encoder(self) -> GruSeq2SeqEncoder:
        return self.encoder

    def get_decoder(self) -> GruSeq2SeqLuongDecoder | GruSeq2SeqBahdanauDecoder:
        return self.decoder

    def get_input_embeddings(self) -> nn.Embedding:
        """The source embedding, `(source_vocab_size, hidden)`: the one `len(tokenizer)` counts."""
        return self.encoder.embedding

    def set_input_embeddings(self, value: nn.Embedding):
        self.encoder.embedding = value

    def resize_token_embeddings(
        self, new_num_tokens: int | None = None, pad_to_multiple_of: int | None = None, mean_resizing: bool = True
    ) -> nn.Embedding:
        """Resize the **source** embedding to `new_num_tokens` rows (new rows initialised as transformers does,
        see `PreTrainedModel.resize_token_embeddings`) and set `config.source_vocab_size`.

        The target side is left as it is: the output projection, the target embedding and `target_vocab_size`
        (`vocab_size`) belong to the other vocabulary. transformers' default would resize the output layer too,
        since its models share one vocabulary. Returns the source embedding.
        """
        old_embeddings = self.get_input_embeddings()
        new_embeddings = self._get_resized_embeddings(
            old_embeddings, new_num_tokens, pad_to_multiple_of, mean_resizing
        )
        new_embeddings.requires_grad_(old_embeddings.weight.requires_grad)
        self.set_input_embeddings(new_embeddings)
        self.config.source_vocab_size = new_embeddings.num_embeddings
        return new_embeddings

    def save_pretrained(self, save_directory, *args, **kwargs):
        """`PreTrainedModel.save_pretrained`, and the saved model opens as a translation pipeline whoever saves
        it (`Trainer.save_model`, transformers' example scripts): `config.json` names the pipeline under
        `custom_pipelines`, and its code, `pipeline_gru_seq2seq.py`, is written beside the model's. (That file is
        a relative import of this one, so it travels with it: `save_pretrained` copies both, and
        `trust_remote_code` fetches both.) With the tokenizer saved there too,
        `pipeline("translation", model=save_directory, trust_remote_code=True)` loads all three.
        `config.json`'s `auto_map` names both models, whichever is saved: `AutoModelForSeq2SeqLM` opens the
        translation model, `AutoModel` the base model ([`GruSeq2SeqModel`])."""
        from .pipeline_gru_seq2seq import CUSTOM_PIPELINES

        if holds_int8(self):
            raise ValueError(INT8_NOT_SAVED)
        self.config.custom_pipelines = {**CUSTOM_PIPELINES, **(getattr(self.config, "custom_pipelines", None) or {})}
        module = __name__.rsplit(".", 1)[-1]
        self.config.auto_map = {
            **(getattr(self.config, "auto_map", None) or {}),
            "AutoModel": f"{module}.GruSeq2SeqModel",
            "AutoModelForSeq2SeqLM": f"{module}.GruSeq2SeqForConditionalGeneration",
        }
        return super().save_pretrained(save_directory, *args, **kwargs)

    def to_inference_dtype(self, dtype: str | torch.dtype = "float32"):
        """This model, in eval mode and converted in place for translating in `dtype` (one of `INFERENCE_DTYPES`):
        `"float32"`, as trained; `"bfloat16"`, every weight and activation in bfloat16 (half the bytes per step;
        on the CPU the compiled decoding step and GRU loops multiply in bfloat16 and keep gates and states in
        float32 within each call), the same as `from_pretrained(..., dtype=torch.bfloat16)`; `"int8"` (the CPU
        only), the GRUs' and linear layers' weight matrices in int8 with a scale per output row, multiplied by
        the compiled int8 products (a quarter of float32's bytes per step; see `int8_weights`), all else float32.
        On the CPU it also builds the compiled kernels if they are missing (as training does), so the fast path
        runs. The saved model stays float: save the model you loaded, not a converted one (an int8 model refuses
        `save_pretrained`, and training)."""
        name = str(dtype).removeprefix("torch.")
        if name not in INFERENCE_DTYPES:
            raise ValueError(f"dtype {dtype!r}: a model translates in one of {', '.join(INFERENCE_DTYPES)}")
        if holds_int8(self) and name != "int8":
            raise ValueError(f"dtype {name!r}: this model holds int8 weights already; from_pretrained it again")
        if name == "int8" and self.device.type != "cpu":
            raise ValueError(f"dtype 'int8' translates on the CPU, and this model is on {self.device}: .to('cpu') it")
        self.eval().to(torch.float32 if name == "int8" else getattr(torch, name))
        if name != "float32" and self.device.type == "cpu":
            recurrence_ops()
        if name == "int8":
            self.quantize_int8()
        return self

    def quantize_int8(self) -> None:
        """`to_inference_dtype("int8")`'s conversion: each GRU's weight matrices to int8, and each linear layer to
        an [`Int8Linear`], except the `concat` attention score's `W_a` (its halves multiply different inputs)."""
        for module in list(self.modules()):
            if isinstance(module, PackedGRU):
                quantize_gru_weights(module)
            for name, child in module.named_children():
                keep = isinstance(module, GruSeq2SeqAttention) and name == "projection"
                if type(child) is nn.Linear and not keep:
                    setattr(module, name, Int8Linear(child))

    def train(self, mode: bool = True):
        """`nn.Module.train`; refused in one line for a model with int8 weights, which only translates."""
        if mode and holds_int8(self):
            raise ValueError(INT8_NOT_TRAINED)
        return super().train(mode)

    def gradient_checkpointing_enable(self, *args, **kwargs):
        """Refused in one line (`GRADIENT_CHECKPOINTING_REFUSED` says why); also under transformers 5's name,
        `activation_checkpointing_enable`."""
        raise ValueError(GRADIENT_CHECKPOINTING_REFUSED)

    activation_checkpointing_enable = gradient_checkpointing_enable

    def initial_decoder_state(self, final_hidden_state: torch.Tensor) -> torch.Tensor:
        """Decoder GRU state before the first token, from the encoder's final states.

        Args:
            final_hidden_state (`torch.Tensor` of shape `(batch, 2 * num_layers, hidden)`): encoder `h_n`,
                batch-first, in torch's order (layer 0 forward, layer 0 backward, layer 1 forward, ...).

        Returns:
            `(batch, num_layers, hidden)`. `decoder_init="tutorial"` (or `"seed"`): the first `num_layers`
            entries of that
            order, the tutorial's `encoder_hidden[:n_layers]`. `"sum"`: layer l's forward + backward states.
        """
        num_layers = self.config.num_layers
        if self.config.decoder_init in ("tutorial", "seed"):
            return final_hidden_state[:, :num_layers]
        return final_hidden_state.unflatten(1, (num_layers, 2)).sum(dim=2)

    def decoder_start(
        self,
        encoder_outputs: GruSeq2SeqEncoderOutput,
        attention_mask: torch.Tensor | None = None,
        cache: GruSeq2SeqCache | None = None,
    ) -> tuple[torch.Tensor, GruSeq2SeqSource]:
        """The decoder's state `(num_layers, batch, hidden)` (from `cache`, else `initial_decoder_state`) and what
        it reads from the source: the encoder outputs, their attention keys (kept in `cache`, else projected
        here) and the mask (all ones when `attention_mask` is `None`)."""
        states = encoder_outputs.last_hidden_state
        if attention_mask is None:
            attention_mask = torch.ones(states.shape[:2], device=states.device)
        if cache is None:
            hidden, keys = self.initial_decoder_state(encoder_outputs.final_hidden_state), None
        else:
            hidden, keys = cache.hidden_state, cache.source_keys
        if keys is None:
            keys = self.decoder.attention.project_keys(states)
        hidden = hidden.transpose(0, 1).contiguous()  # the GRU wants (num_layers, batch, hidden)
        return hidden, GruSeq2SeqSource(states, keys, attention_mask)

    def prepare_decoder_input_ids_from_labels(self, labels: torch.LongTensor) -> torch.LongTensor:
        """`(batch, tgt_len)` labels shifted right behind `decoder_start_token_id`, -100 replaced by padding."""
        start = labels.new_full((labels.shape[0], 1), self.config.decoder_start_token_id)
        decoder_input_ids = torch.cat([start, labels[:, :-1]], dim=1)
        return decoder_input_ids.masked_fill(decoder_input_ids == -100, self.config.pad_token_id)

    def encode_and_decode(
        self,
        input_ids: torch.LongTensor | None,
        attention_mask: torch.Tensor | None,
        decoder_input_ids: torch.LongTensor | None,
        labels: torch.LongTensor | None,
        encoder_outputs: GruSeq2SeqEncoderOutput | None,
        cache: GruSeq2SeqCache | None,
        output_hidden_states: bool,
        teacher_forcing: bool | None,
    ) -> tuple[GruSeq2SeqEncoderOutput, GruSeq2SeqDecoderOutput, GruSeq2SeqSource]:
        """The encoder (unless `encoder_outputs` are given), the decoder's start and the decoder over
        `decoder_input_ids` (default: `labels` shifted right), as `forward` documents its arguments. Returns the
        encoder's outputs, the decoder's, and what the attention read."""
        if labels is None and decoder_input_ids is None:
            raise ValueError(
                f"{type(self).__name__} needs `labels` or `decoder_input_ids`. (With label smoothing the Trainer "
                "keeps the labels for its own loss: a collator must add `decoder_input_ids`, as "
                "`DataCollatorForSeq2Seq(tokenizer, model=model)` does; `default_data_collator` does not.)"
            )
        if encoder_outputs is None:
            encoder_outputs = self.encoder(input_ids, attention_mask, output_hidden_states=output_hidden_states)
        if decoder_input_ids is None:
            decoder_input_ids = self.prepare_decoder_input_ids_from_labels(labels)
        hidden, source = self.decoder_start(encoder_outputs, attention_mask, cache)
        if teacher_forcing is None:
            teacher_forcing = not self.training or torch.rand(()).item() < self.config.teacher_forcing_ratio
        target_lengths = None if labels is None else self.labelled_lengths(labels, decoder_input_ids)
        decoder_outputs = self.decoder(
            decoder_input_ids, hidden, source, target_lengths, teacher_forcing, output_hidden_states
        )
        return encoder_outputs, decoder_outputs, source

    def shared_outputs(
        self,
        encoder_outputs: GruSeq2SeqEncoderOutput,
        decoder_outputs: GruSeq2SeqDecoderOutput,
        source: GruSeq2SeqSource,
        cache: GruSeq2SeqCache | None,
        use_cache: bool,
        output_attentions: bool | None,
        output_hidden_states: bool,
    ) -> dict:
        """The output fields both models return (`cache`, the hidden states, `cross_attentions`,
        `encoder_last_hidden_state`), from `encode_and_decode`'s results."""
        past_length = 0 if cache is None else cache.get_seq_length()
        steps = decoder_outputs.logits.shape[1]
        return {
            "cache": GruSeq2SeqCache(decoder_outputs.hidden.transpose(0, 1), past_length + steps, source.keys)
            if use_cache
            else None,
            "decoder_hidden_states": decoder_outputs.hidden_states if output_hidden_states else None,
            "cross_attentions": (decoder_outputs.attention_weights.unsqueeze(1),) if output_attentions else None,
            "encoder_last_hidden_state": source.states,
            "encoder_hidden_states": encoder_outputs.hidden_states if output_hidden_states else None,
        }

    @staticmethod
    def labelled_lengths(labels: torch.LongTensor, decoder_input_ids: torch.LongTensor) -> torch.LongTensor:
        """`(batch,)`: how many tokens of each row to decode, up to and including its last label that is not
        -100 (at least 1). The padding after it is never computed."""
        if labels.shape != decoder_input_ids.shape:
            raise ValueError(
                f"labels have shape {tuple(labels.shape)} but decoder_input_ids {tuple(decoder_input_ids.shape)}: "
                "they must be the same, one label per decoder input"
            )
        positions = torch.arange(1, labels.shape[1] + 1, device=labels.device)
        return ((labels != -100) * positions).amax(dim=1).clamp(min=1)

    def _init_weights(self, module: nn.Module):
        """PyTorch's default initialisation, as in the tutorial. (transformers' default draws Linear and Embedding
        weights from N(0, 0.02) and does not know `v_a`.) `from_pretrained` skips loaded weights."""
        if isinstance(module, (nn.Embedding, nn.Linear, nn.GRU)):
            module.reset_parameters()
        elif isinstance(module, GruSeq2SeqAttention) and module.score == "concat":
            bound = 1 / math.sqrt(module.hidden_size)
            nn.init.uniform_(module.v, -bound, bound)


class GruSeq2SeqForConditionalGeneration(GruSeq2SeqPreTrainedModel, GruSeq2SeqGenerationMixin):
    """The encoder, a Luong or Bahdanau decoder (`config.decoder_type`) and the masked cross-entropy loss.

    Teacher forcing: in training, one draw per batch from torch's global RNG (`torch.rand(())`) against
    `config.teacher_forcing_ratio` decides whether the decoder reads the reference tokens or its own
    argmax, as the tutorial's coin flip. Processes seeded alike (e.g. DDP ranks after `set_seed`) draw alike as
    long as they use that RNG alike. In eval mode the decoder is always teacher-forced.
    """

    # Used only when `config.tie_word_embeddings` is True (Luong decoder).
    _tied_weights_keys = {"decoder.out.weight": "decoder.embedding.weight"}

    def __init__(self, config: GruSeq2SeqConfig):
        super().__init__(config)
        self.encoder = GruSeq2SeqEncoder(config)
        if config.decoder_type == "luong":
            self.decoder = GruSeq2SeqLuongDecoder(config)
        else:
            self.decoder = GruSeq2SeqBahdanauDecoder(config)
        self.post_init()
        # <pad> and <sos> are never a next word; without this an untrained (or unlucky) model emits them
        self.generation_config.suppress_tokens = [config.pad_token_id, config.bos_token_id]

    def get_output_embeddings(self) -> nn.Linear:
        """The output projection, `hidden` (Luong) or `2 * hidden` (Bahdanau) -> `target_vocab_size`."""
        return self.decoder.out

    def set_output_embeddings(self, value: nn.Linear):
        self.decoder.out = value

    def forward(
        self,
        input_ids: torch.LongTensor | None = None,
        attention_mask: torch.Tensor | None = None,
        decoder_input_ids: torch.LongTensor | None = None,
        labels: torch.LongTensor | None = None,
        encoder_outputs: GruSeq2SeqEncoderOutput | None = None,
        cache: GruSeq2SeqCache | None = None,
        use_cache: bool | None = None,
        output_attentions: bool | None = None,
        output_hidden_states: bool | None = None,
        return_dict: bool | None = None,
        num_items_in_batch: int | torch.Tensor | None = None,
        teacher_forcing: bool | None = None,
        **kwargs,
    ) -> Seq2SeqLMOutput | tuple:
        r"""
        Args:
            input_ids (`torch.LongTensor` of shape `(batch, src_len)`):
                Source token ids. Not needed when `encoder_outputs` is given.
            attention_mask (`torch.Tensor` of shape `(batch, src_len)`, *optional*):
                1 for source tokens, 0 for padding (right padding).
            decoder_input_ids (`torch.LongTensor` of shape `(batch, tgt_len)`, *optional*):
                Previous target tokens; defaults to `labels` shifted right (see
                `prepare_decoder_input_ids_from_labels`). With `cache`, only the tokens after the cached ones.
            labels (`torch.LongTensor` of shape `(batch, tgt_len)`, *optional*):
                Target token ids, -100 where no loss is wanted (padding). Each row is decoded only up to its
                last label that is not -100: the padding after it costs no work, and the logits (and
                attention weights) there are 0.
            encoder_outputs ([`GruSeq2SeqEncoderOutput`], *optional*):
                Precomputed encoder outputs (`generate()` runs the encoder once and passes them).
            cache ([`GruSeq2SeqCache`], *optional*):
                Decoder state after the tokens already decoded; decoding continues from it instead of from
                the encoder's final states.
            use_cache (`bool`, *optional*, defaults to `config.use_cache`):
                Return the decoder state after `decoder_input_ids` as `cache`.
            output_attentions (`bool`, *optional*):
                Return the attention weights as `cross_attentions`: a one-element tuple (one attention
                layer) holding `(batch, 1, tgt_len, src_len)` (one head).
            output_hidden_states (`bool`, *optional*, defaults to `config.output_hidden_states`):
                Return `encoder_hidden_states` (the source embeddings and the encoder's top-layer outputs,
                directions summed) and `decoder_hidden_states` (the target embeddings the decoder GRU reads and
                its top-layer outputs): two-element tuples of `(batch, src_len, hidden)` and
                `(batch, tgt_len, hidden)` tensors. Given `labels`, the decoder's are 0 after each row's last label.
            return_dict (`bool`, *optional*, defaults to `config.return_dict`):
                Return a [`Seq2SeqLMOutput`] rather than a tuple.
            num_items_in_batch (`int` or `torch.Tensor`, *optional*):
                Label tokens in the whole gradient-accumulated batch (the `Trainer` passes it). When given, the
                loss is the summed token loss divided by it, so accumulated steps average over tokens as one
                large batch does.
            teacher_forcing (`bool`, *optional*):
                Feed the reference tokens (True) or the decoder's own argmax (False). Defaults to a draw
                against `config.teacher_forcing_ratio` in training and to True in eval mode. The Trainer
                passes its own draw, the same on every process (see `GruSeq2SeqTrainer`).

        The loss is the tutorial's `masked_cross_entropy`: the negative log-likelihood summed over the tokens
        whose label is not -100, divided by their number.
        """
        use_cache = self.config.use_cache if use_cache is None else use_cache
        return_dict = self.config.return_dict if return_dict is None else return_dict
        if output_hidden_states is None:
            output_hidden_states = self.config.output_hidden_states
        encoder_outputs, decoder_outputs, source = self.encode_and_decode(
            input_ids,
            attention_mask,
            decoder_input_ids,
            labels,
            encoder_outputs,
            cache,
            output_hidden_states,
            teacher_forcing,
        )
        logits = decoder_outputs.logits
        output = Seq2SeqLMOutput(
            loss=None if labels is None else self.masked_loss(logits, labels, num_items_in_batch),
            logits=logits,
            **self.shared_outputs(
                encoder_outputs, decoder_outputs, source, cache, use_cache, output_attentions, output_hidden_states
            ),
        )
        return output if return_dict else output.to_tuple()

    @staticmethod
    def masked_loss(
        logits: torch.Tensor, labels: torch.LongTensor, num_items_in_batch: int | torch.Tensor | None = None
    ) -> torch.Tensor:
        """The tutorial's `masked_cross_entropy`: the negative log-likelihood summed over the labels that are not
        -100, divided by their number (or by `num_items_in_batch`, the Trainer's count over accumulated steps)."""
        positions = flat_positions(labels != -100)
        summed_loss = F.cross_entropy(
            logits.flatten(0, 1).index_select(0, positions),
            labels.flatten().index_select(0, positions),
            reduction="sum",
        )
        return summed_loss / (positions.numel() if num_items_in_batch is None else num_items_in_batch)


class GruSeq2SeqModel(GruSeq2SeqPreTrainedModel):
    """The bare encoder-decoder, without the output layer (as `MarianModel` and `BartModel` under `AutoModel`): its
    `last_hidden_state` is what the translation model's output layer reads at each target position. Luong
    decoders: the attentional state tanh(W_c [h_t; c_t]), `(batch, tgt_len, hidden)`; Bahdanau: [s_i; c_i], the
    top GRU layer's output and the context, `(batch, tgt_len, 2 * hidden)`. `encoder_last_hidden_state` holds the
    encoder's outputs, directions summed, `(batch, src_len, hidden)`.

    Its weights are named as the translation model's (`encoder.*`, `decoder.*`): `from_pretrained` of a saved
    translation model drops the output layer's weights (`decoder.out.*`) with a note. The decoder always reads
    the given target tokens (teacher forcing): there is no output layer to pick its own.
    """

    _dropped_checkpoint_prefixes = ("decoder.out.",)

    def __init__(self, config: GruSeq2SeqConfig):
        super().__init__(config)
        self.encoder = GruSeq2SeqEncoder(config)
        decoder_class = GruSeq2SeqLuongDecoder if config.decoder_type == "luong" else GruSeq2SeqBahdanauDecoder
        self.decoder = decoder_class(config, output_layer=False)
        self.post_init()

    def forward(
        self,
        input_ids: torch.LongTensor | None = None,
        attention_mask: torch.Tensor | None = None,
        decoder_input_ids: torch.LongTensor | None = None,
        labels: torch.LongTensor | None = None,
        encoder_outputs: GruSeq2SeqEncoderOutput | None = None,
        cache: GruSeq2SeqCache | None = None,
        use_cache: bool | None = None,
        output_attentions: bool | None = None,
        output_hidden_states: bool | None = None,
        return_dict: bool | None = None,
        **kwargs,
    ) -> Seq2SeqModelOutput | tuple:
        r"""
        Arguments as [`GruSeq2SeqForConditionalGeneration.forward`] (`labels` only set the target tokens and
        lengths: there is no loss). Returns a [`Seq2SeqModelOutput`]: `last_hidden_state`
        `(batch, tgt_len, hidden)` (Luong) or `(batch, tgt_len, 2 * hidden)` (Bahdanau), 0 after each row's last
        label when `labels` are given; `encoder_last_hidden_state`; `cache`, `cross_attentions` and the hidden
        states as the translation model returns them.
        """
        if kwargs.get("teacher_forcing") is False:
            raise ValueError(f"{type(self).__name__} always reads the given target tokens: it has no output layer")
        use_cache = self.config.use_cache if use_cache is None else use_cache
        return_dict = self.config.return_dict if return_dict is None else return_dict
        if output_hidden_states is None:
            output_hidden_states = self.config.output_hidden_states
        encoder_outputs, decoder_outputs, source = self.encode_and_decode(
            input_ids, attention_mask, decoder_input_ids, labels, encoder_outputs, cache, output_hidden_states, True
        )
        output = Seq2SeqModelOutput(
            last_hidden_state=decoder_outputs.logits,  # "logits" without the output layer
            **self.shared_outputs(
                encoder_outputs, decoder_outputs, source, cache, use_cache, output_attentions, output_hidden_states
            ),
        )
        return output if return_dict else output.to_tuple()


GruSeq2SeqForConditionalGeneration.register_for_auto_class("AutoModelForSeq2SeqLM")
GruSeq2SeqModel.register_for_auto_class("AutoModel")
