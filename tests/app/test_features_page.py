"""The Features page with feature dashboards: labels and scores at a glance, search over every layer, and a
found feature added to the profile being steered."""

from __future__ import annotations

from streamlit.testing.v1 import AppTest

from app.ui import resources, state
from corrsteer_core.embedded.corpus import Corpus
from corrsteer_core.explain.dashboards import DashboardConfig, build_dashboards
from tests.app.conftest import PRESET
from tests.app.test_app_pages import button, errors, go, ok, run_selection, upload_task


def _build_dashboards() -> None:
    loaded, saes = resources.model(PRESET), resources.saes(PRESET)
    texts = [f"say hi please {i}, a quiet queen at {i * 7}" for i in range(40)]
    corpus = Corpus(sequences=[loaded.tokenizer.encode(t) for t in texts], start=1)
    build_dashboards(loaded, saes, corpus, DashboardConfig(k=4), log=lambda _: None)


def test_features_page_shows_labels_searches_and_adds_to_the_profile(at: AppTest) -> None:
    upload_task(at)
    run_selection(at)
    go(at, "features")
    assert any("No dashboards for" in c.value for c in at.caption)  # before prepare computed them
    _build_dashboards()
    resources.clear_caches()
    ok(at.run())
    assert not errors(at), errors(at)
    overview = at.dataframe[0].value
    assert {"label", "label F1"} <= set(overview.columns)
    assert overview["label"].ne("—").all()
    assert any("label" in m.value and "F1" in m.value for m in at.markdown)
    assert any(m.label == "Label F1 (held-out text)" for m in at.metric)

    at.text_input(key=state.FEATURES_SEARCH).set_value("q")
    ok(at.run())
    found = at.selectbox(key=state.FEATURES_FOUND)
    assert found.options, "searching 'q' should find features peaking on it"
    layer, feature = found.value
    base = at.session_state[state.BASE_PROFILE]
    ok(button(at, "Add to the profile").click().run())
    profile = at.session_state[state.BASE_PROFILE]
    setting = next(s for s in profile.layers if s.layer == layer)
    assert setting.feature == feature and setting.coefficient > 0
    assert profile is not base
    assert any("in the profile on the Steer page" in s.value for s in at.success)

    at.text_input(key=state.FEATURES_SEARCH).set_value("no-such-token-anywhere")
    ok(at.run())
    assert any("No feature's label" in c.value for c in at.caption)
