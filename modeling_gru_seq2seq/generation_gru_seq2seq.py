"""Generation for [`GruSeq2SeqForConditionalGeneration`]: the decoder state between steps (`GruSeq2SeqCache`),
stop strings over target words, the checks `generate()` adds, and the lean loops behind the common searches.

`generate()` is `GenerationMixin.generate`, except that plain greedy and beam search run a lean loop: when
nothing is set beyond `max_new_tokens`/`max_length`, `eos_token_id`, `suppress_tokens` and `num_beams` (and
`input_ids`, `attention_mask`, `generation_config`), the encoder runs once, the attention keys of the source
once, then each step is the decoder's `step`, the suppressed tokens and the choice, on tensors held across
steps. The tokens are `GenerationMixin`'s: the set-up and the beam bookkeeping are its own methods. What it
skips is the per-step machinery that, for one sentence, costs as much as the model's step (preparing inputs,
output objects, logits processors, stopping criteria), and greedy search stops decoding each sentence at its
`<eos>` instead of padding it until the batch ends. Anything else (scores, hidden states, other processors,
sampling, streamers, more sequences returned) goes through `GenerationMixin`'s loops.

Length: unless a `max_new_tokens` or `max_length` is given (to `generate()`, or in the generation config), each
sentence gets `config.output_length_offset + config.output_length_ratio x` its source tokens, at most
`config.max_output_length` (`output_length_limits`): the lean loops end each row at its own limit, and
`GenerationMixin`'s loops through a stopping criterion (`SourceLengthCriteria`). With a subword vocabulary
(`config.vocabulary`), `<unk>` is suppressed: every text has a spelling in pieces and bytes.

Shapes use `batch`, `beams` (`num_beams`), `rows` (`batch * beams`, or the sentences still decoding),
`max_length` (tokens of an output, the start token included) and `vocab` (the target vocabulary).
"""

import copy

import torch
from torch.nn import functional as F
from transformers import Cache, GenerationMixin, StopStringCriteria
from transformers.generation import (
    EosTokenCriteria,
    LogitsProcessorList,
    MaxLengthCriteria,
    StoppingCriteria,
    StoppingCriteriaList,
    SuppressTokensLogitsProcessor,
)
from transformers.generation.utils import GenerationMode

from .configuration_gru_seq2seq import UNK_TOKEN_ID

# What a call may hold for the lean loops (everything else goes through GenerationMixin's loops)
LEAN_KEYWORDS = frozenset(
    {"input_ids", "attention_mask", "num_beams", "max_new_tokens", "max_length", "eos_token_id", "suppress_tokens"}
)


def equal(a, b) -> bool:
    """`a == b`, and `False` where that is not a plain answer (tensors in the values)."""
    try:
        return bool(a == b)
    except (RuntimeError, TypeError, ValueError):
        return False


class GruSeq2SeqCache(Cache):
    """The decoder's state between generation steps: the GRU hidden state after the tokens decoded so far.

    A recurrent state summarises the whole prefix, so each step feeds only the newest token (no key/value
    history, no recomputation). The state is kept batch-first so that beam search reorders it along dim 0.

    Args:
        hidden_state (`torch.Tensor` of shape `(batch, num_layers, hidden)`): the decoder GRU state.
        seq_length (`int`): number of decoder tokens that produced it.
        source_keys (`torch.Tensor` of shape `(batch, src_len, hidden)`, *optional*): the attention keys of the
            source (`GruSeq2SeqAttention.project_keys`), kept so that later steps do not project them again.
            Beam search reorders rows only among the beams of one sentence, which share their source, so
            the keys need no reordering.
    """

    is_croppable = False  # `crop()` cannot rewind a recurrent state by a step

    def __init__(self, hidden_state: torch.Tensor, seq_length: int, source_keys: torch.Tensor | None = None):
        super().__init__(layers=[])
        self.hidden_state = hidden_state
        self.seq_length = seq_length
        self.source_keys = source_keys

    def get_seq_length(self, layer_idx: int = 0) -> int:
        return self.seq_length

    def reorder_cache(self, beam_idx: torch.LongTensor):
        """Keep, for every beam, the state of the beam it continues (beam search calls this each step)."""
        self.hidden_state = self.hidden_state.index_select(0, beam_idx.to(self.hidden_state.device))


class TargetStopStringCriteria(StopStringCriteria):
    """`StopStringCriteria` over the target vocabulary of a [`GruSeq2SeqTokenizer`]: each generated id reads as
    its text in a decoded translation (`target_token_texts`: `" word"` for a word, which `decode` joins with
    spaces; a subword piece with its `▁` as a space, matched as UTF-8 bytes with its byte tokens).
    (transformers' criterion reads the tokenizer's own vocabulary, the source one here, and finds each token's
    text by decoding it behind the word `"abcdef"`, which a word-level vocabulary reads as `<unk>`.)"""

    def clean_and_embed_tokens_with_cache(self, token_list, token_indices, tokenizer):
        texts = tokenizer.target_token_texts()
        ids = sorted(texts)
        if self._stop_string_matching_mode is not None:  # byte fallback: stop strings are matched as UTF-8 bytes
            texts = {i: text if isinstance(text, bytes) else text.encode("utf-8") for i, text in texts.items()}
        return self._stop_string_create_embedding_vec(
            tuple(texts[i] for i in ids), tuple(ids), self._stop_strings_for_matching
        )


class SourceLengthCriteria(StoppingCriteria):
    """Stops each sequence at its own length limit (`output_length_limits`), for `GenerationMixin`'s loops.

    Args:
        max_lengths (`torch.LongTensor` of shape `(batch,)`): each sentence's limit in tokens, the start token
            included. Rows of a call come `rows // batch` per sentence (beams, candidates, returned sequences).
    """

    def __init__(self, max_lengths: torch.LongTensor):
        self.max_lengths = max_lengths

    def __call__(self, input_ids: torch.LongTensor, scores, **kwargs) -> torch.BoolTensor:
        per_sentence = input_ids.shape[0] // self.max_lengths.shape[0]
        return self.max_lengths.to(input_ids.device).repeat_interleave(per_sentence) <= input_ids.shape[-1]


class GruSeq2SeqGenerationMixin(GenerationMixin):
    """`GenerationMixin` with the lean loops, count checks, no assisted decoding and stop strings over target
    words. The model provides `encoder`, `decoder` (with `step`) and `decoder_start`."""

    def generate(self, *args, **kwargs):
        """`GenerationMixin.generate`; plain greedy and beam search run the lean loops (see the module's
        docstring), with the same tokens. Without a given length, each sentence's limit follows its source
        (`output_length_limits`)."""
        if kwargs.get("inputs_embeds") is not None:
            raise ValueError(
                "generate(inputs_embeds=...): this model reads token ids; pass input_ids (and attention_mask): its "
                "encoder packs each sentence by the length of its ids"
            )
        limits = self.output_length_limits(args, kwargs)
        if limits is None:
            lean = self._lean_generation(args, kwargs)
        else:  # set up for the longest limit there can be, so that the set-up is kept across calls
            lean = self._lean_generation(
                args[:1], self._with_max_length(args, kwargs, 1 + self.config.max_output_length)
            )
        if lean is None:
            if limits is not None:  # each sentence ends at its own limit
                kwargs, args = self._with_max_length(args, kwargs, 1 + int(limits.max())), args[:1]
                criteria = StoppingCriteriaList(kwargs.get("stopping_criteria") or [])
                criteria.append(SourceLengthCriteria(limits + 1))
                kwargs["stopping_criteria"] = criteria
            return super().generate(*args, **kwargs)
        input_ids, attention_mask, generation_config, suppress_tokens = lean
        row_max_lengths = None if limits is None else limits.to(input_ids.device) + 1  # the start token counts
        with torch.no_grad():
            hidden, source = self.decoder_start(self.encoder(input_ids, attention_mask), attention_mask)
            if generation_config.num_beams == 1:
                return self._lean_greedy_search(hidden, source, generation_config, suppress_tokens, row_max_lengths)
            return self._lean_beam_search(hidden, source, generation_config, suppress_tokens, row_max_lengths)

    def output_length_limits(self, args: tuple = (), kwargs: dict | None = None) -> torch.LongTensor | None:
        """`(batch,)`: the new tokens each sentence of a `generate(*args, **kwargs)` call may have,
        `config.output_length_offset + ceil(config.output_length_ratio x source tokens)` (at least 1, at most
        `config.max_output_length`); `None` where the call or a generation config gives a length
        (`max_new_tokens`, `max_length`), which then applies."""
        kwargs = kwargs or {}
        if kwargs.get("max_length") is not None or kwargs.get("max_new_tokens") is not None:
            return None
        given_config = kwargs.get("generation_config", args[1] if len(args) > 1 else None)
        for config in (given_config, self.generation_config):
            if config is not None and (config.max_length is not None or config.max_new_tokens is not None):
                return None
        attention_mask = kwargs.get("attention_mask")
        input_ids = kwargs.get("input_ids", kwargs.get("inputs", args[0] if args else None))
        if isinstance(attention_mask, torch.Tensor) and attention_mask.dim() == 2:
            source_lengths = attention_mask.ne(0).sum(dim=1)
        elif isinstance(input_ids, torch.Tensor) and input_ids.dim() == 2:
            source_lengths = torch.full((input_ids.shape[0],), input_ids.shape[1], device=input_ids.device)
        elif kwargs.get("encoder_outputs") is not None:
            states = kwargs["encoder_outputs"].last_hidden_state
            source_lengths = torch.full((states.shape[0],), states.shape[1], device=states.device)
        else:
            return None  # GenerationMixin says what is missing
        config = self.config
        limits = (source_lengths * config.output_length_ratio).ceil().long() + config.output_length_offset
        return limits.clamp(min=1, max=config.max_output_length)

    def _with_max_length(self, args: tuple, kwargs: dict, max_length: int) -> dict:
        """`kwargs` with `max_length` set, in a copy of the generation config given (as keyword or second
        argument), else as a keyword. The copy is kept while the given config is the same object with the same
        settings, so that the lean loops' set-up, kept for an unchanged config, is not made again at each call."""
        kwargs = dict(kwargs)
        given_config = kwargs.pop("generation_config", args[1] if len(args) > 1 else None)
        if given_config is None:
            kwargs["max_length"] = max_length
            return kwargs
        kept = self.__dict__.get("_kept_length_config")
        same = kept is not None and kept[0] is given_config and kept[1] == max_length
        if not same or not equal(kept[2], vars(given_config)):
            limited = copy.deepcopy(given_config)
            limited.max_length = max_length
            kept = (given_config, max_length, copy.deepcopy(vars(given_config)), limited)
            self.__dict__["_kept_length_config"] = kept
        kwargs["generation_config"] = kept[3]
        return kwargs

    def _lean_generation(self, args: tuple, kwargs: dict):
        """`(input_ids, attention_mask, generation_config, suppress_tokens)` prepared as `GenerationMixin.generate`
        prepares them, where the lean loops give its tokens; else `None`."""
        if len(args) > 2 or not LEAN_KEYWORDS.issuperset(kwargs.keys() - {"generation_config"}):
            return None
        if len(args) == 2:
            kwargs = {**kwargs, "generation_config": args[1]}
        input_ids = kwargs.get("input_ids", args[0] if args else None)
        attention_mask = kwargs.get("attention_mask")
        if (args and "input_ids" in kwargs) or not isinstance(input_ids, torch.Tensor) or input_ids.dim() != 2:
            return None
        if attention_mask is not None and not isinstance(attention_mask, torch.Tensor):
            return None
        generation_kwargs = {key: value for key, value in kwargs.items() if key not in ("input_ids", "attention_mask")}
        given_config = generation_kwargs.pop("generation_config", None)
        # The set-up depends only on these. For one sentence it costs half a millisecond, so the last one is kept
        # and reused while they are equal (a config changed in place since is set up again).
        key = (
            copy.deepcopy(generation_kwargs),
            None if given_config is None else copy.deepcopy(vars(given_config)),
            copy.deepcopy(vars(self.generation_config)),
            getattr(self.config, "vocabulary", "word"),  # subwords suppress <unk>
            attention_mask is not None,
            input_ids.device,
            self.device,
            len(input_ids) > 1,
        )
        kept = self.__dict__.get("_kept_lean_set_up")
        if kept is None or kept[1] is not given_config or not equal(kept[0], key):
            kept = (key, given_config, self._lean_set_up(given_config, generation_kwargs, attention_mask, input_ids))
            self.__dict__["_kept_lean_set_up"] = kept
        if kept[2] is None:
            return None
        return input_ids, attention_mask, *kept[2]

    def _lean_set_up(self, given_config, generation_kwargs: dict, attention_mask, input_ids):
        """`(generation_config, suppress_tokens)` as `GenerationMixin.generate` sets them up, or `None` where the
        lean loops would not give its tokens."""
        configs = (given_config, self.generation_config)
        has_default_max_length = generation_kwargs.get("max_length") is None and all(
            config is None or config.max_length is None for config in configs
        )
        has_default_min_length = all(config is None or config.min_length is None for config in configs)
        generation_config, model_kwargs = self._prepare_generation_config(given_config, **generation_kwargs)
        mode = generation_config.get_generation_mode()
        if (
            model_kwargs
            or mode not in (GenerationMode.GREEDY_SEARCH, GenerationMode.BEAM_SEARCH)
            or generation_config.num_return_sequences != 1
            or generation_config.return_dict_in_generate
            or input_ids.device != self.device
        ):
            return None
        self._validate_generation_mode(mode, generation_config, {})
        self._prepare_special_tokens(generation_config, attention_mask is not None, input_ids.device, len(input_ids))
        generation_config = self._prepare_generated_length(
            generation_config,
            has_default_max_length=has_default_max_length,
            has_default_min_length=has_default_min_length,
            model_input_name="input_ids",
            inputs_tensor=input_ids,
            input_ids_length=1,
        )
        self._validate_generated_length(generation_config, 1, has_default_max_length)
        processors = self._get_logits_processor(
            generation_config, 1, input_ids, None, LogitsProcessorList(), device=input_ids.device, model_kwargs={}
        )
        criteria = self._get_stopping_criteria(generation_config, StoppingCriteriaList())
        if not all(isinstance(processor, SuppressTokensLogitsProcessor) for processor in processors) or not all(
            isinstance(criterion, (MaxLengthCriteria, EosTokenCriteria)) for criterion in criteria
        ):
            return None
        suppress_tokens = [processor.suppress_tokens for processor in processors]
        return generation_config, torch.cat(suppress_tokens).unique() if suppress_tokens else None

    def _lean_greedy_search(
        self, hidden, source, generation_config, suppress_tokens, row_max_lengths=None
    ) -> torch.LongTensor:
        """`(batch, length)` greedy outputs, as `GenerationMixin`'s: the start token, then each step's best
        token; rows that have reached `<eos>` or their length limit are padded and leave the batch, the loop ends
        when none is left.

        Args:
            hidden (`torch.Tensor` of shape `(num_layers, batch, hidden)`): the decoder state before the start token.
            source ([`GruSeq2SeqSource`]): what the attention reads.
            row_max_lengths (`torch.LongTensor` of shape `(batch,)`, *optional*): each row's limit in tokens, the
                start token included, which then replaces `generation_config.max_length`.
        """
        batch, max_length = hidden.shape[1], generation_config.max_length
        if row_max_lengths is not None:
            max_length = int(row_max_lengths.max())
        eos, pad = generation_config._eos_token_tensor, generation_config._pad_token_tensor
        sequences = hidden.new_full((batch, max_length), 0 if pad is None else int(pad), dtype=torch.long)
        sequences[:, 0] = generation_config._decoder_start_token_tensor
        rows = torch.arange(batch, device=sequences.device)  # the sequence each decoding row writes to
        tokens, length = sequences[:, :1], 1
        while length < max_length:
            decoded = self.decoder.step(tokens, hidden, source)
            scores = decoded.logits[:, -1].float()
            if suppress_tokens is not None:
                scores.index_fill_(1, suppress_tokens, -float("inf"))
            next_tokens = scores.argmax(dim=-1)
            sequences[:, length].index_copy_(0, rows, next_tokens)
            length += 1
            hidden = decoded.hidden
            finished = None if eos is None else torch.isin(next_tokens, eos)
            if row_max_lengths is not None:
                at_limit = row_max_lengths <= length
                finished = at_limit if finished is None else finished | at_limit
            if finished is not None and finished.any():
                running = (~finished).nonzero().squeeze(1)
                if running.numel() == 0:
                    break
                rows, next_tokens = rows.index_select(0, running), next_tokens.index_select(0, running)
                hidden, source = hidden.index_select(1, running), source.select(running)
                if row_max_lengths is not None:
                    row_max_lengths = row_max_lengths.index_select(0, running)
            tokens = next_tokens.unsqueeze(1)
        return sequences[:, :length]

    def _lean_beam_search(
        self, hidden, source, generation_config, suppress_tokens, row_max_lengths=None
    ) -> torch.LongTensor:
        """`(batch, length)` beam search outputs: `GenerationMixin._beam_search` (its state, its helpers for
        the top candidates, finished beams and early stopping, the same order of operations) around the
        decoder's `step`; a sentence's candidates reaching its length limit finish, as `SourceLengthCriteria`
        finishes them there. Arguments as [`_lean_greedy_search`], one row per sentence."""
        num_beams, max_length = generation_config.num_beams, generation_config.max_length
        if row_max_lengths is not None:  # the longest, as GenerationMixin's `max_length` with the same limits
            max_length = int(row_max_lengths.max())
        length_penalty, early_stopping = generation_config.length_penalty, generation_config.early_stopping
        eos, pad = generation_config._eos_token_tensor, generation_config._pad_token_tensor
        batch, device = hidden.shape[1], hidden.device
        beam_rows = torch.arange(batch, device=device).repeat_interleave(num_beams)
        hidden, source = hidden.index_select(1, beam_rows), source.select(beam_rows)

        beams_to_keep = max(2, 1 + (0 if eos is None else eos.shape[0])) * num_beams
        top_num_beam_mask = torch.arange(beams_to_keep, device=device) < num_beams
        fill_value = pad or eos[0] if eos is not None else -1  # as GenerationMixin (a pad id of 0 fills with eos)
        running_sequences = torch.full((batch, num_beams, max_length), fill_value, dtype=torch.long, device=device)
        running_sequences[:, :, 0] = generation_config._decoder_start_token_tensor
        sequences = running_sequences.clone()
        running_beam_scores = torch.zeros((batch, num_beams), device=device)
        running_beam_scores[:, 1:] = -1e9
        beam_scores = torch.full((batch, num_beams), -1e9, device=device)
        is_sent_finished = torch.zeros((batch, num_beams), dtype=torch.bool, device=device)
        is_early_stop_heuristic_unsatisfied = torch.ones((batch, 1), dtype=torch.bool, device=device)
        running_beam_indices = torch.full((batch, num_beams, max_length - 1), -1, dtype=torch.int32, device=device)
        beam_indices = running_beam_indices.clone()

        cur_len = 1
        while True:
            decoded = self.decoder.step(running_sequences[:, :, cur_len - 1].reshape(-1, 1), hidden, source)
            log_probs = F.log_softmax(decoded.logits[:, -1].float(), dim=-1)
            if suppress_tokens is not None:
                log_probs.index_fill_(1, suppress_tokens, -float("inf"))
            log_probs = (log_probs.view(batch, num_beams, -1) + running_beam_scores[:, :, None]).view(batch, -1)
            topk_log_probs, topk_running_sequences, topk_running_beam_indices = self._get_top_k_continuations(
                log_probs, running_sequences, running_beam_indices, cur_len, 1, False, beams_to_keep, num_beams, batch
            )
            if row_max_lengths is None:
                hits_stopping_criteria = torch.full_like(topk_log_probs, cur_len + 1 >= max_length, dtype=torch.bool)
            else:
                hits_stopping_criteria = (row_max_lengths[:, None] <= cur_len + 1).expand_as(topk_log_probs)
            if eos is not None:
                hits_stopping_criteria = hits_stopping_criteria | torch.isin(
                    topk_running_sequences[:, :, cur_len], eos
                )
            running_sequences, running_beam_scores, running_beam_indices = self._get_running_beams_for_next_iteration(
                topk_log_probs, topk_running_sequences, topk_running_beam_indices, hits_stopping_criteria, num_beams
            )
            sequences, beam_scores, beam_indices, is_sent_finished = self._update_finished_beams(
                sequences,
                topk_running_sequences,
                beam_scores,
                topk_log_probs,
                beam_indices,
                topk_running_beam_indices,
                is_early_stop_heuristic_unsatisfied,
                is_sent_finished,
                hits_stopping_criteria,
                top_num_beam_mask,
                num_beams,
                cur_len,
                1,
                length_penalty,
                early_stopping,
            )
            hidden = decoded.hidden.index_select(1, running_beam_indices[..., cur_len - 1].flatten())
            cur_len += 1
            is_early_stop_heuristic_unsatisfied = self._check_early_stop_heuristic(
                is_early_stop_heuristic_unsatisfied,
                running_beam_scores,
                beam_scores,
                is_sent_finished,
                cur_len,
                max_length,
                1,
                early_stopping,
                length_penalty,
            )
            if not self._beam_search_has_unfinished_sequences(
                is_early_stop_heuristic_unsatisfied, is_sent_finished, hits_stopping_criteria, early_stopping
            ):
                break
        best_indices = beam_indices[:, 0]
        return sequences[:, 0, : 1 + int((best_indices + 1).bool().sum(dim=1).max())]

    def _prepare_generation_config(self, generation_config, **kwargs):
        """As `GenerationMixin`'s, then its counts checked: `num_beams=0` and the like fail in one line here
        instead of deep inside the search."""
        generation_config, model_kwargs = super()._prepare_generation_config(generation_config, **kwargs)
        if getattr(self.config, "vocabulary", "word") != "word":  # subwords: every text has a spelling, no <unk>
            suppressed = list(generation_config.suppress_tokens or [])
            if UNK_TOKEN_ID not in suppressed:
                generation_config.suppress_tokens = [*suppressed, UNK_TOKEN_ID]
        for key, minimum in (("num_beams", 1), ("num_return_sequences", 1), ("max_new_tokens", 1), ("max_length", 1)):
            value = getattr(generation_config, key)
            if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < minimum):
                raise ValueError(f"{key}: got {value!r}, want an integer >= {minimum}")
        return generation_config, model_kwargs

    def _validate_generation_mode(self, generation_mode, generation_config, generation_mode_kwargs):
        if generation_mode == GenerationMode.ASSISTED_GENERATION:
            raise ValueError(
                "assisted decoding (`assistant_model`, `prompt_lookup_num_tokens`) is not available: it rewinds the "
                "decoder past rejected tokens, and a GRU's state, which summarises the whole prefix, cannot be rewound"
            )
        super()._validate_generation_mode(generation_mode, generation_config, generation_mode_kwargs)

    def _get_stopping_criteria(self, generation_config, stopping_criteria, tokenizer=None, **kwargs):
        """`generate(stop_strings=..., tokenizer=tokenizer)` matches the stop strings against the target words
        (see [`TargetStopStringCriteria`]); everything else as `GenerationMixin`."""
        if generation_config.stop_strings is None or not hasattr(tokenizer, "target_vocab"):
            return super()._get_stopping_criteria(generation_config, stopping_criteria, tokenizer=tokenizer, **kwargs)
        without_stop_strings = copy.copy(generation_config)
        without_stop_strings.stop_strings = None
        criteria = super()._get_stopping_criteria(
            without_stop_strings, stopping_criteria, tokenizer=tokenizer, **kwargs
        )
        criteria.append(TargetStopStringCriteria(tokenizer, generation_config.stop_strings))
        return criteria
