"""Integration on the real embedded model (SmolLM2-135M-Instruct) with SAEs trained by the test session."""

from __future__ import annotations

import dataclasses
import json

import pytest
import torch

from corrsteer_core import storage
from corrsteer_core.collect import collect_activations
from corrsteer_core.config import CollectConfig, SelectConfig
from corrsteer_core.embedded.corpus import CorpusConfig
from corrsteer_core.embedded.prepare import PrepareConfig, prepare_embedded
from corrsteer_core.embedded.sae_training import SAETrainConfig
from corrsteer_core.evaluate import evaluate_profile
from corrsteer_core.generation import encode_prompts, greedy_generate
from corrsteer_core.hooks import add_to_residual
from corrsteer_core.loading import load_model
from corrsteer_core.presets import register_preset
from corrsteer_core.profile import load_profile
from corrsteer_core.saes import embedded_sae_dir
from corrsteer_core.tasks import get_task, split_task
from corrsteer_core.variants import select_profile

pytestmark = pytest.mark.slow

PROMPTS = [
    "What is 12 + 30?",
    "Name the capital of France.",
    "Write one word about rain.",
    "Hi",
    "Explain gravity in one sentence.",
    "What is 7 times 8?",
]


def test_prepare_writes_loadable_sae_lens_folders_with_quality(embedded_preset, prepared):
    from sae_lens import SAE

    rows, _ = prepared
    assert [r["layer"] for r in rows] == [3, 12]
    for row in rows:
        folder = embedded_sae_dir(embedded_preset, row["layer"])
        sae = SAE.load_from_disk(str(folder))
        assert sae.cfg.d_in == 576 and sae.cfg.d_sae == 512
        quality = json.loads((folder / "quality.json").read_text())
        assert 0 <= quality["fvu"] < 1 and len(quality["fingerprint"]) == 16
        assert 0 <= quality["dead_fraction"] <= 1 and quality["mean_l0"] <= 16
    logs: list[str] = []
    prepare_embedded(embedded_preset, PrepareConfig(layers=(3, 12)), log=logs.append)
    assert "none, all done" in logs[0]  # resumable: finished layers are not retrained
    assert "dashboards: all layers up to date" in logs  # nor is a corpus generated to find that nothing is left


def test_presets_for_one_model_share_its_corpus(embedded_preset, prepared):
    """A second SAE set for the same model trains from the cached corpus instead of generating another."""
    corpus_dir = storage.cache_root() / "corpus"
    before = sorted(p.name for p in corpus_dir.iterdir())
    assert [n for n in before if n.startswith(embedded_preset.model.cache_key)] != []
    sae = dataclasses.replace(embedded_preset.sae, d_sae=256, k=8, set_name="test-256", layers=(3,))
    other = register_preset(dataclasses.replace(embedded_preset, name="smollm2-test-narrow", sae=sae))
    cfg = PrepareConfig(
        corpus=CorpusConfig(n_prompts=48, max_new_tokens=48, batch_size=16),
        train=SAETrainConfig(epochs=1, batch_size=512),
    )
    rows = prepare_embedded(other, cfg, log=lambda _: None)
    assert [r["layer"] for r in rows] == [3]
    assert sorted(p.name for p in corpus_dir.iterdir()) == before


def test_steering_changes_output_and_exit_restores_it(embedded, embedded_saes):
    ids = encode_prompts(embedded.tokenizer, PROMPTS, True)
    base = greedy_generate(embedded.model, embedded.tokenizer, ids, max_new_tokens=16)
    direction = embedded_saes.directions(12, [int(torch.randint(0, 512, (1,)))])[0]
    with add_to_residual(embedded.model, {"blocks.12.hook_resid_post": direction * 40}):
        steered = greedy_generate(embedded.model, embedded.tokenizer, ids, max_new_tokens=16)
    after = greedy_generate(embedded.model, embedded.tokenizer, ids, max_new_tokens=16)
    assert steered.token_ids != base.token_ids
    assert after.token_ids == base.token_ids


def test_batched_equals_one_by_one_on_the_real_model(embedded_preset, prepared):
    """Exact in float32. (In bfloat16, rounding differs with batch shape and can flip near-tie tokens.)"""
    model = load_model(embedded_preset, dtype="float32")
    ids = encode_prompts(model.tokenizer, PROMPTS, True)
    vector = torch.randn(576, generator=torch.Generator().manual_seed(0)) * 4
    for vectors in ({}, {"blocks.5.hook_resid_post": vector}):
        with add_to_residual(model.model, vectors):
            batched = greedy_generate(model.model, model.tokenizer, ids, max_new_tokens=20)
            single = [greedy_generate(model.model, model.tokenizer, [p], max_new_tokens=20) for p in ids]
        assert batched.token_ids == [s.token_ids[0] for s in single]


def test_select_steer_evaluate_export_import_evaluate(embedded, embedded_saes, tmp_path):
    task = get_task("arithmetic", limit=60, seed=3)
    splits = split_task(task, n_train=32, n_val=4, n_test=24, seed=0)
    run = collect_activations(embedded, embedded_saes, task, splits.train, CollectConfig(batch_size=16))
    assert run.n == 32 and 0 < run.stats.n_correct < 32
    profile = select_profile(run, embedded, embedded_saes, SelectConfig(min_correct=1, min_incorrect=1)).profile
    assert [s.layer for s in profile.layers] == [3, 12]
    first = evaluate_profile(embedded, embedded_saes, task, splits.test, profile)
    path = profile.vectors_safetensors(embedded_saes, tmp_path / "profile.safetensors")
    again = evaluate_profile(embedded, embedded_saes, task, splits.test, load_profile(path))
    assert first.summary() == again.summary()
    assert list(first.table["steered_generation"]) == list(again.table["steered_generation"])
