"""Load a preset's language model: embedded (offline), a local folder, or the Hugging Face hub.

Hub presets fail fast with :class:`HubUnavailableError` when the hub cannot be reached, instead of hanging in
retries, unless the files are already in the local Hugging Face cache.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import torch

from corrsteer_core.config import PresetSpec
from corrsteer_core.embedded.model import ensure_embedded_model
from corrsteer_core.errors import ConfigError, HubUnavailableError, SAEShapeError
from corrsteer_core.presets import get_preset

__all__ = [
    "LoadedModel",
    "hub_offline",
    "hub_reachable",
    "load_model",
    "require_hub",
    "resolve_device",
    "torch_dtype",
]

log = logging.getLogger(__name__)
_HUB_HOST = ("huggingface.co", 443)


def torch_dtype(name: str) -> torch.dtype:
    return {"bfloat16": torch.bfloat16, "float16": torch.float16, "float32": torch.float32}[name]


def resolve_device(device: str | None) -> torch.device:
    """The torch device ``device`` names, refused at once when this machine has no such device (rather than
    failing inside torch after the model has been converted and loaded)."""
    if device in (None, "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        target = torch.device(device)
    except (RuntimeError, TypeError) as exc:
        raise ConfigError(f"device {device!r} is not valid (use cpu, cuda, cuda:N, mps or auto)") from exc
    if target.type == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if count == 0:
            raise ConfigError(
                f"device {device!r} is not available: this machine or this torch build has no CUDA GPU "
                "(use --device cpu, or auto to pick a GPU when there is one)"
            )
        if target.index is not None and target.index >= count:
            raise ConfigError(f"device {device!r} is not available: this machine has cuda:0..cuda:{count - 1}")
    elif target.type == "mps" and not torch.backends.mps.is_available():
        raise ConfigError(f"device {device!r} is not available on this machine (use --device cpu or auto)")
    elif target.type not in ("cpu", "cuda", "mps"):
        raise ConfigError(f"device {device!r} is not supported (use cpu, cuda, cuda:N, mps or auto)")
    return target


@functools.cache
def hub_reachable(timeout: float = 3.0) -> bool:
    """One quick TCP connect to the hub per process (False at once when HF_HUB_OFFLINE is set)."""
    if os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes"):
        return False
    try:
        with socket.create_connection(_HUB_HOST, timeout=timeout):
            return True
    except OSError:
        return False


@contextlib.contextmanager
def hub_offline() -> Iterator[bool]:
    """While the hub is unreachable, put huggingface_hub in its offline mode (yields whether the hub is reachable).

    Offline mode makes every hub request fail at once, so reading the local cache costs no retries: without it
    huggingface_hub retries each unreachable request with back-off (about 23 s per file, seen in CI).
    """
    from huggingface_hub import constants

    online = hub_reachable()
    saved = constants.HF_HUB_OFFLINE
    if not online:
        constants.HF_HUB_OFFLINE = True
    try:
        yield online
    finally:
        constants.HF_HUB_OFFLINE = saved


def require_hub(what: str) -> None:
    if not hub_reachable():
        raise HubUnavailableError(
            f"{what} needs the Hugging Face hub, which is unreachable from this machine (or HF_HUB_OFFLINE is "
            "set). Use the embedded preset 'smollm2-135m-it', which runs offline, or connect and retry."
        )


@dataclass
class LoadedModel:
    """A language model ready for corrsteer: eval mode, left-padding tokenizer, a steering lock."""

    model: Any  # a transformers causal LM (typed loosely: its config attributes are dynamic)
    tokenizer: Any
    preset: PresetSpec
    device: torch.device
    dtype: torch.dtype
    lock: threading.RLock = field(default_factory=threading.RLock, repr=False)
    # typical residual norm per hook name, measured once (diagnostics.residual_scale)
    residual_norms: dict[str, float] = field(default_factory=dict, repr=False)

    @property
    def n_layers(self) -> int:
        return int(self.model.config.num_hidden_layers)

    @property
    def d_model(self) -> int:
        return int(self.model.config.hidden_size)

    @property
    def use_chat_template(self) -> bool:
        return self.preset.model.use_chat_template and bool(getattr(self.tokenizer, "chat_template", None))


def _from_pretrained(source: str, dtype: torch.dtype, hub: bool, revision: str | None) -> tuple[Any, Any]:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    kwargs: dict[str, Any] = {"revision": revision} if revision else {}
    if hub:
        try:  # already in the local HF cache: no network needed
            with hub_offline():
                return (
                    AutoModelForCausalLM.from_pretrained(source, dtype=dtype, local_files_only=True, **kwargs),
                    AutoTokenizer.from_pretrained(source, local_files_only=True, **kwargs),
                )
        except OSError:
            require_hub(f"model {source!r}")
    return (
        AutoModelForCausalLM.from_pretrained(source, dtype=dtype, **kwargs),
        AutoTokenizer.from_pretrained(source, **kwargs),
    )


def load_model(preset: str | PresetSpec, *, device: str | None = None, dtype: str | None = None) -> LoadedModel:
    """Load the preset's model and tokenizer (converting the embedded GGUF once if needed)."""
    preset = get_preset(preset)
    spec = preset.model
    target = resolve_device(device)
    dt = torch_dtype(dtype or spec.dtype) if (dtype or spec.dtype) in ("bfloat16", "float16", "float32") else None
    if dt is None:
        raise ConfigError(f"dtype {dtype!r} is not valid. Valid values are: bfloat16, float16, float32")
    if spec.source == "embedded":
        model, tokenizer = _from_pretrained(str(ensure_embedded_model(preset)), dt, False, None)
    elif spec.source == "local":
        model, tokenizer = _from_pretrained(str(spec.path), dt, False, None)
    else:
        model, tokenizer = _from_pretrained(spec.hf_id, dt, True, spec.revision)
    model.to(target).eval().requires_grad_(False)
    config = model.config
    if config.num_hidden_layers != spec.n_layers or config.hidden_size != spec.d_model:
        raise SAEShapeError(
            f"preset {preset.name!r} expects {spec.n_layers} layers of width {spec.d_model}, but the loaded model "
            f"has {config.num_hidden_layers} layers of width {config.hidden_size}"
        )
    tokenizer.padding_side = "left"
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    return LoadedModel(model=model, tokenizer=tokenizer, preset=preset, device=target, dtype=dt)
