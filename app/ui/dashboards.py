"""The Features page's door to the feature dashboards computed by ``corrsteer prepare``: cached reads, search,
and the profile setting of a feature found by hand."""

from __future__ import annotations

import streamlit as st

from app.ui import resources
from corrsteer_core.explain import dashboard_store
from corrsteer_core.explain.dashboard_store import FeatureDashboard, FeatureMatch, LayerDashboard
from corrsteer_core.presets import get_preset

__all__ = ["feature_view", "layer_board", "search"]


@st.cache_resource(show_spinner="Reading the feature dashboards…", max_entries=64)
def _board(preset: str, layer: int, fingerprint: str) -> LayerDashboard | None:
    return dashboard_store.load_layer(get_preset(preset), layer, fingerprint)


def layer_board(preset: str, layer: int) -> LayerDashboard | None:
    """The layer's dashboards for the loaded SAE's weights (None when missing or computed for other weights)."""
    sae_set = resources.saes(preset)
    if layer not in sae_set.layers:
        return None
    return _board(preset, layer, sae_set.fingerprint(layer))


def feature_view(preset: str, layer: int, feature: int) -> FeatureDashboard | None:
    board = layer_board(preset, layer)
    if board is None or not 0 <= feature < board.n_features:
        return None
    return board.feature(feature)


def search(preset: str, query: str, limit: int = 50) -> list[FeatureMatch]:
    """Features of every layer whose label or tokens contain ``query`` (see dashboard_store.search_features)."""
    found: list[FeatureMatch] = []
    for layer in resources.saes(preset).layers:
        board = layer_board(preset, layer)
        if board is not None and query:
            found.extend(board.matches(query))
    return dashboard_store.rank_matches(found, limit)
