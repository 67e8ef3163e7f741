"""Feature dashboards computed by `corrsteer prepare` on the real embedded model (two layers, tiny corpus)."""

from __future__ import annotations

import pytest

from corrsteer_core.embedded.corpus import CorpusConfig
from corrsteer_core.embedded.prepare import PrepareConfig, prepare_embedded
from corrsteer_core.embedded.sae_training import SAETrainConfig
from corrsteer_core.explain import dashboard_store
from tests.integration.conftest import LAYERS

pytestmark = pytest.mark.slow


def test_prepare_computes_dashboards_for_every_layer(embedded_preset, embedded_saes, prepared):
    _, logs = prepared
    assert [line for line in logs if line.endswith("dashboards done")] == [
        f"layer {layer:>2}: dashboards done" for layer in LAYERS
    ]
    assert "dashboards: all layers up to date" in logs  # built from the training residuals, nothing left
    for layer in LAYERS:
        board = dashboard_store.load_layer(embedded_preset, layer, embedded_saes.fingerprint(layer))
        assert board is not None
        alive = [f for f in range(board.n_features) if float(board.t["top_val"][f, 0]) > 0]
        assert len(alive) > board.n_features // 2
        view = board.feature(alive[0])
        assert view.label and view.contexts and len(view.promoted) == 8
        peak = max(range(len(view.contexts[0].values)), key=view.contexts[0].values.__getitem__)
        assert view.contexts[0].values[peak] == pytest.approx(view.max_activation, rel=1e-2)
        assert 0 <= view.precision <= 1 and 0 <= view.recall <= 1


def test_a_second_prepare_skips_finished_dashboards(embedded_preset, prepared):
    cfg = PrepareConfig(
        corpus=CorpusConfig(n_prompts=48, max_new_tokens=48, batch_size=16),
        train=SAETrainConfig(epochs=4, batch_size=512),
        layers=LAYERS,
    )
    logs: list[str] = []
    prepare_embedded(embedded_preset, cfg, log=logs.append)
    assert "dashboards: all layers up to date" in logs
    assert dashboard_store.search_features(embedded_preset, " the")  # a search over both layers finds something
