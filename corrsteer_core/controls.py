"""Controls as first-class results: is the gain the features', or the search's?

For a profile built by a variant (A, S, P or O), the same variant is rebuilt from
- ``random-directions``: the same layers and vector norms, seeded random directions;
- ``shuffled-labels``: features selected by correlation with labels permuted within each batch;
- ``random-features``: random r > 0 features of the same layers;
each with the same validation budget, and all are evaluated on the same held-out test items as the profile.
A steering gain is only credible when it beats all of them.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import pandas as pd

from corrsteer_core.collect import CollectionResult
from corrsteer_core.errors import ConfigError
from corrsteer_core.evaluate import EvaluationResult, evaluate_profile
from corrsteer_core.loading import LoadedModel
from corrsteer_core.optimize import OptimizeConfig, optimize_profile, prune_profile
from corrsteer_core.profile import SteeringProfile
from corrsteer_core.progress import Progress
from corrsteer_core.saes import SAESet
from corrsteer_core.select import SelectConfig, select_profile
from corrsteer_core.significance import SideEffects, side_effects
from corrsteer_core.steer import GenerateConfig
from corrsteer_core.tasks.base import Task, TaskItem

__all__ = ["CONTROLS", "ControlReport", "head_to_head", "random_direction_profile", "run_with_controls"]

CONTROLS = ("random-directions", "shuffled-labels", "random-features")


def random_direction_profile(profile: SteeringProfile, seed: int = 0) -> SteeringProfile:
    """Same layers, coefficients and scales; each vector replaced by a seeded random direction of equal norm."""
    layers = tuple(dataclasses.replace(s, direction_seed=seed) for s in profile.layers)
    return dataclasses.replace(profile, layers=layers, name=f"{profile.name}-random-directions", evaluation=None)


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


def _variant(
    loaded: LoadedModel,
    saes: SAESet,
    base: SteeringProfile,
    variant: str,
    validation: tuple[Task, Sequence[TaskItem]],
    gen: GenerateConfig | None,
    opt: OptimizeConfig | None,
    progress: Progress | None,
) -> SteeringProfile:
    if variant == "P":
        return prune_profile(loaded, saes, base, *validation, gen=gen, progress=progress)[0]
    if variant == "O":
        return optimize_profile(loaded, saes, base, *validation, cfg=opt, gen=gen, progress=progress)[0]
    if variant == "S":
        best = max(base.layers, key=lambda s: s.score if s.score is not None else float("-inf"))
        return base.with_enabled({best.layer})
    return base


def run_with_controls(
    loaded: LoadedModel,
    saes: SAESet,
    collection: CollectionResult,
    task: Task,
    validation_items: Sequence[TaskItem],
    test_items: Sequence[TaskItem],
    *,
    select: SelectConfig | None = None,
    opt: OptimizeConfig | None = None,
    gen: GenerateConfig | None = None,
    controls: Sequence[str] = CONTROLS,
    seed: int = 0,
    progress: Progress | None = None,
) -> ControlReport:
    """Build the profile of ``select.variant`` and its controls the same way, then test them all."""
    select = select or SelectConfig()
    base_cfg = dataclasses.replace(select, variant="A")
    base = select_profile(collection, loaded, saes, base_cfg).profile
    validation = (task, validation_items)
    bases: dict[str, Any] = {"profile": base}
    if "random-directions" in controls:
        bases["random-directions"] = random_direction_profile(base, seed)
    if "shuffled-labels" in controls:
        bases["shuffled-labels"] = select_profile(
            collection, loaded, saes, dataclasses.replace(base_cfg, selector="shuffled")
        ).profile
    if "random-features" in controls:
        bases["random-features"] = select_profile(
            collection, loaded, saes, dataclasses.replace(base_cfg, selector="random", seed=seed)
        ).profile
    profiles = {
        name: _variant(loaded, saes, prof, select.variant, validation, gen, opt, progress)
        for name, prof in bases.items()
    }
    results = {
        name: evaluate_profile(loaded, saes, task, test_items, prof, cfg=gen, progress=progress, label=name)
        for name, prof in profiles.items()
    }
    return ControlReport(profiles=profiles, results=results)
