"""Read and write the residual stream at TransformerLens-style hook names on Hugging Face models.

Hook names (``blocks.{L}.hook_resid_pre`` / ``blocks.{L}.hook_resid_post``) are resolved to modules in one
place, :func:`resolve_hook`. Positions are chosen per forward call:

- ``generation``: the last prompt token (the position that predicts the first new token) during the prefill,
  and every fed-back token afterwards. With a KV cache each decode step sees one new position; whether a call is
  the prefill is read from the cache length, so one-token prompts and left-padded batches are handled.
- ``prompt``: every position of the prefill, nothing afterwards.
- ``all``: every position of every call.

Both context managers always remove their hooks in ``finally``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from corrsteer_core.config import POSITION_MODES
from corrsteer_core.errors import ConfigError, HookError, LayerOutOfRangeError, valid_choices

__all__ = [
    "HookSite",
    "ResidualRecorder",
    "add_to_residual",
    "capture_residuals",
    "decoder_layers",
    "resolve_hook",
]

_HOOK_RE = re.compile(r"^blocks\.(\d+)\.hook_resid_(pre|post)$")
_VALID_HOOKS = "blocks.{L}.hook_resid_pre, blocks.{L}.hook_resid_post"


@dataclass(frozen=True)
class HookSite:
    """Where a hook name lives: the decoder layer module, and whether it is the layer's input or output."""

    hook_name: str
    layer: int
    module: nn.Module
    kind: str  # "input" (resid_pre) or "output" (resid_post)


def _base_model(model: nn.Module) -> nn.Module:
    """The module that owns the decoder layers and receives the KV cache."""
    for attr in ("model", "transformer"):
        inner = getattr(model, attr, None)
        if isinstance(inner, nn.Module) and any(hasattr(inner, a) for a in ("layers", "h")):
            return inner
    if any(hasattr(model, a) for a in ("layers", "h")):
        return model
    raise HookError(f"cannot find the decoder layers of {type(model).__name__} (expected .model.layers)")


def decoder_layers(model: nn.Module) -> nn.ModuleList:
    base = _base_model(model)
    layers = getattr(base, "layers", None) or getattr(base, "h", None)
    if not isinstance(layers, nn.ModuleList):
        raise HookError(f"cannot find the decoder layers of {type(model).__name__}")
    return layers


def resolve_hook(model: nn.Module, hook_name: str) -> HookSite:
    match = _HOOK_RE.match(hook_name)
    if not match:
        raise HookError(f"unsupported hook name {hook_name!r}. Valid hook names are: {_VALID_HOOKS}")
    layers = decoder_layers(model)
    layer = int(match.group(1))
    if layer >= len(layers):
        raise LayerOutOfRangeError(
            f"hook {hook_name!r} is out of range: the model has layers 0..{len(layers) - 1}"
        )
    kind = "input" if match.group(2) == "pre" else "output"
    return HookSite(hook_name=hook_name, layer=layer, module=layers[layer], kind=kind)


def _cache_length(values: Iterable[Any]) -> int | None:
    """Tokens already held by the first KV cache among ``values`` (None: no cache passed).

    The cache is recognised by what it is, not by the keyword it travels under: transformers renamed
    ``past_key_values`` to ``cache`` in 5.24, and a hook that looked for one name silently took every decode
    step for a prefill.
    """
    for value in values:
        if hasattr(value, "get_seq_length") and callable(value.get_seq_length):
            return int(value.get_seq_length())
        if (  # legacy tuple cache: ((key, value), ...) per layer, key (batch, heads, seq, head_dim)
            isinstance(value, tuple | list)
            and value
            and isinstance(value[0], tuple | list)
            and value[0]
            and isinstance(value[0][0], torch.Tensor)
            and value[0][0].ndim == 4
        ):
            return int(value[0][0].shape[-2])
    return None


class _PhaseTracker:
    """Knows whether the current forward call is a prefill (empty KV cache) or a decode step.

    A pre-hook on the model that owns the decoder layers, so it sees each forward call once, before any layer.
    """

    def __init__(self) -> None:
        self.prefill = True

    def __call__(self, module: nn.Module, args: tuple, kwargs: dict[str, Any]) -> None:
        length = _cache_length([*args, *kwargs.values()])
        if length is None:  # no cache object: a decode step still shows a mask longer than its new tokens
            length = _mask_excess(args, kwargs)
        self.prefill = length == 0


def _mask_excess(args: tuple, kwargs: dict[str, Any]) -> int:
    """Attention-mask length minus the number of new positions (0 when that cannot be told)."""
    tokens = kwargs.get("input_ids", args[0] if args and isinstance(args[0], torch.Tensor) else None)
    if tokens is None:
        tokens = kwargs.get("inputs_embeds")
    mask = kwargs.get("attention_mask")
    if not isinstance(tokens, torch.Tensor) or not isinstance(mask, torch.Tensor) or mask.ndim != 2:
        return 0
    return max(0, int(mask.shape[-1]) - int(tokens.shape[1]))


def _check_positions(positions: str) -> None:
    if positions not in POSITION_MODES:
        raise ConfigError(
            f"positions={positions!r} is not valid. Valid values are: {valid_choices(POSITION_MODES)}"
        )


def _position_slice(positions: str, prefill: bool, seq_len: int) -> slice | None:
    """Which sequence positions of this call the mode touches (None: none of them)."""
    if positions == "all":
        return slice(None)
    if positions == "prompt":
        return slice(None) if prefill else None
    return slice(seq_len - 1, seq_len) if prefill else slice(None)  # generation


def _get_hidden(site: HookSite, args: tuple, kwargs: dict, output: Any) -> torch.Tensor:
    if site.kind == "output":
        return output[0] if isinstance(output, tuple) else output
    return args[0] if args else kwargs["hidden_states"]


@contextmanager
def _installed(model: nn.Module, sites: Sequence[HookSite], make_hook: Any) -> Iterator[_PhaseTracker]:
    tracker = _PhaseTracker()
    handles = [_base_model(model).register_forward_pre_hook(tracker, with_kwargs=True)]
    try:
        for site in sites:
            hook = make_hook(site, tracker)
            if site.kind == "output":
                handles.append(site.module.register_forward_hook(hook, with_kwargs=True))
            else:
                handles.append(site.module.register_forward_pre_hook(hook, with_kwargs=True))
        yield tracker
    finally:
        for handle in handles:
            handle.remove()


@dataclass
class ResidualRecorder:
    """Residuals captured per hook name: one (batch, selected positions, d_model) tensor per forward call."""

    positions: str
    records: dict[str, list[torch.Tensor]] = field(default_factory=dict)

    def stacked(self, hook_name: str) -> torch.Tensor:
        """(batch, steps, d_model): the calls concatenated along positions."""
        chunks = self.records.get(hook_name)
        if not chunks:
            raise HookError(f"nothing was captured at {hook_name!r}")
        return torch.cat(chunks, dim=1)

    def clear(self) -> None:
        for chunks in self.records.values():
            chunks.clear()


@contextmanager
def capture_residuals(
    model: nn.Module, hook_names: Sequence[str], positions: str = "generation", dtype: torch.dtype | None = None
) -> Iterator[ResidualRecorder]:
    """Record the residual stream at ``hook_names`` for every forward call inside the block."""
    _check_positions(positions)
    sites = [resolve_hook(model, name) for name in dict.fromkeys(hook_names)]
    recorder = ResidualRecorder(positions=positions, records={s.hook_name: [] for s in sites})

    def make_hook(site: HookSite, tracker: _PhaseTracker) -> Any:
        def hook(module: nn.Module, args: tuple, kwargs: dict, output: Any = None) -> None:
            hidden = _get_hidden(site, args, kwargs, output)  # (batch, seq, d_model)
            span = _position_slice(positions, tracker.prefill, hidden.shape[1])
            if span is not None:
                picked = hidden[:, span].detach()
                recorder.records[site.hook_name].append(picked.to(dtype, copy=True) if dtype else picked.clone())

        return hook

    with _installed(model, sites, make_hook):
        yield recorder


class _Vector:
    """A steering vector, converted once per (device, dtype) it meets rather than at every forward call."""

    def __init__(self, vector: torch.Tensor) -> None:
        self.vector = vector
        self._converted: dict[tuple[torch.device, torch.dtype], torch.Tensor] = {}

    def add_to(self, hidden: torch.Tensor, span: slice) -> None:
        """Add in place: the layer's fresh output tensor is modified before anything else reads it."""
        key = (hidden.device, hidden.dtype)
        if key not in self._converted:
            self._converted[key] = self.vector.to(device=hidden.device, dtype=hidden.dtype)
        if span == slice(None):
            hidden.add_(self._converted[key])
        else:
            hidden[:, span] += self._converted[key]


@contextmanager
def add_to_residual(
    model: nn.Module, vectors: Mapping[str, torch.Tensor], positions: str = "generation"
) -> Iterator[None]:
    """Add a constant vector (d_model,) to the residual stream at each hook name while the block runs."""
    _check_positions(positions)
    summed: dict[str, torch.Tensor] = {}
    for name, vector in vectors.items():
        if vector.ndim != 1:
            raise ConfigError(
                f"steering vector for {name!r} must be 1-D (d_model,), got shape {tuple(vector.shape)}"
            )
        summed[name] = summed[name] + vector if name in summed else vector.detach().clone()
    sites = [resolve_hook(model, name) for name in summed]
    width = getattr(getattr(model, "config", None), "hidden_size", None)
    for name, vector in summed.items():
        if width is not None and vector.shape[0] != width:
            raise ConfigError(
                f"steering vector for {name!r} has width {vector.shape[0]}, the model's residual width is {width}"
            )

    def make_hook(site: HookSite, tracker: _PhaseTracker) -> Any:
        vector = _Vector(summed[site.hook_name])

        def hook(module: nn.Module, args: tuple, kwargs: dict, output: Any = None) -> None:
            hidden = _get_hidden(site, args, kwargs, output)
            span = _position_slice(positions, tracker.prefill, hidden.shape[1])
            if span is not None:
                vector.add_to(hidden, span)

        return hook

    with _installed(model, sites, make_hook):
        yield
