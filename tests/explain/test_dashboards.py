"""Feature dashboards on the tiny model: streaming top-k is exact, a planted feature is found, labelled and
scored, random features score low, and finished layers are skipped unless their SAE changed."""

from __future__ import annotations

import dataclasses
import os
import random
import shutil

import pytest
import torch

from corrsteer_core.embedded.corpus import Corpus
from corrsteer_core.errors import ExplanationError
from corrsteer_core.explain import dashboard_store
from corrsteer_core.explain.dashboards import DashboardConfig, build_dashboards
from corrsteer_core.explain.feature_stats import FeatureAccumulator, LabelScorer, WindowSpec
from corrsteer_core.explain.labels import choose_labels
from corrsteer_core.saes import load_saes
from tests.helpers import TINY_WIDTH, build_random_sae

FIRE = 5  # the planted feature: fires on the token 'q' only


def test_streaming_top_k_equals_brute_force():
    gen = torch.Generator().manual_seed(0)
    n_seq, steps, n_feat, k = 40, 9, 6, 4
    shape = (n_seq, steps, n_feat)
    z = torch.rand(shape, generator=gen) * (torch.rand(shape, generator=gen) > 0.6)
    keep = torch.ones((n_seq, steps), dtype=torch.bool)
    keep[:, 0] = False
    ids = torch.randint(0, 50, (n_seq, steps), generator=gen)
    acc = FeatureAccumulator(n_feat, k, WindowSpec(before=2, after=1))
    for start in range(0, n_seq, 7):  # uneven batches
        sl = slice(start, start + 7)
        acc.update(z[sl], keep[sl], ids[sl], torch.arange(n_seq)[sl])
    masked = z * keep[..., None]
    peak, pos = masked.max(dim=1)  # (N, F)
    for f in range(n_feat):
        want = torch.topk(peak[:, f], k)
        assert torch.allclose(acc.top_val[f], want.values)
        assert set(acc.top_seq[f].tolist()) == set(want.indices.tolist())
        for j, seq in enumerate(acc.top_seq[f].tolist()):
            p = int(pos[seq, f])
            assert int(acc.win_ids[f, j, 2]) == int(ids[seq, p])  # the peak token sits at index `before`
            assert float(acc.win_val[f, j, 2]) == pytest.approx(float(masked[seq, p, f]), abs=1e-3)
            if p + 1 < steps:
                assert int(acc.win_ids[f, j, 3]) == int(ids[seq, p + 1])
            else:
                assert int(acc.win_ids[f, j, 3]) == -1
    assert acc.fired.tolist() == (masked > 0).sum(dim=(0, 1)).tolist()
    assert int(acc.hist.sum()) == int((masked > 0).sum())
    assert acc.n_tokens == int(keep.sum())


def test_a_token_feature_scores_high_and_a_random_one_low():
    """Feature 0 fires on token 7 exactly; feature 1 fires at random places (independent of the tokens)."""
    gen = torch.Generator().manual_seed(1)
    vocab, k = 20, 10

    def batch(n: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        ids = torch.randint(0, vocab, (n, 12), generator=gen)
        z = torch.zeros((n, 12, 2))
        z[..., 0] = (ids == 7).float() * (1 + torch.rand((n, 12), generator=gen))
        z[..., 1] = (torch.rand((n, 12), generator=gen) < 0.05).float() * (1 + torch.rand((n, 12), generator=gen))
        return z, torch.ones((n, 12), dtype=torch.bool), ids

    acc = FeatureAccumulator(2, k, WindowSpec())
    for i in range(10):
        z, keep, ids = batch(20)
        acc.update(z, keep, ids, torch.arange(20) + 20 * i)
    labels = choose_labels(acc.peak_tokens(), torch.full((vocab,), 1.0 / vocab), max_tokens=3)
    assert labels[0].tolist() == [7, -1, -1]
    scorer = LabelScorer(labels, acc.max_activation(), fire_fraction=0.25)
    for _ in range(5):
        scorer.update(*batch(20))
    f1 = scorer.scores()["f1"]
    assert float(f1[0]) == pytest.approx(1.0)
    assert float(f1[1]) < 0.2


def _corpus(tokenizer, n: int = 60, seed: int = 0) -> Corpus:
    rng = random.Random(seed)
    words = ["the cat", "a dog", "quiet", "queen", "blue sky", "red box", "it is", "on top"]
    texts = [" ".join(rng.choice(words) for _ in range(rng.randint(3, 8))) for _ in range(n)]
    return Corpus(sequences=[tokenizer.encode("<|im_start|>" + t) for t in texts], start=1)


@pytest.fixture(scope="module")
def planted(tiny, tiny_spec, tiny_dirs, tmp_path_factory):
    """Layer 0 reads the token embeddings (block-0 input); feature FIRE detects 'q'."""
    os.environ["CORRSTEER_CACHE"] = str(tmp_path_factory.mktemp("dashboard-cache"))
    folder = tmp_path_factory.mktemp("planted-dash")
    shutil.copytree(tiny_dirs[1], folder, dirs_exist_ok=True)
    sae = build_random_sae(TINY_WIDTH, 64, 8, "blocks.0.hook_resid_pre", seed=7)
    embed = tiny.model.get_input_embeddings().weight.detach().float()
    token_q = tiny.tokenizer.convert_tokens_to_ids("q")
    with torch.no_grad():
        sae.W_enc[:, FIRE] = embed[token_q] / embed[token_q].norm() * 4
        sae.b_enc[FIRE] = -2.0 * float(embed[token_q].norm())
    sae.save_model(folder / "layer_0")
    preset = dataclasses.replace(
        tiny_spec, name="tiny-dash", sae=dataclasses.replace(tiny_spec.sae, path=str(folder))
    )
    loaded = dataclasses.replace(tiny, preset=preset)
    with pytest.warns(UserWarning, match="using its own site"):
        saes = load_saes(loaded)
    corpus = _corpus(tiny.tokenizer)
    logs: list[str] = []
    built = build_dashboards(loaded, saes, corpus, DashboardConfig(k=5, layers_per_pass=2), log=logs.append)
    return loaded, saes, corpus, built, folder


def test_planted_feature_contexts_labels_and_score(planted):
    _, saes, _, built, _ = planted
    assert built == [0, 1, 2, 3]
    board = dashboard_store.load_layer(saes.preset, 0, saes.fingerprint(0))
    assert board is not None
    view = board.feature(FIRE)
    assert view.contexts, "the planted feature should have top contexts"
    for ctx in view.contexts:
        peak = max(range(len(ctx.values)), key=ctx.values.__getitem__)
        assert ctx.tokens[peak] == "q"
        assert {t for t, v in zip(ctx.tokens, ctx.values, strict=True) if v > 0} == {"q"}
    assert view.label == '"q"'
    assert view.precision > 0.9 and view.recall > 0.9 and view.f1 > 0.9
    assert 0 < view.density < 0.2
    assert sum(view.hist_counts) > 0


def test_search_finds_the_planted_feature(planted):
    _, saes, _, _, _ = planted
    found = dashboard_store.search_features(saes.preset, "q")
    assert found[0].layer == 0 and found[0].feature == FIRE and found[0].matched == "label" and found[0].exact
    assert all(not m.exact or "q" in m.label for m in found)
    view = dashboard_store.load_layer(saes.preset, 0).feature(FIRE)
    assert view.support > 0
    assert dashboard_store.search_features(saes.preset, "") == []
    with pytest.raises(ExplanationError, match="at most 100"):
        dashboard_store.search_features(saes.preset, "q" * 101)


def test_resume_skips_done_layers_and_recomputes_a_changed_sae(planted):
    loaded, saes, corpus, _, folder = planted
    assert build_dashboards(loaded, saes, corpus, DashboardConfig(k=5), log=lambda _: None) == []
    changed = build_random_sae(TINY_WIDTH, 64, 8, "blocks.2.hook_resid_post", seed=999)
    changed.save_model(folder / "layer_2")
    with pytest.warns(UserWarning, match="using its own site"):
        fresh = load_saes(loaded)
    assert dashboard_store.load_layer(saes.preset, 2, fresh.fingerprint(2)) is None  # stale for the new weights
    assert build_dashboards(loaded, fresh, corpus, DashboardConfig(k=5), log=lambda _: None) == [2]
    assert dashboard_store.load_layer(saes.preset, 2, fresh.fingerprint(2)) is not None


def test_dashboards_from_held_residuals_equal_the_forward_pass(planted, tmp_path, monkeypatch):
    """prepare builds a fresh layer's dashboards from the residuals it trained on: same result, no forward."""
    from corrsteer_core.embedded.corpus import corpus_activations
    from corrsteer_core.explain.dashboards import build_layer_from_residuals

    loaded, saes, corpus, _, _ = planted
    before = dashboard_store.load_layer(saes.preset, 1, saes.fingerprint(1))
    assert before is not None
    residuals = corpus_activations(loaded, corpus, {1: saes.hook_names[1]})[1]
    monkeypatch.setenv("CORRSTEER_CACHE", str(tmp_path))
    build_layer_from_residuals(loaded, saes, corpus, 1, residuals, DashboardConfig(k=5))
    after = dashboard_store.load_layer(saes.preset, 1, saes.fingerprint(1))
    assert after is not None
    for key in ("top_val", "density", "f1", "precision", "recall", "hist"):
        assert torch.allclose(after.t[key].float(), before.t[key].float(), atol=1e-4), key
    assert torch.equal(after.t["label_ids"], before.t["label_ids"])
