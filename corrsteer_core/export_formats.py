"""Export a profile to the formats other tools read: a llama.cpp control vector (GGUF) and lm-eval's steering file.

Every export carries a *steering card*: what the profile was chosen on and what it did there (task, splits, model
and SAE fingerprints, position mode, flips, SER, McNemar p, bootstrap CI, the controls' verdict where known). The
card goes into the GGUF metadata and into a JSON sidecar ``<out>.card.json``; cards read back are validated.

Layer numbering. llama.cpp adds ``direction.{il}`` to the output of its 0-based block ``il``
(``llama_adapter_cvec::apply_to`` is called with the block index after each block) and never holds a tensor for
block 0. corrsteer's ``blocks.{L}.hook_resid_post`` is the output of 0-based block ``L``, so it maps to
``direction.{L}``; ``L == 0`` and ``hook_resid_pre`` sites (block inputs) cannot be expressed and are refused.
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path
from typing import Any

import torch

from corrsteer_core import storage
from corrsteer_core.errors import ConfigError, ProfileError

__all__ = [
    "CARD_VERSION",
    "EXPORT_FORMATS",
    "card_path",
    "check_exportable",
    "gguf_directions",
    "gguf_layer",
    "lm_eval_hookpoint",
    "read_card",
    "steering_card",
    "write_gguf",
    "write_lm_eval",
]

CARD_VERSION = 1
EXPORT_FORMATS = ("safetensors", "gguf", "lm-eval")
MAX_CARD_BYTES = 64_000
_POST = re.compile(r"blocks\.(\d+)\.hook_resid_post")
_CARD_NUMBERS = ("n", "base_accuracy", "steered_accuracy", "diff", "ci_low", "ci_high", "ser", "p_value")
_CARD_INTS = ("pos", "neg", "changed")
_CARD_TEXTS = ("profile", "preset", "model_id", "task", "variant", "positions", "site", "profile_hash", "split")


def card_path(out: Path) -> Path:
    return Path(out).with_name(Path(out).name + ".card.json")


def _evaluation(profile: Any) -> dict[str, Any]:
    """The evaluation the profile carries, else the newest one saved beside its run for exactly this profile
    (evaluate.record_evaluation; the test split first), else an empty mapping."""
    ev = profile.evaluation
    if not ev:
        ev = _recorded_evaluation(profile)
    summary = ev.get("summary", ev) if isinstance(ev, dict) else {}
    if not isinstance(summary, dict):
        return {}
    return {**summary, **({"split": ev["split"]} if isinstance(ev.get("split"), str) else {})}


def _recorded_evaluation(profile: Any) -> dict[str, Any]:
    from corrsteer_core.evaluate import profile_run_store

    store = profile_run_store(profile)
    if store is None:
        return {}
    mine = [r for r in store.evaluations() if r.get("profile_hash") == profile.content_hash()]
    mine.sort(key=lambda r: r.get("split") != "test")  # stable: newest test record first
    return mine[0] if mine else {}


def _controls_verdict(profile: Any) -> str | None:
    from corrsteer_core.controls import recorded_controls

    verdict = recorded_controls(profile).get("verdict")
    return verdict[:400] if isinstance(verdict, str) else None


def steering_card(profile: Any) -> dict[str, Any]:
    """The card of ``profile``: where it came from and the evidence it carries (None where it has none)."""
    prov = profile.provenance
    ev = _evaluation(profile)
    split = prov.split.to_dict() if prov.split is not None else None
    card: dict[str, Any] = {
        "card_version": CARD_VERSION,
        "profile": profile.name,
        "preset": profile.preset,
        "model_id": profile.model_id,
        "task": prov.task_name,
        "variant": prov.variant,
        "splits": split,
        "split": ev.get("split") if isinstance(ev.get("split"), str) else None,
        "positions": profile.positions,
        "site": profile.site,
        "profile_hash": profile.content_hash(),
        "sae_fingerprints": {str(s.layer): s.fingerprint for s in profile.enabled},
        "layers": [[s.layer, s.feature, s.coefficient * s.scale * profile.global_scale] for s in profile.enabled],
        "controls_verdict": _controls_verdict(profile),
    }
    for key in _CARD_NUMBERS + _CARD_INTS:
        value = ev.get(key)
        card[key] = value if isinstance(value, int | float) and not isinstance(value, bool) else None
    return read_card(card)


def read_card(data: Any) -> dict[str, Any]:
    """Validate a card (bounded, typed): ProfileError naming the first thing wrong."""
    if isinstance(data, str | bytes):
        if len(data) > MAX_CARD_BYTES:
            raise ProfileError(f"a steering card may be at most {MAX_CARD_BYTES} bytes, got {len(data)}")
        try:
            data = json.loads(data)
        except ValueError as exc:
            raise ProfileError(f"the steering card is not JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise ProfileError(f"a steering card must be a JSON object, got {type(data).__name__}")
    if data.get("card_version") != CARD_VERSION:
        raise ProfileError(f"steering card version {data.get('card_version')!r} is not {CARD_VERSION}")
    known = {"card_version", "splits", "sae_fingerprints", "layers", "controls_verdict"}
    known |= set(_CARD_NUMBERS) | set(_CARD_INTS) | set(_CARD_TEXTS)
    unknown = set(data) - known
    if unknown:
        raise ProfileError(f"the steering card has unknown keys {sorted(unknown)}")
    for key in (*_CARD_TEXTS, "controls_verdict"):
        if data.get(key) is not None and (not isinstance(data[key], str) or len(data[key]) > 400):
            raise ProfileError(f"steering card {key} must be text of at most 400 characters, got {data[key]!r}")
    for key in _CARD_NUMBERS:
        v = data.get(key)
        if v is not None and (isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v)):
            raise ProfileError(f"steering card {key} must be a finite number or null, got {v!r}")
    for key in _CARD_INTS:
        v = data.get(key)
        if v is not None and (isinstance(v, bool) or not isinstance(v, int) or v < 0):
            raise ProfileError(f"steering card {key} must be a non-negative integer or null, got {v!r}")
    fps = data.get("sae_fingerprints") or {}
    if not isinstance(fps, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in fps.items()):
        raise ProfileError("steering card sae_fingerprints must map layers (text) to fingerprints (text)")
    layers = data.get("layers") or []
    if not isinstance(layers, list) or len(layers) > 1024:
        raise ProfileError("steering card layers must be a list of at most 1024 [layer, feature, coefficient]")
    if data.get("splits") is not None and not isinstance(data["splits"], dict):
        raise ProfileError("steering card splits must be a mapping or null")
    if len(json.dumps(data)) > MAX_CARD_BYTES:
        raise ProfileError(f"a steering card may be at most {MAX_CARD_BYTES} bytes")
    return dict(data)


def gguf_layer(hook: str) -> int:
    """llama.cpp's ``direction.{il}`` index for a corrsteer hook; ConfigError for what llama.cpp cannot hold."""
    m = _POST.fullmatch(hook)
    if m is None:
        raise ConfigError(
            f"{hook!r} is not a block output; a llama.cpp control vector is added only to block outputs "
            "(blocks.{L}.hook_resid_post), so this profile (site=block_input?) cannot be exported as gguf"
        )
    layer = int(m.group(1))
    if layer == 0:
        raise ConfigError(
            "llama.cpp cannot steer the output of block 0 (it holds no direction.0); leave layer 0 out with "
            "--enable (e.g. --enable 1-29)"
        )
    return layer


def check_exportable(profile: Any, fmt: str) -> None:
    """Refuse, before any loading, a profile that ``fmt`` cannot express (ConfigError)."""
    if fmt not in EXPORT_FORMATS:
        raise ConfigError(f"format {fmt!r} is not valid. Valid: {', '.join(EXPORT_FORMATS)}")
    if not profile.enabled:
        raise ConfigError("the profile steers no enabled layer; there is nothing to export")
    for s in profile.enabled:
        if fmt == "gguf":
            gguf_layer(s.hook_name)
        elif fmt == "lm-eval":
            lm_eval_hookpoint(s.hook_name)


def gguf_directions(profile: Any, saes: Any) -> dict[int, torch.Tensor]:
    """llama.cpp layer index -> summed (d_model,) float32 vector."""
    check_exportable(profile, "gguf")
    return {
        gguf_layer(hook): vec.detach().to(torch.float32).cpu().contiguous()
        for hook, vec in profile.vectors(saes).items()
    }


def write_gguf(profile: Any, saes: Any, path: Path, model_hint: str = "llama") -> Path:
    """Write ``profile`` as a llama.cpp control vector (tensors direction.{il}) with its card in the metadata."""
    import gguf

    directions = gguf_directions(profile, saes)
    card = steering_card(profile)
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    writer = gguf.GGUFWriter(str(tmp), "controlvector")
    writer.add_string("controlvector.model_hint", model_hint)
    writer.add_uint32("controlvector.layer_count", len(directions))
    writer.add_string("corrsteer.card", json.dumps(card, sort_keys=True))
    for il, vec in sorted(directions.items()):
        writer.add_tensor(f"direction.{il}", vec.numpy())
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    tmp.replace(path)
    storage.atomic_write_json(card_path(path), card)
    return path


def lm_eval_hookpoint(hook: str) -> str:
    """lm-eval's ``steered`` model hooks a submodule of ``model.base_model`` by its dotted name; for a HF Llama
    model that is the LlamaModel, whose block ``L`` is ``layers.{L}`` (its output: corrsteer's hook_resid_post)."""
    m = _POST.fullmatch(hook)
    if m is None:
        raise ConfigError(f"{hook!r} is not a block output; lm-eval's steered model hooks block outputs only")
    return f"layers.{int(m.group(1))}"


def write_lm_eval(profile: Any, saes: Any, path: Path) -> Path:
    """Write the ``steer_path`` .pt that ``lm_eval --model steered`` loads (plain tensors and values only)."""
    check_exportable(profile, "lm-eval")
    config: dict[str, dict[str, Any]] = {}
    for hook, vec in profile.vectors(saes).items():
        config[lm_eval_hookpoint(hook)] = {
            "steering_vector": vec.detach().to(torch.float32).cpu().contiguous(),
            "steering_coefficient": 1.0,
            "action": "add",
            "bias": None,
            "head_index": None,
        }
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    torch.save(config, tmp)
    tmp.replace(path)
    storage.atomic_write_json(card_path(path), steering_card(profile))
    return path
