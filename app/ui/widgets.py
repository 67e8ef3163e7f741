"""Reusable pieces of UI: error display, notices, the background-job panel and the "run first" guard."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import streamlit as st

from app.ui import jobs, state
from app.ui.pages import page_path
from app.ui.text import md
from app.ui.timing import duration
from corrsteer_core.errors import CorrSteerError

__all__ = [
    "defaults",
    "job_panel",
    "keep_widget_state",
    "require_profile",
    "require_run",
    "show_errors",
    "show_notices",
]

_POLL_SECONDS = 0.5


@contextmanager
def show_errors(*, stop: bool = False) -> Iterator[None]:
    """Show a core error as a readable ``st.error`` (no traceback); optionally stop the page there."""
    try:
        yield
    except CorrSteerError as exc:
        st.error(md(str(exc)), icon=":material/error:")
        if stop:
            st.stop()


def show_notices() -> None:
    for level, message in state.take_notices():
        getattr(st, level, st.info)(md(message))


def job_panel() -> None:
    """Progress bar and Cancel button of this session's running job (polled while it runs)."""
    if jobs.active() is not None:
        _job_fragment()


@st.fragment(run_every=_POLL_SECONDS)
def _job_fragment() -> None:
    job = jobs.active()
    if job is None:
        return
    if job.finished:
        st.rerun()  # the whole app: the router hands the result to the job's on_done
    stage, done, total, _ = job.snapshot()
    fraction = min(1.0, done / total) if total else 0.0
    counter = f" {done}/{total}" if total else ""
    with st.container(border=True):
        st.progress(
            fraction, text=f"**{md(job.label)}** · {md(stage)}{counter} · {job.elapsed:.0f} s · {_eta(job)}"
        )
        if job.token.cancelled:
            st.caption("Cancelling at the next checkpoint…")
        elif st.button("Cancel", key="job_cancel", icon=":material/stop_circle:"):
            job.cancel()
            st.caption("Cancelling at the next checkpoint…")


def _eta(job: jobs.Job) -> str:
    """The progress bar's time left: this stage's pace, else the estimate made before the job started."""
    eta = job.eta()
    if eta is not None:
        return f"about {duration(eta)} left in this stage"
    if job.estimate is not None:
        return f"estimated {duration(max(0.0, job.estimate - job.elapsed))} left (measuring the pace…)"
    return "time left: measuring the pace…"


def require_run() -> tuple[str, Any]:
    """The current run id and selection, or a pointer to the Run page (and the page stops)."""
    run_id, selection = state.get(state.RUN_ID), state.get(state.SELECTION)
    if run_id is None or selection is None:
        st.info("No run yet: choose a task and run a selection first, or reopen a saved run.")
        st.page_link(page_path("run"), label="Go to Run", icon=":material/play_arrow:")
        st.stop()
    return run_id, selection


def require_profile(key: str = state.WORKING_PROFILE) -> Any:
    """The session's profile (``key``: the edited one by default), or pointers to where one comes from."""
    profile = state.get(key) or state.get(state.BASE_PROFILE)
    if profile is None:
        st.info("No steering profile yet: run a selection, or import a profile on the Profiles page.")
        st.page_link(page_path("run"), label="Go to Run", icon=":material/play_arrow:")
        st.page_link(page_path("profiles"), label="Go to Profiles", icon=":material/tune:")
        st.stop()
    return profile


def defaults(values: dict[str, Any]) -> None:
    """Give widget keys their starting values once (widgets using them must not also pass ``value=``)."""
    for key, value in values.items():
        if key not in st.session_state:
            st.session_state[key] = value


def keep_widget_state() -> None:
    """Keep the values of ``keep_*`` widgets while their page is not shown (called by the router every run).

    Streamlit forgets a widget's value when a run does not draw it; writing it back as plain session state
    each run keeps the Run page's form filled in while the user looks at other pages.
    """
    for key in [k for k in st.session_state if isinstance(k, str) and k.startswith(state.KEEP_PREFIX)]:
        st.session_state[key] = st.session_state[key]
