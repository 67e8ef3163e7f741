"""The pages' only door into the core: cached model, SAEs, runs and tasks, and the work done in jobs.

Model and SAEs load once per process (``st.cache_resource``) and are shared by every session; the core steers
them under the model's lock. Long computations live in :mod:`app.ui.work` and run in background jobs.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd
import streamlit as st

from corrsteer_core.collect import CollectionResult, load_collection
from corrsteer_core.diagnostics import norm_diagnostics
from corrsteer_core.experiment import Experiment, TaskSpec
from corrsteer_core.explain import FeatureLookup, NeuronpediaClient
from corrsteer_core.explain.evidence import (
    ClassEvidence,
    TokenActivations,
    class_evidence,
    logit_effects,
    token_activations,
)
from corrsteer_core.loading import LoadedModel, load_model
from corrsteer_core.metadata import RunMeta
from corrsteer_core.presets import DEFAULT_PRESET, get_preset, list_presets
from corrsteer_core.profile import SteeringProfile
from corrsteer_core.runs import RunStore, list_runs
from corrsteer_core.saes import SAESet, load_saes, missing_embedded_layers

__all__ = [
    "DEFAULT_PRESET_ENV",
    "clear_caches",
    "collection",
    "default_preset",
    "model",
    "neuronpedia",
    "preset_names",
    "runs_for",
    "saes",
    "safetensors_bytes",
    "saved_evaluations",
    "task_and_splits",
    "task_infos",
    "task_only",
]

DEFAULT_PRESET_ENV = "CORRSTEER_DEFAULT_PRESET"


# presets, model and SAEs ------------------------------------------------------------------------------------
def preset_names() -> list[str]:
    return [p.name for p in list_presets()]


def default_preset() -> str:
    """$CORRSTEER_DEFAULT_PRESET when it names a known preset, else the embedded default."""
    wanted = os.environ.get(DEFAULT_PRESET_ENV, "").strip()
    return wanted if wanted in preset_names() else DEFAULT_PRESET


def preset_problem(preset: str) -> str | None:
    """Why the preset cannot run yet, found without loading anything (None when nothing is known missing)."""
    spec = get_preset(preset)
    if spec.sae.source == "embedded":
        missing = missing_embedded_layers(spec)
        if missing:
            return (
                f"The SAEs of {preset} are not trained yet for {len(missing)} of {len(spec.layers)} layers. "
                "Run `corrsteer prepare` once (offline, resumable; about 20 minutes on a laptop), then reload."
            )
    return None  # hub presets: load_model / load_saes fail fast with a readable error when the hub is unreachable


@st.cache_resource(show_spinner="Loading the model (once per process)…", max_entries=2)
def model(preset: str) -> LoadedModel:
    loaded = load_model(get_preset(preset))
    _LOADED.add(preset)
    return loaded


_LOADED: set[str] = set()  # presets whose model this process has loaded (the speed is measured only on those)


def is_loaded(preset: str) -> bool:
    return preset in _LOADED


@st.cache_resource(show_spinner="Measuring this machine's generation speed…", max_entries=8)
def generation_speed(preset: str, batch_size: int) -> float:
    """Reply tokens per second of this machine: a batch of ``batch_size`` short prompts, 16 tokens each (no early
    stop), timed once per process (a second or two). Used for estimates only, never for a claim."""
    import time

    from corrsteer_core.generation import encode_prompts, greedy_generate

    loaded = model(preset)
    ids = encode_prompts(
        loaded.tokenizer, ["Tell me about the weather today."] * batch_size, loaded.use_chat_template
    )
    with loaded.lock:
        start = time.perf_counter()
        greedy_generate(loaded.model, loaded.tokenizer, ids, max_new_tokens=16, stop_ids=set())
        seconds = time.perf_counter() - start
    return batch_size * 16 / max(seconds, 1e-6)


def speed_if_loaded(preset: str, batch_size: int) -> float | None:
    """The measured speed when the model is already loaded in this process (never loads it for an estimate)."""
    return generation_speed(preset, batch_size) if is_loaded(preset) else None


@st.cache_resource(show_spinner="Loading the SAEs (once per process)…", max_entries=2)
def saes(preset: str) -> SAESet:
    return load_saes(model(preset))


@st.cache_resource(show_spinner=False)
def neuronpedia() -> NeuronpediaClient:
    # short timeouts and one retry: an unreachable host trips the client's offline breaker within seconds
    return NeuronpediaClient(timeout=5.0, max_retries=1, backoff=0.5, max_wait=5.0)


# runs and tasks ------------------------------------------------------------------------------------------------
def task_infos() -> list[Any]:
    """Built-in tasks and benchmarks (``corrsteer_core.tasks.list_tasks``)."""
    from corrsteer_core.tasks import list_tasks

    return list(list_tasks())


@st.cache_resource(show_spinner="Opening the run…", max_entries=4)
def collection(run_id: str) -> CollectionResult:
    return load_collection(run_id)


def saved_evaluations(run_id: str) -> list[dict[str, Any]]:
    """Evaluations saved with a run (read from disk every time: small files, written by other processes too)."""
    store = RunStore(run_id)
    return store.evaluations() if store.exists else []


@st.cache_resource(show_spinner="Reading the task…", max_entries=8)
def _task(spec_key: str) -> Any:
    return TaskSpec.from_dict(json.loads(spec_key)).build()


def task_only(spec: TaskSpec) -> Any:
    """The core Task of a spec, built once per process."""
    return _task(spec.key)


def task_and_splits(experiment: Experiment) -> tuple[Any, Any]:
    """(Task, TaskSplits) of an experiment (the task is built once per process)."""
    task = task_only(experiment.task_spec)
    return task, experiment.split_spec.resolve(task)


def runs_for(preset: str) -> list[RunMeta]:
    """Runs on disk made with ``preset``, newest first."""
    return [r for r in list_runs() if r.identity.preset == preset]


# the profile library lives in the core (corrsteer_core.profile_store); the pages call it directly
def safetensors_bytes(profile: SteeringProfile, sae_set: SAESet) -> bytes:
    """The enabled layers' steering vectors (with the profile in the metadata) as safetensors bytes."""
    with tempfile.TemporaryDirectory(prefix="corrsteer-export-") as folder:
        path = profile.vectors_safetensors(sae_set, Path(folder) / "vectors.safetensors")
        return path.read_bytes()


def export_bytes(profile: SteeringProfile, sae_set: SAESet, fmt: str) -> bytes:
    """``profile`` exported as ``fmt`` ("gguf": llama.cpp control vector, "lm-eval": steer .pt) as bytes."""
    from corrsteer_core import export_formats

    with tempfile.TemporaryDirectory(prefix="corrsteer-export-") as folder:
        if fmt == "gguf":
            path = export_formats.write_gguf(profile, sae_set, Path(folder) / "vector.gguf")
        else:
            path = export_formats.write_lm_eval(profile, sae_set, Path(folder) / "steer.pt")
        return path.read_bytes()


def clear_caches() -> None:
    """Forget every cached resource and result of this process (tests; after deleting runs)."""
    st.cache_resource.clear()
    st.cache_data.clear()


# feature explanations and local evidence ------------------------------------------------------------------------
def feature_keys(preset: str, pairs: Sequence[tuple[int, int]]) -> dict[tuple[int, int], tuple[str, str, int]]:
    """Neuronpedia keys of (layer, feature) pairs, for the layers the preset's SAEs have on Neuronpedia."""
    spec = get_preset(preset).sae
    out = {}
    for layer, feature in pairs:
        ids = spec.neuronpedia_ids(layer)
        if ids is not None:
            out[(layer, feature)] = (ids[0], ids[1], int(feature))
    return out


def cached_explanations(preset: str, pairs: Sequence[tuple[int, int]]) -> dict[tuple[int, int], str]:
    """Descriptions already on disk (never touches the network: used for hover text)."""
    client = neuronpedia()
    out = {}
    for pair, key in feature_keys(preset, pairs).items():
        found = client.cached(*key)
        if found is not None and found.description:
            out[pair] = found.description
    return out


def lookup_explanations(preset: str, pairs: Sequence[tuple[int, int]]) -> dict[tuple[int, int], FeatureLookup]:
    """Neuronpedia lookups (disk cache first; offline answers at once) for pairs whose SAE is on Neuronpedia."""
    keys = feature_keys(preset, pairs)
    if not keys:
        return {}
    lookups = neuronpedia().get_features(list(keys.values()))
    return dict(zip(keys, lookups, strict=True))


@st.cache_data(show_spinner="Recomputing the feature's activations on its top generations…", max_entries=64)
def token_evidence(preset: str, run_id: str, layer: int, feature: int, n: int = 5) -> list[TokenActivations]:
    return token_activations(model(preset), saes(preset), collection(run_id), layer, feature, n=n)


@st.cache_data(show_spinner=False, max_entries=64)
def logit_evidence(preset: str, layer: int, feature: int, k: int = 10) -> tuple[list, list]:
    return logit_effects(model(preset), saes(preset), layer, feature, k=k)


def norm_table(preset: str, profile: SteeringProfile, run_id: str) -> pd.DataFrame:
    """Per enabled layer: vector norm against the run's mean residual norm (see corrsteer_core.diagnostics)."""
    return norm_diagnostics(profile, saes(preset), collection(run_id).resid_norm)


@st.cache_data(show_spinner=False, max_entries=16)
def chance_levels(run_id: str) -> dict[int, float]:
    """Per layer, the top r any feature reaches against shuffled labels in this run (the selection's own
    shuffled-label selector): what noise gives at this sample size. Empty when no feature has r > 0 there."""
    from corrsteer_core.config import SelectConfig
    from corrsteer_core.errors import SelectionError
    from corrsteer_core.ranking import rank_candidates

    try:
        ranked, _ = rank_candidates(collection(run_id), SelectConfig(selector="shuffled", k=1))
    except SelectionError:
        return {}
    return {cands[0].layer: float(cands[0].r) for cands in ranked if cands}


def class_evidence_for(run_id: str, layer: int, feature: int) -> ClassEvidence:
    return class_evidence(collection(run_id), layer, feature)
