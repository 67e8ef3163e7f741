"""One SAE per layer, loaded through sae-lens, with fingerprints and model-space decoder directions.

Coefficients come from ``sae.encode`` on raw residuals and directions from the same loaded SAE's decoder, so both
live in the same space (sae-lens folds Llama Scope's input normalisation into the weights at load time).
"""

from __future__ import annotations

import hashlib
import json
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError

from corrsteer_core import storage
from corrsteer_core.config import PresetSpec
from corrsteer_core.errors import CacheCorruptError, ConfigError, SAEShapeError, valid_choices
from corrsteer_core.loading import LoadedModel
from corrsteer_core.presets import get_preset

__all__ = ["SAESet", "embedded_sae_dir", "load_saes", "missing_embedded_layers", "sae_fingerprint"]

_STATELESS_NORMS = ("none",)


def embedded_sae_dir(preset: PresetSpec, layer: int | None = None) -> Path:
    root = storage.cache_root() / "saes" / preset.name / str(preset.sae.set_name)
    return root if layer is None else root / f"layer_{layer}"


def missing_embedded_layers(preset: PresetSpec, layers: tuple[int, ...] | None = None) -> list[int]:
    wanted = layers if layers is not None else preset.layers
    return [L for L in wanted if not (embedded_sae_dir(preset, L) / "cfg.json").is_file()]


def sae_fingerprint(sae: torch.nn.Module) -> str:
    """sha256 over the SAE's parameters (name, shape, float32 bytes), first 16 hex digits."""
    digest = hashlib.sha256()
    for name, tensor in sorted(sae.state_dict().items()):
        digest.update(name.encode())
        digest.update(str(tuple(tensor.shape)).encode())
        digest.update(tensor.detach().to("cpu", torch.float32).contiguous().numpy().tobytes())
    return digest.hexdigest()[:16]


@dataclass
class SAESet:
    """The SAEs of one preset, keyed by layer, each with its own hook site."""

    preset: PresetSpec
    saes: dict[int, Any]  # sae-lens SAE objects (generic over their configs)
    sae_ids: dict[int, str]
    hook_names: dict[int, str]
    _fingerprints: dict[int, str] = field(default_factory=dict, repr=False)

    @property
    def layers(self) -> list[int]:
        return sorted(self.saes)

    def _get(self, layer: int) -> Any:
        if layer not in self.saes:
            raise SAEShapeError(
                f"no SAE loaded for layer {layer}. Loaded layers are: {valid_choices(self.layers)}"
            )
        return self.saes[layer]

    def read_site(self, layer: int, site: str = "sae") -> str:
        """The hook read and steered at ``layer``: the SAE's own site, or, for ``site="block_input"`` (the
        reference code's convention, kept for parity checks), the input of block ``layer``."""
        self._get(layer)
        return f"blocks.{layer}.hook_resid_pre" if site == "block_input" else self.hook_names[layer]

    def d_sae(self, layer: int) -> int:
        return int(self._get(layer).cfg.d_sae)

    def fingerprint(self, layer: int) -> str:
        if layer not in self._fingerprints:
            self._fingerprints[layer] = sae_fingerprint(self._get(layer))
        return self._fingerprints[layer]

    @torch.inference_mode()
    def encode(self, layer: int, x: torch.Tensor) -> torch.Tensor:
        """Feature activations (..., d_sae) of residuals x (..., d_model), in the SAE's dtype."""
        sae = self._get(layer)
        return sae.encode(x.to(device=sae.W_enc.device, dtype=sae.W_enc.dtype))

    @torch.inference_mode()
    def directions(self, layer: int, features: torch.Tensor | list[int]) -> torch.Tensor:
        """(n, d_model) float32: the residual-space effect of one unit of each feature, decode(e_f) - decode(0)."""
        sae = self._get(layer)
        idx = torch.as_tensor(features, dtype=torch.long).reshape(-1)
        if idx.numel() and (int(idx.min()) < 0 or int(idx.max()) >= sae.cfg.d_sae):
            raise ConfigError(
                f"feature index out of range for layer {layer}: valid indices are 0..{sae.cfg.d_sae - 1}"
            )
        w_dec = sae.W_dec.detach().float()[idx.to(sae.W_dec.device)]
        if getattr(sae.cfg, "rescale_acts_by_decoder_norm", False):
            w_dec = w_dec / w_dec.norm(dim=-1, keepdim=True)
        return w_dec.cpu()

    def neuronpedia_ids(self, layer: int) -> tuple[str, str] | None:
        return self.preset.sae.neuronpedia_ids(layer)


def _load_from_disk(path: Path, device: str) -> Any:
    from sae_lens import SAE

    if not (path / "cfg.json").is_file():
        raise FileNotFoundError(path)
    try:
        return SAE.load_from_disk(str(path), device=device)
    except (SafetensorError, json.JSONDecodeError, KeyError, RuntimeError, OSError, ValueError) as exc:
        raise CacheCorruptError(
            f"the SAE at {path} is corrupt or incomplete ({type(exc).__name__}: {exc}); delete that folder and "
            "rebuild it (for the embedded preset: corrsteer prepare)"
        ) from exc


def _load_one(preset: PresetSpec, layer: int, device: str) -> Any:
    spec = preset.sae
    if spec.source == "sae_lens":
        from corrsteer_core.hub_saes import load_hub_sae

        return load_hub_sae(spec, layer, device)
    root = embedded_sae_dir(preset) if spec.source == "embedded" else Path(str(spec.path))
    path = root / f"layer_{layer}"
    try:
        return _load_from_disk(path, device)
    except FileNotFoundError as exc:
        hint = "run `corrsteer prepare`" if spec.source == "embedded" else f"check the folder {root}"
        raise SAEShapeError(f"no SAE for layer {layer} at {path}: {hint}") from exc


def load_saes(
    loaded: LoadedModel | PresetSpec | str,
    layers: list[int] | tuple[int, ...] | None = None,
    *,
    device: str | None = None,
) -> SAESet:
    """Load the preset's SAEs for ``layers`` (default: every layer the preset covers) and check them.

    ``device`` defaults to the loaded model's device (CPU when only a preset is given).
    """
    preset = loaded.preset if isinstance(loaded, LoadedModel) else get_preset(loaded)
    if device is None:
        device = str(loaded.device) if isinstance(loaded, LoadedModel) else "cpu"
    d_model = loaded.d_model if isinstance(loaded, LoadedModel) else preset.model.d_model
    wanted = tuple(layers) if layers is not None else preset.layers
    for layer in wanted:
        preset.model.check_layer(layer)
        if layer not in preset.layers:
            raise SAEShapeError(
                f"preset {preset.name!r} has no SAE for layer {layer}. "
                f"Layers with SAEs: {valid_choices(preset.layers)}"
            )
    saes: dict[int, Any] = {}
    ids: dict[int, str] = {}
    hooks: dict[int, str] = {}
    for layer in wanted:
        sae = _load_one(preset, layer, device)
        if sae.cfg.d_in != d_model:
            raise SAEShapeError(
                f"SAE for layer {layer} has width d_in={sae.cfg.d_in} but the model's residual width is {d_model}"
            )
        if sae.cfg.normalize_activations not in _STATELESS_NORMS:
            raise SAEShapeError(
                f"SAE for layer {layer} uses input normalisation {sae.cfg.normalize_activations!r}, "
                "which depends on each input; corrsteer needs a fixed decoder direction "
                "(supported: 'none', or folded at load)"
            )
        expected = preset.sae.hook_name(layer)
        own = str(sae.cfg.metadata.hook_name or expected)
        if own != expected:
            warnings.warn(
                f"SAE for layer {layer} was trained on {own!r}, not {expected!r}: using its own site", stacklevel=2
            )
        saes[layer], ids[layer], hooks[layer] = sae.eval().requires_grad_(False), preset.sae.sae_id(layer), own
    return SAESet(preset=preset, saes=saes, sae_ids=ids, hook_names=hooks)
