"""Profile summaries and side-by-side differences as tables (pure functions, no Streamlit)."""

from __future__ import annotations

from typing import Any

import pandas as pd

from corrsteer_core.profile import SteeringProfile

__all__ = ["compare_fields", "compare_profiles", "profile_summary"]

_LAYER_FIELDS = ("feature", "coefficient", "scale", "enabled")
_TOP_FIELDS = ("preset", "model_id", "d_model", "global_scale", "positions", "site", "name")


def profile_summary(name: str, profile: SteeringProfile) -> dict[str, Any]:
    evaluation = profile.evaluation or {}
    return {
        "name": name,
        "preset": profile.preset,
        "model": profile.model_id,
        "layers": len(profile.layers),
        "enabled layers": ", ".join(str(s.layer) for s in profile.enabled) or "none",
        "global scale": profile.global_scale,
        "test diff": evaluation.get("diff"),
        "task": profile.provenance.task_name,
    }


def compare_fields(a: SteeringProfile, b: SteeringProfile) -> pd.DataFrame:
    """Top-level settings of both profiles, one row per field, with whether they differ."""
    rows = [
        {"field": f, "A": str(getattr(a, f)), "B": str(getattr(b, f)), "differs": getattr(a, f) != getattr(b, f)}
        for f in _TOP_FIELDS
    ]
    return pd.DataFrame(rows, columns=["field", "A", "B", "differs"])


def compare_profiles(a: SteeringProfile, b: SteeringProfile) -> pd.DataFrame:
    """One row per layer present in either profile: each side's feature, coefficient, scale and enabled flag.

    A layer missing from one side has empty cells there; ``differs`` is True when anything that changes the
    steering differs (a disabled layer on both sides counts as equal whatever its feature).
    """
    left = {s.layer: s for s in a.layers}
    right = {s.layer: s for s in b.layers}
    rows = []
    for layer in sorted(set(left) | set(right)):
        sa, sb = left.get(layer), right.get(layer)
        row: dict[str, Any] = {"layer": layer}
        for field in _LAYER_FIELDS:
            row[f"A {field}"] = getattr(sa, field) if sa is not None else None
            row[f"B {field}"] = getattr(sb, field) if sb is not None else None
        on_a = sa is not None and sa.enabled and sa.scale != 0
        on_b = sb is not None and sb.enabled and sb.scale != 0
        if not on_a and not on_b:
            row["differs"] = False
        else:
            key = lambda s: None if s is None else (s.feature, s.coefficient, s.scale, s.enabled)  # noqa: E731
            row["differs"] = key(sa) != key(sb)
        rows.append(row)
    columns = ["layer", *[f"{side} {f}" for f in _LAYER_FIELDS for side in ("A", "B")], "differs"]
    return pd.DataFrame(rows, columns=columns)
