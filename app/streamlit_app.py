"""corrsteer web app: the router and the sidebar shared by every page.

Run with ``corrsteer app`` or ``streamlit run app/streamlit_app.py`` (binds to localhost, see
.streamlit/config.toml). Pages live in ``app_pages/`` and only draw UI; they reach the core through
``app/ui/resources.py``.
"""

from __future__ import annotations

import sys
from pathlib import Path

_ROOT = Path(__file__).resolve().parents[1]
if str(_ROOT) not in sys.path:  # `streamlit run` puts app/ on the path, not the checkout holding `app`
    sys.path.insert(0, str(_ROOT))

import streamlit as st  # noqa: E402
from streamlit.delta_generator import DeltaGenerator  # noqa: E402

from app.ui import jobs, place, resources, state, widgets  # noqa: E402
from app.ui.pages import PAGES  # noqa: E402
from app.ui.profile_edit import steers_phrase  # noqa: E402
from app.ui.text import md  # noqa: E402
from corrsteer_core.presets import get_preset  # noqa: E402


def _sidebar() -> DeltaGenerator:
    """Preset picker; returns the sidebar slot where the run/profile summary goes once the page has run."""
    names = resources.preset_names()
    if st.session_state.get(state.PRESET) not in names:
        st.session_state[state.PRESET] = resources.default_preset()
    with st.sidebar:
        st.markdown("### corrsteer")
        st.caption("Steer an LLM with the SAE features that correlate with getting a task right.")
        st.selectbox(
            "Preset (model + SAEs)",
            names,
            key=state.PRESET,
            on_change=state.reset_run,
            disabled=jobs.active() is not None,
            help="Changing the preset closes the current run and profile.",
        )
        preset = get_preset(st.session_state[state.PRESET])
        st.caption(f"{preset.model.hf_id} · {len(preset.layers)} layers with SAEs")
        return st.container()


def _summary() -> None:
    """What the session is looking at, drawn after the page so that it reflects the page's edits."""
    run_id, experiment = state.get(state.RUN_ID), state.get(state.EXPERIMENT)
    if run_id is not None:
        st.markdown(f"**Run** `{run_id}`")
        if experiment is not None:
            st.caption(md(experiment.label))
    profile = state.get(state.WORKING_PROFILE)
    if profile is not None:
        steering = steers_phrase([s.layer for s in profile.enabled], "steering")
        st.markdown(f"**Profile** {md(profile.name) if profile.name else '(unnamed)'}")
        st.caption(f"{steering} · global scale {profile.global_scale:g}")


def main() -> None:
    st.set_page_config(page_title="corrsteer", page_icon=":material/explore:", layout="wide")
    pages = [st.Page(p.path, title=p.title, icon=p.icon, default=i == 0) for i, p in enumerate(PAGES)]
    page = st.navigation(pages)
    widgets.keep_widget_state()
    jobs.finish_if_done()
    place.restore()  # a reload or a shared link: reopen the run and profile the URL names
    summary = _sidebar()
    widgets.show_notices()
    widgets.job_panel()
    try:
        page.run()
    finally:  # also after st.stop() on a page
        with summary:
            _summary()
        place.remember()


main()
