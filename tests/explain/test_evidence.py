"""Local evidence on the tiny model with a planted feature: it must point at the planted tokens."""

from __future__ import annotations

import dataclasses
import shutil

import pytest
import torch

from corrsteer_core.collect import collect_activations
from corrsteer_core.config import CollectConfig
from corrsteer_core.explain.evidence import (
    class_evidence,
    logit_effects,
    token_activations,
    top_activating_records,
)
from corrsteer_core.saes import load_saes
from tests.helpers import TINY_WIDTH, build_random_sae, toy_task

FIRE, PROMOTE = 5, 9  # planted feature indices


@pytest.fixture(scope="module")
def planted(tiny, tiny_spec, tiny_dirs, tmp_path_factory):
    """Layer 0 reads the block-0 input (the token embeddings): feature FIRE detects the token 'a', and feature
    PROMOTE's decoder direction is the unembedding row of 'z'."""
    import os

    os.environ["CORRSTEER_CACHE"] = str(tmp_path_factory.mktemp("evidence-cache"))
    folder = tmp_path_factory.mktemp("planted")
    shutil.copytree(tiny_dirs[1], folder, dirs_exist_ok=True)
    sae = build_random_sae(TINY_WIDTH, 64, 8, "blocks.0.hook_resid_pre", seed=7)
    embed = tiny.model.get_input_embeddings().weight.detach().float()
    token_a = tiny.tokenizer.convert_tokens_to_ids("a")
    token_z = tiny.tokenizer.convert_tokens_to_ids("z")
    with torch.no_grad():
        sae.W_enc.zero_()
        sae.b_enc.fill_(-1.0)
        sae.b_dec.zero_()
        direction = embed[token_a] / embed[token_a].norm()
        sae.W_enc[:, FIRE] = direction
        sae.b_enc[FIRE] = -0.5 * float(embed[token_a].norm())  # fires on 'a' only (other dot products are ~0)
        unembed = tiny.model.get_output_embeddings().weight.detach().float()
        sae.W_dec[PROMOTE] = unembed[token_z] / unembed[token_z].norm()
    sae.save_model(folder / "layer_0")
    preset = dataclasses.replace(tiny_spec, sae=dataclasses.replace(tiny_spec.sae, path=str(folder)))
    loaded = dataclasses.replace(tiny, preset=preset)
    with pytest.warns(UserWarning, match="using its own site"):
        saes = load_saes(loaded)
    task = toy_task(24, max_new_tokens=12)
    run = collect_activations(loaded, saes, task, task.items, CollectConfig(batch_size=8))
    return loaded, saes, run


def test_top_activating_generations_mark_the_planted_token(planted):
    loaded, saes, run = planted
    assert saes.hook_names[0] == "blocks.0.hook_resid_pre"
    records = top_activating_records(run, 0, FIRE, n=5)
    assert records, "the planted feature should fire on generations that contain 'a'"
    assert all("a" in record.generation for record, _ in records)
    assert [v for _, v in records] == sorted((v for _, v in records), reverse=True)
    for evidence in token_activations(loaded, saes, run, 0, FIRE, n=5):
        firing = {tok for tok, value in zip(evidence.tokens, evidence.values, strict=True) if value > 0}
        assert firing == {"a"}
        assert max(evidence.values) == pytest.approx(evidence.pooled, rel=1e-2, abs=1e-2)


def test_logit_effects_promote_the_planted_token(planted):
    loaded, saes, _ = planted
    promoted, suppressed = logit_effects(loaded, saes, 0, PROMOTE, k=3)
    assert promoted[0][0] == "z"
    assert promoted[0][1] > promoted[1][1] and suppressed[0][1] < 0


def test_class_evidence_counts_every_sample(planted):
    _, _, run = planted
    evidence = class_evidence(run, 0, FIRE)
    n_correct = sum(r.correct for r in run.records)
    assert sum(evidence.counts_correct) == n_correct
    assert sum(evidence.counts_incorrect) == len(run.records) - n_correct
    fired = [("a" in r.generation or r.generation.startswith("a")) for r in run.records]
    assert evidence.firing_rate_correct + evidence.firing_rate_incorrect > 0 and any(fired)


def test_feature_samples_equal_brute_force_top_k():
    from corrsteer_core.feature_samples import new_feature_samples, update_feature_samples

    gen = torch.Generator().manual_seed(3)
    x = torch.rand((37, 2, 5), generator=gen) * (torch.rand((37, 2, 5), generator=gen) > 0.5)
    extra = new_feature_samples(2, 5, k=4)
    for start in range(0, 37, 8):
        update_feature_samples(extra, x[start : start + 8], start)
    for layer in range(2):
        for f in range(5):
            column = x[:, layer, f]
            want = [i for i in torch.argsort(column, descending=True, stable=True)[:4].tolist() if column[i] > 0]
            got = [r for r in extra["feature_top_row"][layer, f].tolist() if r >= 0]
            assert sorted(got) == sorted(want)
            assert column[got].tolist() == pytest.approx(sorted(column[got].tolist(), reverse=True))


def test_every_feature_keeps_its_top_samples_even_when_never_a_samples_strongest(planted):
    loaded, saes, _ = planted
    task = toy_task(24, max_new_tokens=12)
    run = collect_activations(loaded, saes, task, task.items, CollectConfig(batch_size=8, keep_top=1))
    assert run.feature_top is not None
    pos = run.layer_position(1)  # a random SAE: many features fire
    strongest = set(run.top_idx[:, pos, 0].tolist())
    _, vals = run.feature_top
    fired = [f for f in range(saes.d_sae(1)) if float(vals[pos, f, 0]) > 0]
    hidden = [f for f in fired if f not in strongest]
    assert hidden, "some firing features should never be a sample's single strongest"
    for f in hidden[:5]:
        records = top_activating_records(run, 1, f, n=3)
        assert records and all(v > 0 for _, v in records)
