"""Building a profile by hand and naming what is tested (pure functions, no Streamlit).

A feature the user picks (a square of the Correlations grid, the Features page, a layer/index search) becomes a
layer setting through :func:`corrsteer_core.variants.feature_setting`, with the coefficient and r the run
measured for it, exactly as selection would have built it.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

from corrsteer_core.errors import ProfileError, SelectionError
from corrsteer_core.limits import MAX_COEFFICIENT, MAX_SCALE
from corrsteer_core.profile import LayerSetting, SteeringProfile
from corrsteer_core.variants import feature_setting

__all__ = ["candidate_setting", "describe_profile", "steers_phrase", "with_layer_values"]


def candidate_setting(
    run: Any, saes: Any, layer: int, feature: int, coefficient_mode: str = "correct_mean"
) -> LayerSetting:
    """The setting steering ``feature`` of ``layer`` with the run's own coefficient (mean over correct) and r."""
    layers = list(run.layers)
    if layer not in layers:
        raise SelectionError(f"the run has no statistics for layer {layer}; its layers are {layers}")
    row = layers.index(layer)
    if feature < 0 or feature >= saes.d_sae(layer):
        raise SelectionError(f"layer {layer} has features 0..{saes.d_sae(layer) - 1}; got {feature}")
    coefficient = float(run.stats.coefficients(coefficient_mode)[row, feature])
    r = float(run.stats.pearson()[row, feature])
    return feature_setting(
        saes,
        layer,
        feature,
        coefficient,
        hook_name=run.meta.sites[layer],
        r=r if math.isfinite(r) else None,
        score=r if math.isfinite(r) else None,
    )


def with_layer_values(
    profile: SteeringProfile, layer: int, *, scale: float | None = None, coefficient: float | None = None
) -> SteeringProfile:
    """The profile with one layer's strength (scale) or coefficient changed, both bounded like a file's."""
    setting = profile.setting(layer)
    changes: dict[str, Any] = {}
    if scale is not None:
        if not math.isfinite(scale) or abs(scale) > MAX_SCALE:
            raise ProfileError(
                f"layer {layer}: the scale must be a finite number of magnitude at most {MAX_SCALE:g}"
            )
        changes["scale"] = float(scale)
    if coefficient is not None:
        if not math.isfinite(coefficient) or abs(coefficient) > MAX_COEFFICIENT:
            raise ProfileError(
                f"layer {layer}: the coefficient must be a finite number of magnitude at most {MAX_COEFFICIENT:g}"
            )
        changes["coefficient"] = float(coefficient)
    return profile.with_setting(dataclasses.replace(setting, **changes))


def steers_phrase(layers: list[int] | tuple[int, ...], verb: str = "steers") -> str:
    """ "steers layer 20", "steers layers 3, 5", "steers no layer" (``verb`` e.g. "steering")."""
    if not layers:
        return f"{verb} no layer"
    return f"{verb} layer{'s' if len(layers) > 1 else ''} " + ", ".join(str(k) for k in layers)


def describe_profile(profile: SteeringProfile) -> str:
    """What exactly is steered: every enabled layer's feature and effective scale, and the global scale."""
    parts = [f"L{s.layer} f{s.feature} ×{s.scale:g}" for s in profile.enabled]
    name = profile.name or "(unnamed)"
    body = ", ".join(parts) if parts else "no layer (unsteered)"
    return f"{name}: {body} · global scale {profile.global_scale:g}"
