"""Batched, KV-cached generation (greedy, or sampled on request) with exact knowledge of the generation positions.

Our own loop rather than ``model.generate`` so that every forward call is a known step: step 0 is the prefill
(its last position predicts the first new token), step j >= 1 feeds generated token j back. A row stops at its
first stop token, which is never fed back, so its generation positions are the steps before it. This makes
batched left-padded generation give the same tokens as one-by-one generation and lets collection mask finished
rows exactly. :class:`Sampling` (temperature, top-p, seed) replaces the argmax for free-form comparisons;
evaluation and collection stay greedy.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from transformers.cache_utils import DynamicCache

from corrsteer_core.errors import ConfigError
from corrsteer_core.limits import MAX_SAMPLES, MAX_TEMPERATURE, check_at_most, check_new_tokens

__all__ = [
    "GenerationResult",
    "Sampling",
    "check_context",
    "choice_token_ids",
    "encode_prompts",
    "greedy_generate",
    "stop_token_ids",
]


@dataclass(frozen=True)
class Sampling:
    """How a free-form reply picks each token: ``temperature`` 0 is greedy (argmax); above 0, nucleus sampling
    over the smallest set of tokens whose probability reaches ``top_p``, from a generator seeded with ``seed``
    (the same seed gives the same replies). ``n_samples`` replies are drawn per prompt."""

    temperature: float = 0.0
    top_p: float = 1.0
    seed: int = 0
    n_samples: int = 1

    def __post_init__(self) -> None:
        if (
            not isinstance(self.temperature, int | float)
            or not math.isfinite(self.temperature)
            or self.temperature < 0
        ):
            raise ConfigError(f"temperature must be a number >= 0, got {self.temperature!r}")
        check_at_most("temperature", self.temperature, MAX_TEMPERATURE)
        if not isinstance(self.top_p, int | float) or not 0 < self.top_p <= 1:
            raise ConfigError(f"top_p must be in (0, 1], got {self.top_p!r}")
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or not 0 <= self.seed < 2**63:
            raise ConfigError(f"seed must be an integer in 0..2**63-1, got {self.seed!r}")
        if isinstance(self.n_samples, bool) or not isinstance(self.n_samples, int) or self.n_samples < 1:
            raise ConfigError(f"n_samples must be a positive integer, got {self.n_samples!r}")
        check_at_most("n_samples", self.n_samples, MAX_SAMPLES)

    @property
    def greedy(self) -> bool:
        return self.temperature == 0


def _pick(logits: torch.Tensor, sampling: Sampling | None, generator: torch.Generator | None) -> torch.Tensor:
    """Next token per row (batch,) from logits (batch, vocab)."""
    if sampling is None or sampling.greedy:
        return logits.argmax(dim=-1)
    probs = torch.softmax(logits / sampling.temperature, dim=-1)
    if sampling.top_p < 1:
        sorted_probs, order = probs.sort(dim=-1, descending=True)
        outside = sorted_probs.cumsum(dim=-1) - sorted_probs >= sampling.top_p  # the best token always stays
        sorted_probs = sorted_probs.masked_fill(outside, 0.0)
        probs = torch.zeros_like(probs).scatter(-1, order, sorted_probs)
    picked = torch.multinomial(probs.cpu(), 1, generator=generator)[:, 0]
    return picked.to(logits.device)


@dataclass
class GenerationResult:
    prompt_ids: list[list[int]]
    token_ids: list[list[int]]  # generated tokens per row, up to and excluding the first stop token
    texts: list[str]
    stopped: list[bool]  # True where the row ended with a stop token (False: hit max_new_tokens)
    step_mask: torch.Tensor  # (batch, steps) bool: step j is a generation position of row b

    @property
    def n_steps(self) -> int:
        return int(self.step_mask.shape[1])


def encode_prompts(tokenizer: object, prompts: Sequence[str], use_chat_template: bool) -> list[list[int]]:
    """Token ids of each prompt, as a user turn of the chat template when asked (and the model has one)."""
    out: list[list[int]] = []
    for text in prompts:
        if use_chat_template and getattr(tokenizer, "chat_template", None):
            ids = tokenizer.apply_chat_template(  # type: ignore[attr-defined]
                [{"role": "user", "content": text}], add_generation_prompt=True, tokenize=True
            )
            if isinstance(ids, dict) or hasattr(ids, "keys"):
                ids = ids["input_ids"]
            out.append(list(ids))
        else:
            ids = tokenizer(text, add_special_tokens=True)["input_ids"]  # type: ignore[operator]
            out.append(list(ids))
    return out


def check_context(model: Any, prompt_ids: Sequence[list[int]], max_new_tokens: int, names: Sequence[str]) -> None:
    """Refuse a prompt that cannot fit the model's context with ``max_new_tokens`` more, naming it, before any
    forward pass (a prompt far over the context would otherwise try to allocate its attention and fail late)."""
    limit = getattr(getattr(model, "config", None), "max_position_embeddings", None)
    if not isinstance(limit, int) or limit < 1:
        return
    for ids, name in zip(prompt_ids, names, strict=True):
        if len(ids) + max_new_tokens > limit:
            raise ConfigError(
                f"{name}: the prompt is {len(ids):,} tokens; with {max_new_tokens} new tokens it exceeds the "
                f"model's context of {limit:,} tokens; shorten the prompt"
            )


def stop_token_ids(model: Any, tokenizer: object) -> set[int]:
    ids: set[int] = set()
    for source in (
        getattr(tokenizer, "eos_token_id", None),
        getattr(model.generation_config, "eos_token_id", None),
    ):
        if isinstance(source, int):
            ids.add(source)
        elif isinstance(source, list | tuple):
            ids.update(int(i) for i in source)
    return ids


def choice_token_ids(tokenizer: object, choices: Sequence[str]) -> list[int]:
    """Token ids that spell each option letter on its own (with and without a leading space)."""
    ids: set[int] = set()
    for choice in choices:
        for variant in (choice, " " + choice):
            encoded = tokenizer(variant, add_special_tokens=False)["input_ids"]  # type: ignore[operator]
            if len(encoded) == 1:
                ids.add(int(encoded[0]))
    if not ids:
        raise ConfigError(f"none of the choices {list(choices)} is a single token for this tokenizer")
    return sorted(ids)


def cache_keyword(model: Any) -> str:
    """The keyword the model's forward takes its KV cache under (``cache`` from transformers 5.24 on)."""
    parameters = inspect.signature(model.forward).parameters
    return "cache" if "cache" in parameters else "past_key_values"


def _left_pad(prompt_ids: list[list[int]], pad_id: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    width = max(len(p) for p in prompt_ids)
    ids = torch.full((len(prompt_ids), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(prompt_ids), width), dtype=torch.long)
    for row, prompt in enumerate(prompt_ids):
        ids[row, width - len(prompt) :] = torch.tensor(prompt, dtype=torch.long)
        mask[row, width - len(prompt) :] = 1
    return ids.to(device), mask.to(device)


@torch.inference_mode()
def greedy_generate(
    model: Any,
    tokenizer: object,
    prompt_ids: list[list[int]],
    *,
    max_new_tokens: int,
    stop_ids: set[int] | None = None,
    allowed_token_ids: Sequence[int] | None = None,
    on_step: Callable[[int], None] | None = None,
    sampling: Sampling | None = None,
    on_tokens: Callable[[list[int]], None] | None = None,
) -> GenerationResult:
    """Greedy decoding of a batch of token-id prompts (left-padded internally); sampled with ``sampling``.

    ``allowed_token_ids`` restricts every step to those tokens (constrained multiple-choice decoding).
    ``on_tokens`` is handed each step's new token of every row (for streaming a reply as it is produced).
    """
    check_new_tokens(max_new_tokens)
    if not prompt_ids or any(len(p) == 0 for p in prompt_ids):
        raise ConfigError("every prompt must have at least one token")
    names = [f"prompt {i + 1} of the batch" for i, _ in enumerate(prompt_ids)]
    check_context(model, prompt_ids, max_new_tokens, names)
    device = next(model.parameters()).device
    stop_ids = stop_token_ids(model, tokenizer) if stop_ids is None else stop_ids
    pad_id = getattr(tokenizer, "pad_token_id", None)
    pad_id = int(pad_id) if pad_id is not None else (min(stop_ids) if stop_ids else 0)
    ids, mask = _left_pad(prompt_ids, pad_id, device)
    batch = ids.shape[0]
    positions = (mask.cumsum(-1) - 1).clamp(min=0)
    allowed = None
    if allowed_token_ids is not None:
        allowed = torch.tensor(sorted(set(allowed_token_ids)), dtype=torch.long, device=device)
    stop_tensor = torch.tensor(sorted(stop_ids) or [-1], dtype=torch.long, device=device)
    generator = None
    if sampling is not None and not sampling.greedy:
        generator = torch.Generator().manual_seed(sampling.seed)

    cache = {cache_keyword(model): DynamicCache(config=model.config)}
    out = model(
        input_ids=ids,
        attention_mask=mask,
        position_ids=positions,
        **cache,
        use_cache=True,
        logits_to_keep=1,
    )
    generated = torch.empty((batch, 0), dtype=torch.long, device=device)
    done = torch.zeros(batch, dtype=torch.bool, device=device)
    step_mask = [torch.ones(batch, dtype=torch.bool)]
    for step in range(max_new_tokens):
        if on_step is not None:
            on_step(step)
        logits = out.logits[:, -1].float()
        if allowed is not None:
            restricted = torch.full_like(logits, float("-inf"))
            restricted[:, allowed] = logits[:, allowed]
            logits = restricted
        token = _pick(logits, sampling, generator)
        token = torch.where(done, torch.full_like(token, pad_id), token)
        generated = torch.cat([generated, token[:, None]], dim=1)
        done = done | torch.isin(token, stop_tensor)
        if on_tokens is not None:  # -1 for a row that has stopped (its stop token is never part of the reply)
            on_tokens([-1 if d else int(t) for t, d in zip(token.tolist(), done.tolist(), strict=True)])
        if bool(done.all()) or step == max_new_tokens - 1:
            break
        step_mask.append((~done).cpu())  # the token fed next is a generation position only for live rows
        mask = torch.cat([mask, torch.ones((batch, 1), dtype=mask.dtype, device=device)], dim=1)
        positions = positions[:, -1:] + 1
        out = model(
            input_ids=token[:, None],
            attention_mask=mask,
            position_ids=positions,
            **cache,
            use_cache=True,
            logits_to_keep=1,
        )
    return _finish(tokenizer, prompt_ids, generated.cpu(), stop_ids, torch.stack(step_mask, dim=1))


def _finish(
    tokenizer: object,
    prompt_ids: list[list[int]],
    generated: torch.Tensor,
    stop_ids: set[int],
    step_mask: torch.Tensor,
) -> GenerationResult:
    token_ids: list[list[int]] = []
    stopped: list[bool] = []
    for row in generated.tolist():
        cut = next((i for i, t in enumerate(row) if t in stop_ids), None)
        token_ids.append(row if cut is None else row[:cut])
        stopped.append(cut is not None)
    texts = [tokenizer.decode(t, skip_special_tokens=True) for t in token_ids]  # type: ignore[attr-defined]
    return GenerationResult(
        prompt_ids=prompt_ids, token_ids=token_ids, texts=texts, stopped=stopped, step_mask=step_mask
    )
