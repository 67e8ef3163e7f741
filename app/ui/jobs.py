"""Long computations in a background thread, with live progress and cancellation.

A :class:`Job` runs ``work(progress)`` in a daemon thread. ``progress`` records (stage, done, total) for the
progress bar and then calls the job's :class:`~corrsteer_core.progress.CancelToken`, so a cancelled job stops
at the core's next progress report, keeping the checkpoints written so far. The thread never touches ``st.*``:
it only sets plain attributes under a lock. The script thread polls the job (a fragment with ``run_every``)
and, once it has finished, hands the result to ``on_done`` in the script thread, where session state may be
written.

With ``CORRSTEER_APP_INLINE_JOBS=1`` jobs run synchronously inside :func:`start` instead (headless tests).
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

import streamlit as st

from app.ui import state
from app.ui.text import md
from app.ui.timing import eta_seconds
from corrsteer_core.errors import CancelledError, CorrSteerError
from corrsteer_core.progress import CancelToken, Progress

__all__ = ["INLINE_ENV", "Job", "active", "finish_if_done", "inline_mode", "start"]

INLINE_ENV = "CORRSTEER_APP_INLINE_JOBS"
Status = Literal["running", "done", "failed", "cancelled"]


def inline_mode() -> bool:
    return os.environ.get(INLINE_ENV, "").strip().lower() in {"1", "true", "yes", "on"}


@dataclass
class Job:
    """One background computation and what the UI needs to show about it."""

    label: str
    work: Callable[[Progress], Any]
    on_done: Callable[[Any], None]
    token: CancelToken = field(default_factory=CancelToken)
    stage: str = "starting"
    done: int = 0
    total: int = 0
    status: Status = "running"
    result: Any = None
    error: BaseException | None = None
    started: float = field(default_factory=time.monotonic)
    estimate: float | None = None  # seconds expected before the job started (app.ui.timing), if known
    stage_started: float = field(default_factory=time.monotonic)  # when the current stage began (for the ETA)
    stage_done: int = 0  # its count at that moment
    thread: threading.Thread | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def progress(self, stage: str, done: int, total: int) -> None:
        """The callback handed to the core: record, then let the cancel token stop the work."""
        with self._lock:
            if stage != self.stage or int(done) < self.done or int(total) != self.total:
                self.stage_started, self.stage_done = time.monotonic(), int(done)
            self.stage, self.done, self.total = stage, int(done), int(total)
        self.token(stage, done, total)

    def eta(self) -> float | None:
        """Seconds left in the current stage at its pace so far (None until it has made progress)."""
        with self._lock:
            elapsed, done, total = time.monotonic() - self.stage_started, self.done - self.stage_done, self.total
            remaining = self.total - self.done
        return eta_seconds(elapsed, done, done + remaining) if total else None

    def snapshot(self) -> tuple[str, int, int, Status]:
        with self._lock:
            return self.stage, self.done, self.total, self.status

    @property
    def finished(self) -> bool:
        return self.snapshot()[3] != "running"

    @property
    def elapsed(self) -> float:
        return time.monotonic() - self.started

    def cancel(self) -> None:
        self.token.cancel()

    def run(self) -> None:
        """Body of the worker thread (or of the inline call)."""
        try:
            result = self.work(self.progress)
        except CancelledError as exc:
            self._finish("cancelled", error=exc)
        except BaseException as exc:  # handed to the script thread, which decides how to show it
            self._finish("failed", error=exc)
        else:
            self._finish("done", result=result)

    def _finish(self, status: Status, *, result: Any = None, error: BaseException | None = None) -> None:
        with self._lock:
            self.status, self.result, self.error = status, result, error

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the job has finished (tests); True when it has."""
        if self.thread is not None:
            self.thread.join(timeout)
        return self.finished


def active() -> Job | None:
    return state.get(state.JOB)


def start(
    label: str, work: Callable[[Progress], Any], on_done: Callable[[Any], None], estimate: float | None = None
) -> None:
    """Start ``work`` unless a job is already running (then warn), and rerun the app to show it.

    ``estimate``: the seconds it is expected to take (shown until the job's own pace gives an ETA)."""
    current = active()
    if current is not None and not current.finished:
        st.warning(md(f"Wait for '{current.label}' to finish or cancel it first."))
        return
    job = Job(label=label, work=work, on_done=on_done, estimate=estimate)
    state.put(state.JOB, job)
    if inline_mode():
        job.run()
        finish_if_done()
    else:
        job.thread = threading.Thread(target=job.run, name=f"corrsteer-job-{label}", daemon=True)
        job.thread.start()
    st.rerun()  # redraw at once: the progress panel (threaded) or the result and its notices (inline)


def finish_if_done() -> Job | None:
    """In the script thread: consume a finished job (apply its result or leave a notice); return it."""
    job = active()
    if job is None or not job.finished:
        return None
    state.drop(state.JOB)
    if job.status == "done":
        job.on_done(job.result)
    elif job.status == "cancelled":
        state.notify("warning", f"{job.label}: {job.error}")
    elif isinstance(job.error, CorrSteerError):
        state.notify("error", f"{job.label} failed: {job.error}")
    else:  # a bug: let it surface (AppTest reports it; the browser shows it)
        raise RuntimeError(f"{job.label} failed unexpectedly") from job.error
    return job
