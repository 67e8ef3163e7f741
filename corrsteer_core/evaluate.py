"""Unsteered versus steered on held-out items: accuracy, flips, POS/NEG/SER, McNemar, bootstrap, sweeps.

Generations are cached on disk per (model, task, generation settings, steering content), so the unsteered
baseline is computed once per item and re-evaluating an unchanged profile costs nothing.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from corrsteer_core import storage
from corrsteer_core.config import GenerateConfig
from corrsteer_core.errors import ConfigError
from corrsteer_core.loading import LoadedModel
from corrsteer_core.profile import SteeringProfile
from corrsteer_core.progress import Progress
from corrsteer_core.runs import RUN_ID_PATTERN, RunStore
from corrsteer_core.saes import SAESet
from corrsteer_core.significance import SideEffects, side_effects
from corrsteer_core.steer import Outcome, judge, profile_vectors, run_items
from corrsteer_core.tasks.base import Task, TaskItem
from corrsteer_core.tasks.text import is_degenerate

__all__ = [
    "EvaluationResult",
    "cached_outcomes",
    "compare_outcomes",
    "evaluate_profile",
    "record_evaluation",
    "scale_sweep",
    "transfer_table",
]

CHANGE_LABELS = ("wrong→right", "right→wrong", "changed", "same")


def _cache_key(loaded: LoadedModel, task: Task, cfg: GenerateConfig, condition: str, positions: str) -> str:
    key = {
        "preset": loaded.preset.name,
        "dtype": str(loaded.dtype),
        "task": task.name,
        "source": task.source,
        "gen": cfg.to_dict() | {"batch_size": None},
        "condition": condition,
        "positions": positions,
        "max_new_tokens": cfg.max_new_tokens or task.max_new_tokens,
    }
    return hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:20]


def cached_outcomes(
    loaded: LoadedModel,
    task: Task,
    items: Sequence[TaskItem],
    *,
    profile: SteeringProfile | None = None,
    saes: SAESet | None = None,
    cfg: GenerateConfig | None = None,
    progress: Progress | None = None,
    stage: str = "generate",
) -> list[Outcome]:
    """Outcomes for ``items`` under ``profile`` (None: unsteered), reusing and extending the on-disk cache.

    Batch composition can change greedy outputs only through floating-point noise; the cache treats outcomes as
    per-item facts, which is what the batched-equals-single test guarantees up to that noise.
    """
    cfg = cfg or GenerateConfig()
    if profile is not None and saes is None:
        raise ConfigError("steered evaluation needs the SAEs the profile was made with")
    vectors = profile_vectors(loaded, saes, profile) if profile is not None and saes is not None else {}
    condition = profile.content_hash() if profile is not None and vectors else "unsteered"
    positions = profile.positions if profile is not None else "generation"
    path = storage.cache_path("generations", _cache_key(loaded, task, cfg, condition, positions) + ".json")
    known: dict[str, Any] = {}
    if path.is_file():
        try:
            known = storage.read_json(path)
        except Exception:  # a corrupt cache is rebuilt, never trusted
            known = {}
    missing = [item for item in items if item.id not in known]
    fresh: dict[str, Outcome] = {}
    if missing:
        outs = run_items(
            loaded, task, missing, vectors=vectors, positions=positions, cfg=cfg, progress=progress, stage=stage
        )
        fresh = {o.item_id: o for o in outs}
        known.update({o.item_id: dataclasses.asdict(o) for o in outs})
        storage.atomic_write_json(path, known, indent=None)
    # Generations are cached, verdicts are not: re-judging keeps results right when a scorer improves.
    return [fresh.get(item.id) or judge(task, item, known[item.id]["generation"]) for item in items]


@dataclass
class EvaluationResult:
    task: str
    label: str
    effects: SideEffects
    table: pd.DataFrame  # one row per item: base/steered generation, answer, correctness, change

    def summary(self) -> dict[str, Any]:
        e = self.effects
        return {
            "task": self.task,
            "label": self.label,
            "n": e.n,
            "base_accuracy": e.base_accuracy,
            "steered_accuracy": e.steered_accuracy,
            "diff": e.diff,
            "ci_low": e.ci_low,
            "ci_high": e.ci_high,
            "pos": e.pos,
            "neg": e.neg,
            "ser": e.ser,
            "changed": e.changed,
            "p_value": e.p_value,
            # empty or repetitive generations (collapse); see corrsteer_core.tasks.text.is_degenerate
            "base_degenerate": int(self.table["base_degenerate"].sum()) if len(self.table) else 0,
            "steered_degenerate": int(self.table["steered_degenerate"].sum()) if len(self.table) else 0,
        }

    def groups(self, key: str | None) -> list[dict[str, Any]]:
        """Accuracy and flips within each value of the items' metadata ``key``: the halves of a paired task
        (``Task.paired_key``: French asked / English asked, harmful / benign). Empty when no item has ``key``."""
        column = f"meta_{key}"
        if key is None or column not in self.table:
            return []
        rows = []
        for value, part in self.table.groupby(column, sort=True):
            base, steered = float(part["base_correct"].mean()), float(part["steered_correct"].mean())
            rows.append(
                {
                    "group": str(value),
                    "n": len(part),
                    "base_accuracy": base,
                    "steered_accuracy": steered,
                    "diff": steered - base,
                    "pos": int((part["change"] == "wrong→right").sum()),
                    "neg": int((part["change"] == "right→wrong").sum()),
                }
            )
        return rows

    def flips(self, kind: str) -> pd.DataFrame:
        if kind not in CHANGE_LABELS:
            raise ConfigError(f"kind={kind!r} is not valid. Valid: {', '.join(CHANGE_LABELS)}")
        return self.table[self.table["change"] == kind]


def _change(base: Outcome, steered: Outcome) -> str:
    if not base.correct and steered.correct:
        return "wrong→right"
    if base.correct and not steered.correct:
        return "right→wrong"
    same = (base.answer or base.generation).strip() == (steered.answer or steered.generation).strip()
    return "same" if same else "changed"


def compare_outcomes(
    task: Task,
    items: Sequence[TaskItem],
    base: Sequence[Outcome],
    steered: Sequence[Outcome],
    label: str = "steered",
    *,
    seed: int = 0,
) -> EvaluationResult:
    rows = [
        {
            "item_id": item.id,
            "prompt": item.prompt,
            "target": item.target,
            "base_generation": b.generation,
            "base_answer": b.answer,
            "base_correct": b.correct,
            "steered_generation": s.generation,
            "steered_answer": s.answer,
            "steered_correct": s.correct,
            "change": _change(b, s),
            "base_degenerate": is_degenerate(b.generation),
            "steered_degenerate": is_degenerate(s.generation),
            **{f"meta_{k}": v for k, v in item.metadata.items()},
        }
        for item, b, s in zip(items, base, steered, strict=True)
    ]
    table = pd.DataFrame(rows)
    answers = lambda outs: [(o.answer or o.generation).strip() for o in outs]  # noqa: E731
    effects = side_effects(
        [b.correct for b in base], [s.correct for s in steered], answers(base), answers(steered), seed=seed
    )
    return EvaluationResult(task=task.name, label=label, effects=effects, table=table)


def evaluate_profile(
    loaded: LoadedModel,
    saes: SAESet,
    task: Task,
    items: Sequence[TaskItem],
    profile: SteeringProfile,
    *,
    cfg: GenerateConfig | None = None,
    progress: Progress | None = None,
    label: str | None = None,
) -> EvaluationResult:
    """Paired comparison of the unsteered model and ``profile`` on the same items."""
    if not items:
        raise ConfigError("nothing to evaluate: the item list is empty")
    base = cached_outcomes(loaded, task, items, cfg=cfg, progress=progress, stage="unsteered")
    steered = cached_outcomes(
        loaded, task, items, profile=profile, saes=saes, cfg=cfg, progress=progress, stage="steered"
    )
    return compare_outcomes(task, items, base, steered, label or profile.name or "steered")


def scale_sweep(
    loaded: LoadedModel,
    saes: SAESet,
    task: Task,
    items: Sequence[TaskItem],
    profile: SteeringProfile,
    scales: Sequence[float],
    *,
    cfg: GenerateConfig | None = None,
    progress: Progress | None = None,
) -> pd.DataFrame:
    """The dial: accuracy and side effects of the profile at each global scale (0 = unsteered)."""
    if not scales:
        raise ConfigError("give at least one scale")
    rows = []
    for scale in scales:
        result = evaluate_profile(
            loaded,
            saes,
            task,
            items,
            profile.with_global_scale(float(scale)),
            cfg=cfg,
            progress=progress,
            label=f"x{scale:g}",
        )
        rows.append({"scale": float(scale), **result.summary()})
    return pd.DataFrame(rows)


def transfer_table(
    loaded: LoadedModel,
    saes: SAESet,
    profile: SteeringProfile,
    tasks: Sequence[tuple[Task, Sequence[TaskItem]]],
    *,
    cfg: GenerateConfig | None = None,
    progress: Progress | None = None,
) -> pd.DataFrame:
    """Cross-task transfer: the same profile evaluated on other tasks' items."""
    return pd.DataFrame(
        [
            evaluate_profile(loaded, saes, t, items, profile, cfg=cfg, progress=progress).summary()
            for t, items in tasks
        ]
    )


def profile_run_store(profile: SteeringProfile) -> RunStore | None:
    """The run ``profile`` was selected from, when this cache holds it (None for an imported or deleted run).

    The run id comes from the profile's provenance, which may come from a file: anything but a plain id is
    ignored rather than used as a path.
    """
    run_id = profile.provenance.run_id or ""
    if not RUN_ID_PATTERN.fullmatch(run_id):
        return None
    store = RunStore(run_id)
    return store if store.exists else None


def record_evaluation(profile: SteeringProfile, result: EvaluationResult, split: str) -> Path | None:
    """Save ``result``'s summary beside the run ``profile`` was selected from (``cache/runs/<id>/artifacts``).

    Returns the file written, or None when the profile names no run on this machine (see
    :func:`profile_run_store`).
    """
    store = profile_run_store(profile)
    if store is None:
        return None
    content_hash = profile.content_hash()
    record = {
        "split": split,
        "profile_name": profile.name,
        "profile_hash": content_hash,
        "global_scale": profile.global_scale,
        "layers": [[s.layer, s.feature, s.scale * profile.global_scale] for s in profile.enabled],
        "summary": result.summary(),
    }
    safe_split = "".join(c if c.isalnum() else "_" for c in split)[:20] or "items"
    return store.save_evaluation(f"{safe_split}-{content_hash}", record)
