"""Why steering collapses: each vector's norm against the residual stream it is added to.

Collapse on small models tracks the *sum* of relative norms over the steered layers, not any single one, so
reports show both the per-layer ratio ‖c·s·g·d‖ / mean‖h‖ and the profile's cumulative relative norm.

The same ratio bounds what a profile may do at all (:func:`check_vector_norms`): a vector far larger than the
residual stream it joins replaces that stream instead of steering it, so a profile asking for one (a coefficient
of 1e308 in an imported file, a scale typed by mistake) is refused before it generates anything.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import pandas as pd
import torch

from corrsteer_core.errors import ProfileError
from corrsteer_core.hooks import capture_residuals
from corrsteer_core.limits import MAX_RELATIVE_NORM

if TYPE_CHECKING:
    from corrsteer_core.profile import SteeringProfile
    from corrsteer_core.saes import SAESet

__all__ = ["check_vector_norms", "cumulative_relative_norm", "norm_diagnostics", "residual_scale"]

# A plain sentence to measure typical residual norms on (no chat template: the scale, not the content, matters)
_PROBE = "The committee met on Tuesday to discuss the budget, and after a long debate it approved the plan."


def norm_diagnostics(profile: SteeringProfile, saes: SAESet, resid_norm: dict[int, float]) -> pd.DataFrame:
    """Per layer: feature, effective scale, vector norm, typical residual norm and their ratio (enabled layers)."""
    vectors = profile.vectors(saes)
    rows = []
    for s in profile.enabled:
        norm = float(vectors[s.hook_name].norm())
        typical = float(resid_norm.get(s.layer, float("nan")))
        rows.append(
            {
                "layer": s.layer,
                "feature": s.feature,
                "coefficient": s.coefficient,
                "scale": s.scale * profile.global_scale,
                "vector_norm": norm,
                "residual_norm": typical,
                "relative_norm": norm / typical if typical > 0 else float("nan"),
            }
        )
    return pd.DataFrame(
        rows, columns=["layer", "feature", "coefficient", "scale", "vector_norm", "residual_norm", "relative_norm"]
    )


def cumulative_relative_norm(table: pd.DataFrame) -> float:
    """Sum of the per-layer relative norms of a :func:`norm_diagnostics` table (0 for an empty profile)."""
    return float(table["relative_norm"].fillna(0).sum()) if len(table) else 0.0


def residual_scale(loaded: Any, hook_names: Sequence[str]) -> dict[str, float]:
    """The median residual norm at each hook over a fixed sentence, measured once per model and hook.

    Position 0 is left out: its norm is ~100x the others' on these models. One forward pass of ~25 tokens,
    under the model's lock so that no one else's steering hooks are in place; cached on the LoadedModel.
    """
    cache: dict[str, float] = loaded.residual_norms
    missing = [h for h in dict.fromkeys(hook_names) if h not in cache]
    if missing:
        ids = loaded.tokenizer(_PROBE, return_tensors="pt")["input_ids"].to(loaded.device)
        with loaded.lock, torch.inference_mode():
            with capture_residuals(loaded.model, missing, positions="all") as recorder:
                loaded.model(input_ids=ids, use_cache=False)
            for hook in missing:
                norms = recorder.stacked(hook)[0, 1:].float().norm(dim=-1)
                cache[hook] = float(norms.median())
    return {h: cache[h] for h in hook_names}


def check_vector_norms(profile: SteeringProfile, loaded: Any, saes: SAESet) -> None:
    """ProfileError unless every steering vector of ``profile`` stays within MAX_RELATIVE_NORM times the typical
    residual norm at its hook (see limits.py for why that bound)."""
    vectors = profile.vectors(saes)
    if not vectors:
        return
    typical = residual_scale(loaded, list(vectors))
    for hook, vector in vectors.items():
        norm, scale = float(vector.norm()), typical[hook]
        if scale > 0 and norm <= MAX_RELATIVE_NORM * scale:
            continue
        layers = ", ".join(str(s.layer) for s in profile.enabled if s.hook_name == hook)
        raise ProfileError(
            f"layer {layers}: the steering vector at {hook} has norm {norm:.3g}, {norm / scale:.3g}x the model's "
            f"typical residual norm there ({scale:.3g}); at most {MAX_RELATIVE_NORM:g}x is accepted, since a "
            "vector that large replaces the residual stream instead of steering it: lower the coefficient or scale"
        )
