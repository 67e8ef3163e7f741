"""Steering profiles: a versioned, validated description of what to add where, and how it was chosen.

A profile holds, per layer, the SAE feature, its coefficient, a user scale, an enable flag and its correlation,
plus the SAE id, hook site and weight fingerprint it was made with. Profiles round-trip through JSON; the
per-layer steering vectors can be exported as safetensors (with the profile JSON in the file's metadata).
Every import is validated before anything uses it: a bad profile raises :class:`ProfileError` and changes nothing.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from corrsteer_core import storage
from corrsteer_core.config import POSITION_MODES, SITE_CONVENTIONS
from corrsteer_core.diagnostics import check_vector_norms
from corrsteer_core.errors import ProfileError, valid_choices
from corrsteer_core.limits import (
    MAX_COEFFICIENT,
    MAX_MODEL_LAYERS,
    MAX_PROFILE_BYTES,
    MAX_SCALE,
    check_at_most,
)
from corrsteer_core.metadata import Provenance
from corrsteer_core.profile_files import read_profile_data

__all__ = ["PROFILE_VERSION", "LayerSetting", "SteeringProfile", "load_profile"]

PROFILE_VERSION = 1


def _finite(name: str, value: Any, most: float | None = None) -> float:
    """``value`` as a float: finite, and within ±``most`` when given (limits.py says why each bound)."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ProfileError(f"{name} must be a finite number, got {value!r}")
    if most is not None and abs(value) > most:
        raise ProfileError(f"{name} is {value:g}; its magnitude may be at most {most:g}")
    return float(value)


def _text(name: str, value: Any, *, empty: bool = True) -> None:
    if not isinstance(value, str) or (not empty and not value):
        raise ProfileError(f"{name} must be {'a' if empty else 'a non-empty'} string, got {value!r}")


def _index(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ProfileError(f"{name} must be a non-negative integer, got {value!r}")
    return value


@dataclass(frozen=True)
class LayerSetting:
    layer: int
    feature: int
    coefficient: float
    hook_name: str
    sae_id: str = ""
    fingerprint: str = ""
    scale: float = 1.0
    enabled: bool = True
    r: float | None = None
    score: float | None = None  # the selector's own score (r for corr, MI for mi, ...)
    # control: when set, steer a seeded random direction with the same norm instead of the feature's direction
    direction_seed: int | None = None

    def __post_init__(self) -> None:
        _index("layer", self.layer)
        _index(f"layer {self.layer}: feature", self.feature)
        _finite(f"layer {self.layer}: coefficient", self.coefficient, MAX_COEFFICIENT)
        _finite(f"layer {self.layer}: scale", self.scale, MAX_SCALE)
        _text(f"layer {self.layer}: sae_id", self.sae_id)
        _text(f"layer {self.layer}: fingerprint", self.fingerprint)
        for name in ("r", "score"):
            if getattr(self, name) is not None:
                _finite(f"layer {self.layer}: {name}", getattr(self, name))
        if not isinstance(self.enabled, bool):
            raise ProfileError(f"layer {self.layer}: enabled must be true or false, got {self.enabled!r}")
        if self.direction_seed is not None:
            _index(f"layer {self.layer}: direction_seed", self.direction_seed)
        if not isinstance(self.hook_name, str) or not self.hook_name:
            raise ProfileError(f"layer {self.layer}: hook_name must be a non-empty string")


@dataclass(frozen=True)
class SteeringProfile:
    preset: str
    model_id: str
    d_model: int
    layers: tuple[LayerSetting, ...]
    global_scale: float = 1.0
    positions: str = "generation"
    site: str = "sae"
    name: str = ""
    provenance: Provenance = field(default_factory=Provenance)
    evaluation: dict[str, Any] | None = None
    version: int = PROFILE_VERSION

    def __post_init__(self) -> None:
        _text("preset", self.preset, empty=False)
        _text("model_id", self.model_id, empty=False)
        _text("name", self.name)
        _index("d_model", self.d_model)
        _finite("global_scale", self.global_scale, MAX_SCALE)
        if self.evaluation is not None and not isinstance(self.evaluation, dict):
            raise ProfileError(f"evaluation must be a mapping or null, got {type(self.evaluation).__name__}")
        if self.positions not in POSITION_MODES:
            raise ProfileError(
                f"positions={self.positions!r} is not valid. Valid: {valid_choices(POSITION_MODES)}"
            )
        if self.site not in SITE_CONVENTIONS:
            raise ProfileError(f"site={self.site!r} is not valid. Valid: {valid_choices(SITE_CONVENTIONS)}")
        if not isinstance(self.provenance, Provenance):
            raise ProfileError(f"provenance must be a Provenance record, got {type(self.provenance).__name__}")
        seen = [s.layer for s in self.layers]
        if len(seen) != len(set(seen)):
            raise ProfileError(f"a layer appears twice in the profile: {sorted(seen)}")

    # editing ------------------------------------------------------------------------------------------------
    def setting(self, layer: int) -> LayerSetting:
        for s in self.layers:
            if s.layer == layer:
                return s
        raise ProfileError(
            f"the profile has no layer {layer}. Its layers: {valid_choices(s.layer for s in self.layers)}"
        )

    def with_layer(self, layer: int, **changes: Any) -> SteeringProfile:
        self.setting(layer)
        new = tuple(dataclasses.replace(s, **changes) if s.layer == layer else s for s in self.layers)
        return dataclasses.replace(self, layers=new, evaluation=None)

    def with_enabled(self, layers: set[int] | None) -> SteeringProfile:
        """Enable exactly ``layers`` (None: all)."""
        new = tuple(dataclasses.replace(s, enabled=layers is None or s.layer in layers) for s in self.layers)
        return dataclasses.replace(self, layers=new, evaluation=None)

    def with_global_scale(self, scale: float) -> SteeringProfile:
        return dataclasses.replace(self, global_scale=_finite("global_scale", scale, MAX_SCALE), evaluation=None)

    def with_setting(self, setting: LayerSetting) -> SteeringProfile:
        """The profile steering ``setting`` at its layer: it replaces that layer's feature, or adds the layer."""
        others = tuple(s for s in self.layers if s.layer != setting.layer)
        layers = tuple(sorted((*others, setting), key=lambda s: s.layer))
        return dataclasses.replace(self, layers=layers, evaluation=None)

    def without_layer(self, layer: int) -> SteeringProfile:
        """The profile with ``layer``'s setting removed (ProfileError if it has none)."""
        self.setting(layer)
        return self.only({s.layer for s in self.layers} - {layer})

    def only(self, layers: set[int]) -> SteeringProfile:
        """The profile reduced to the settings of ``layers`` (the others are dropped, not just disabled)."""
        kept = tuple(s for s in self.layers if s.layer in layers)
        return dataclasses.replace(self, layers=kept, evaluation=None)

    def with_random_directions(self, seed: int = 0) -> SteeringProfile:
        """The random-directions control: same layers, coefficients and scales, each vector replaced by a seeded
        random direction of the same norm."""
        layers = tuple(dataclasses.replace(s, direction_seed=seed) for s in self.layers)
        return dataclasses.replace(self, layers=layers, evaluation=None)

    @property
    def enabled(self) -> tuple[LayerSetting, ...]:
        return tuple(s for s in self.layers if s.enabled and s.scale != 0)

    # vectors --------------------------------------------------------------------------------------------------
    def vectors(self, saes: Any) -> dict[str, torch.Tensor]:
        """hook name -> (d_model,) float32: coefficient x scale x global scale x direction, summed per site."""
        out: dict[str, torch.Tensor] = {}
        for s in self.enabled:
            vec = _direction(saes, s) * (s.coefficient * s.scale * self.global_scale)
            out[s.hook_name] = out[s.hook_name] + vec if s.hook_name in out else vec
        return out

    def content_hash(self) -> str:
        """Hash of what changes generations (not names, provenance or evaluation)."""
        key = {
            "model": self.model_id,
            "positions": self.positions,
            "global": self.global_scale,
            "layers": [
                [s.layer, s.feature, s.coefficient, s.scale, s.hook_name, s.fingerprint, s.direction_seed]
                for s in self.enabled
            ],
        }
        return hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]

    def check_compatible(self, loaded: Any, saes: Any) -> None:
        """Raise ProfileError unless this profile fits the loaded model and SAEs exactly: same model, SAE weights
        and hook sites, and no vector out of proportion to the model's residual stream (diagnostics.py)."""
        if self.model_id != loaded.preset.model.hf_id or self.d_model != loaded.d_model:
            raise ProfileError(
                f"profile was made for {self.model_id} (width {self.d_model}); the loaded model is "
                f"{loaded.preset.model.hf_id} (width {loaded.d_model})"
            )
        for s in self.layers:
            if s.layer not in saes.layers:
                raise ProfileError(
                    f"profile steers layer {s.layer}, which has no loaded SAE ({valid_choices(saes.layers)})"
                )
            if s.feature >= saes.d_sae(s.layer):
                raise ProfileError(
                    f"layer {s.layer}: feature {s.feature} is out of range; "
                    f"the SAE has features 0..{saes.d_sae(s.layer) - 1}"
                )
            if s.fingerprint and s.fingerprint != saes.fingerprint(s.layer):
                raise ProfileError(
                    f"layer {s.layer}: the profile was made with other SAE weights (fingerprint {s.fingerprint}, "
                    f"loaded {saes.fingerprint(s.layer)}); features would not mean the same thing"
                )
            site = saes.read_site(s.layer, self.site)
            if s.hook_name != site:
                raise ProfileError(
                    f"layer {s.layer}: hook_name {s.hook_name!r} is not where this layer's SAE feature is steered "
                    f"({site!r} for site={self.site}); a feature may only be added where its SAE reads"
                )
        check_vector_norms(self, loaded, saes)

    # serialisation ------------------------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        data = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        data["layers"] = [dataclasses.asdict(s) for s in self.layers]
        data["provenance"] = self.provenance.to_dict()
        return data

    @classmethod
    def from_dict(cls, data: Any) -> SteeringProfile:
        if not isinstance(data, dict):
            raise ProfileError(f"a profile must be a JSON object, got {type(data).__name__}")
        version = data.get("version")
        if version != PROFILE_VERSION:
            raise ProfileError(
                f"profile version {version!r} is not supported (this corrsteer reads version {PROFILE_VERSION})"
            )
        names = {f.name for f in dataclasses.fields(cls)}
        missing = {"preset", "model_id", "d_model", "layers"} - set(data)
        unknown = set(data) - names
        if missing or unknown:
            raise ProfileError(f"profile has missing keys {sorted(missing)} / unknown keys {sorted(unknown)}")
        if not isinstance(data["layers"], list):
            raise ProfileError("profile 'layers' must be a list")
        check_at_most("the number of layer entries", len(data["layers"]), MAX_MODEL_LAYERS, error=ProfileError)
        layer_names = {f.name for f in dataclasses.fields(LayerSetting)}
        try:
            layers = []
            for raw in data["layers"]:
                if not isinstance(raw, dict) or set(raw) - layer_names:
                    raise ProfileError(
                        f"bad layer entry {raw!r}: valid keys are {valid_choices(sorted(layer_names))}"
                    )
                layers.append(LayerSetting(**raw))
            provenance = Provenance.from_dict(data.get("provenance") or {})
            return cls(**{**data, "layers": tuple(layers), "provenance": provenance})
        except TypeError as exc:
            raise ProfileError(f"profile is malformed: {exc}") from exc

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, allow_nan=False)

    def save(self, path: Path) -> Path:
        return storage.atomic_write_text(Path(path), self.to_json() + "\n")

    def vectors_safetensors(self, saes: Any, path: Path) -> Path:
        """Export the enabled layers' steering vectors, keyed by hook name, with the profile as metadata."""
        vectors = {name: vec.contiguous() for name, vec in self.vectors(saes).items()}
        return storage.atomic_save_tensors(Path(path), vectors, metadata={"corrsteer_profile": self.to_json()})


def _direction(saes: Any, setting: LayerSetting) -> torch.Tensor:
    """The feature's decoder direction, or a seeded random direction of the same norm (random control)."""
    direction = saes.directions(setting.layer, [setting.feature])[0]
    if setting.direction_seed is None:
        return direction
    gen = torch.Generator().manual_seed(setting.direction_seed * 100_003 + setting.layer)
    random = torch.randn(direction.shape, generator=gen, dtype=torch.float32)
    return random / random.norm() * direction.norm()


def load_profile(source: str | Path | bytes) -> SteeringProfile:
    """Read a profile from a .json or .safetensors file (or the raw bytes of either), validated."""
    if isinstance(source, str | Path):
        path = Path(source)
        size = path.stat().st_size
        check_at_most(f"the size of {path.name} in bytes", size, MAX_PROFILE_BYTES, error=ProfileError)
        raw = path.read_bytes()
    else:
        raw = source
    check_at_most("the profile's size in bytes", len(raw), MAX_PROFILE_BYTES, error=ProfileError)
    data = read_profile_data(raw)
    return SteeringProfile.from_dict(data)
