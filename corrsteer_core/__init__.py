"""corrsteer: CorrSteer steering with correlation-selected SAE features, controls and honest statistics.

The public API is importable from here; heavy modules (torch, transformers, sae-lens) load on first use, so
``import corrsteer_core`` and the command line's help stay fast.

A typical session::

    from corrsteer_core import load_model, load_saes, get_task, split_task, collect_activations, select_profile
    lm = load_model("smollm2-135m-it"); saes = load_saes(lm)
    task = get_task("arithmetic"); splits = split_task(task, n_train=400, n_val=100, n_test=200)
    run = collect_activations(lm, saes, task, splits.train)
    profile = select_profile(run, lm, saes).profile
    result = evaluate_profile(lm, saes, task, splits.test, profile); print(result.summary())
"""

from __future__ import annotations

import importlib
from typing import Any

from corrsteer_core.errors import CorrSteerError

_EXPORTS = {
    "config": [
        "ModelSpec",
        "SAESpec",
        "PresetSpec",
        "CollectConfig",
        "GenerateConfig",
        "OptimizeConfig",
        "SelectConfig",
    ],
    "experiment": ["TaskSpec", "SplitSpec", "Experiment", "CustomTable"],
    "metadata": ["Provenance", "RunMeta"],
    "presets": ["get_preset", "list_presets", "register_preset", "custom_preset"],
    "loading": ["LoadedModel", "load_model"],
    "saes": ["SAESet", "load_saes"],
    "hooks": ["add_to_residual", "capture_residuals", "resolve_hook"],
    "generation": ["greedy_generate", "encode_prompts"],
    "tasks": ["Task", "TaskItem", "get_task", "list_tasks", "split_task", "custom_task"],
    "collect": ["CollectionResult", "collect_activations", "load_collection"],
    "stats": ["CorrelationStats"],
    "variants": ["SelectionResult", "select_profile", "build_variant"],
    "profile": ["SteeringProfile", "LayerSetting", "load_profile"],
    "steer": ["steering", "generate_texts", "run_items"],
    "evaluate": ["EvaluationResult", "evaluate_profile", "scale_sweep", "transfer_table"],
    "optimize": ["optimize_profile", "prune_profile"],
    "controls": ["ControlReport", "run_with_controls"],
    "significance": ["SideEffects", "side_effects", "mcnemar_exact", "bootstrap_diff_ci"],
    "embedded.prepare": ["PrepareConfig", "prepare_embedded"],
}
_WHERE = {name: module for module, names in _EXPORTS.items() for name in names}

__all__ = ["CorrSteerError", *sorted(_WHERE)]


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module 'corrsteer_core' has no attribute {name!r}")
    return getattr(importlib.import_module(f"corrsteer_core.{module}"), name)


def __dir__() -> list[str]:
    return sorted(__all__)
