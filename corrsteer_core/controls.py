"""Controls as first-class results: is the gain the features', or the search's?

For a profile built by a variant (A, S, P or O), the same variant is built (by :mod:`corrsteer_core.variants`) from
- ``random-directions``: the same layers and vector norms, seeded random directions;
- ``shuffled-labels``: features selected by correlation with labels permuted within each batch;
- ``random-features``: random r > 0 features of the same layers;
each with the same validation budget, and all are evaluated on the same held-out test items as the profile.
A steering gain is only credible when it beats all of them.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from corrsteer_core.collect import CollectionResult
from corrsteer_core.config import GenerateConfig, SelectConfig
from corrsteer_core.errors import ConfigError
from corrsteer_core.evaluate import EvaluationResult, evaluate_profile, profile_run_store
from corrsteer_core.loading import LoadedModel
from corrsteer_core.profile import SteeringProfile
from corrsteer_core.progress import Progress
from corrsteer_core.saes import SAESet
from corrsteer_core.significance import SideEffects, side_effects
from corrsteer_core.tasks.base import Task, TaskItem
from corrsteer_core.variants import SOURCES, select_profile

__all__ = ["CONTROLS", "ControlReport", "head_to_head", "run_with_controls", "with_edits_of"]

CONTROLS = SOURCES[1:]  # every source but the selected features themselves


def head_to_head(profile: EvaluationResult, control: EvaluationResult) -> SideEffects:
    """The profile's steered replies against a control's, item by item on the same test items.

    POS = items the profile gets right and the control wrong, NEG the reverse; ``diff`` (with its paired
    bootstrap interval) is acc(profile) − acc(control) and ``p_value`` the exact McNemar test of the two.
    """
    ours = profile.table.set_index("item_id")["steered_correct"]
    theirs = control.table.set_index("item_id")["steered_correct"]
    if set(ours.index) != set(theirs.index):
        raise ConfigError("a control must be evaluated on the same test items as the profile")
    return side_effects(theirs.loc[ours.index].to_numpy(bool), ours.to_numpy(bool))


@dataclass
class ControlReport:
    profiles: dict[str, SteeringProfile]  # condition -> profile ("profile" is the real one)
    results: dict[str, EvaluationResult]  # condition -> test evaluation

    def versus(self) -> dict[str, SideEffects]:
        """Each control against the profile, head to head on the same items (see :func:`head_to_head`)."""
        main = self.results["profile"]
        return {k: head_to_head(main, v) for k, v in self.results.items() if k != "profile"}

    def table(self) -> pd.DataFrame:
        versus = self.versus()
        rows = []
        for name, res in self.results.items():
            row: dict[str, Any] = {"condition": name, **res.summary()}
            if name in versus:  # how far the profile is ahead of this control, and how sure
                row["profile_ahead"], row["profile_ahead_p"] = versus[name].diff, versus[name].p_value
            rows.append(row)
        return pd.DataFrame(rows)

    def verdict(self, alpha: float = 0.05) -> str:
        """One honest sentence about whether the steering works on the test split.

        A control is beaten when the profile is right significantly more often than the control on the same
        items (head-to-head McNemar p < ``alpha``); the side-effect ratio is always quoted with the gain.
        """
        main = self.results["profile"].effects
        if main.p_value >= alpha:
            return (
                f"no significant effect: {main.diff:+.1%} on {main.n} test items (McNemar p={main.p_value:.3f}, "
                f"95% CI {main.ci_low:+.1%}..{main.ci_high:+.1%})"
            )
        direction = "improves" if main.diff > 0 else "hurts"
        ser = f", SER {main.ser:.2f} ({main.neg} right→wrong)" if main.ser is not None else ""
        said = f"steering {direction} accuracy by {main.diff:+.1%} (p={main.p_value:.3g}{ser})"
        versus = self.versus()
        beaten = [k for k, v in versus.items() if v.diff > 0 and v.p_value < alpha]
        if main.diff > 0 and len(beaten) == len(versus):
            return f"{said} and beats every control"
        missing = sorted(set(versus) - set(beaten))
        return (
            f"{said} but does not clearly beat {', '.join(missing) or 'the controls'}: "
            "the gain may not come from the features"
        )


def record_controls(profile: SteeringProfile, report: ControlReport) -> Path | None:
    """Save ``report``'s verdict beside the run ``profile`` came from, keyed by the tested profile's content hash
    (so a steering card of exactly this profile can quote it); None when this cache holds no such run."""
    store = profile_run_store(profile)
    if store is None:
        return None
    main = report.results["profile"]
    record = {
        "profile_hash": profile.content_hash(),
        "verdict": report.verdict(),
        "controls": [name for name in report.results if name != "profile"],
        "n": main.effects.n,
        "saved": time.time(),
    }
    return store.write_artifact(f"controls-{profile.content_hash()}", record)


def recorded_controls(profile: SteeringProfile) -> dict[str, Any]:
    """The saved controls record of exactly ``profile`` (empty when there is none)."""
    store = profile_run_store(profile)
    record = store.read_artifact(f"controls-{profile.content_hash()}") if store is not None else None
    return record if isinstance(record, dict) else {}


def with_edits_of(control: SteeringProfile, profile: SteeringProfile) -> SteeringProfile:
    """``control`` dialled like the user dialled ``profile``: its global scale, and on every layer both steer,
    that layer's scale and on/off switch (a control at the variant's own scales would test something else)."""
    edits = {s.layer: s for s in profile.layers}
    layers = tuple(
        dataclasses.replace(s, scale=edits[s.layer].scale, enabled=edits[s.layer].enabled)
        if s.layer in edits
        else s
        for s in control.layers
    )
    return dataclasses.replace(control, layers=layers, evaluation=None).with_global_scale(profile.global_scale)


def run_with_controls(
    loaded: LoadedModel,
    saes: SAESet,
    collection: CollectionResult,
    task: Task,
    validation_items: Sequence[TaskItem],
    test_items: Sequence[TaskItem],
    *,
    select: SelectConfig | None = None,
    profile: SteeringProfile | None = None,
    gen: GenerateConfig | None = None,
    controls: Sequence[str] = CONTROLS,
    seed: int = 0,
    progress: Progress | None = None,
    on_condition: Callable[[str], None] | None = None,
    match_edits: bool = False,
) -> ControlReport:
    """Test ``profile`` (default: the profile ``select`` builds from ``collection``) beside its controls.

    Each control is built from its own source with the same variant and settings (``select``, including O's
    search and budget), and every condition is evaluated on the same ``test_items``. Passing the profile as the
    user edited it makes the "profile" row exactly what they tested elsewhere. ``on_condition`` is told which
    condition is being built and tested. ``match_edits`` gives every control the edits of ``profile`` (see
    :func:`with_edits_of`), so that a profile the user scaled is compared with controls scaled alike.
    """
    select = select or (profile.provenance.select if profile is not None else None) or SelectConfig()
    unknown = set(controls) - set(CONTROLS)
    if unknown:
        raise ConfigError(f"unknown controls {sorted(unknown)}. Valid controls are: {', '.join(CONTROLS)}")
    validation = (task, validation_items) if select.variant in ("P", "O") else None
    profiles: dict[str, SteeringProfile] = {}
    results: dict[str, EvaluationResult] = {}
    for condition in ("profile", *controls):
        if on_condition is not None:
            on_condition(condition)
        if condition == "profile" and profile is not None:
            built = profile
        else:
            source = "features" if condition == "profile" else condition
            cfg = dataclasses.replace(select, seed=seed) if source.startswith("random") else select
            built = select_profile(
                collection, loaded, saes, cfg, validation=validation, gen=gen, progress=progress, source=source
            ).profile
            if match_edits and profile is not None:
                built = with_edits_of(built, profile)
        profiles[condition] = built
        results[condition] = evaluate_profile(
            loaded, saes, task, test_items, built, cfg=gen, progress=progress, label=condition
        )
    return ControlReport(profiles=profiles, results=results)
