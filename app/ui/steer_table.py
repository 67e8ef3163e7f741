"""The Steer page's per-layer settings table: profile <-> DataFrame, and the enable presets.

Pure functions (no Streamlit), so the mapping between the table the user edits and the profile that is steered
is unit-testable.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import pandas as pd

from corrsteer_core.errors import ProfileError
from corrsteer_core.limits import MAX_COEFFICIENT, MAX_SCALE
from corrsteer_core.profile import SteeringProfile

__all__ = ["EDITABLE", "PRESETS", "apply_frame", "preset_layers", "settings_frame", "validated_layers"]

EDITABLE = ("enabled", "scale", "coefficient")
PRESETS = {"all": "All layers", "validated": "Validated", "single": "Single best", "none": "None"}


def settings_frame(profile: SteeringProfile) -> pd.DataFrame:
    """One row per layer of the profile: what it steers and the two editable columns."""
    return pd.DataFrame(
        [
            {
                "layer": s.layer,
                "feature": s.feature,
                "r": s.r,
                "coefficient": s.coefficient,
                "enabled": s.enabled,
                "scale": s.scale,
            }
            for s in profile.layers
        ],
        columns=["layer", "feature", "r", "coefficient", "enabled", "scale"],
    )


def apply_frame(profile: SteeringProfile, frame: pd.DataFrame) -> SteeringProfile:
    """The profile with each layer's ``enabled``, ``scale`` and ``coefficient`` taken from the edited table."""
    rows = {int(row["layer"]): row for _, row in frame.iterrows()}
    layers = []
    for setting in profile.layers:
        row = rows.get(setting.layer)
        if row is None:
            layers.append(setting)
            continue
        scale = _number(row, "scale", setting.scale)
        coefficient = _number(row, "coefficient", setting.coefficient)
        for name, value, most in (("scale", scale, MAX_SCALE), ("coefficient", coefficient, MAX_COEFFICIENT)):
            if not math.isfinite(value) or abs(value) > most:
                raise ProfileError(
                    f"layer {setting.layer}: the {name} must be a finite number of magnitude at most {most:g}"
                )
        layers.append(
            dataclasses.replace(setting, enabled=bool(row["enabled"]), scale=scale, coefficient=coefficient)
        )
    new = tuple(layers)
    if new == profile.layers:
        return profile
    return dataclasses.replace(profile, layers=new, evaluation=None)


def _number(row: Any, column: str, default: float) -> float:
    """A cell's number, or ``default`` when the column is absent or the cell was cleared."""
    value = row.get(column) if hasattr(row, "get") else None
    return default if value is None or pd.isna(value) else float(value)


def validated_layers(profile: SteeringProfile, details: pd.DataFrame | None) -> set[int] | None:
    """Layers that helped alone on validation (variant P's record), or None when there is no such record."""
    kept = profile.provenance.kept_layers
    if kept is not None:
        return {int(layer) for layer in kept}
    if details is not None and {"layer", "kept"} <= set(details.columns):
        return {int(layer) for layer in details.loc[details["kept"].astype(bool), "layer"]}
    return None


def preset_layers(kind: str, profile: SteeringProfile, details: Any = None) -> set[int] | None:
    """Layers to enable for a preset button: ``None`` means all layers."""
    if kind == "all":
        return None
    if kind == "none":
        return set()
    if kind == "single":
        if not profile.layers:
            return set()
        best = max(profile.layers, key=lambda s: s.score if s.score is not None else (s.r or float("-inf")))
        return {best.layer}
    if kind == "validated":
        layers = validated_layers(profile, details)
        if layers is None:
            raise ProfileError("no validation record yet: run 'Validate layers' (or select with variant P) first")
        return layers
    raise ProfileError(f"unknown preset {kind!r}; valid presets are {', '.join(PRESETS)}")
