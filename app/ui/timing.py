"""How long work will take: an estimate before a job starts (items x tokens at this machine's measured speed)
and an ETA while it runs (from the pace of the current stage). Pure functions; the speed is measured once per
model and batch size by :func:`app.ui.resources.generation_speed`."""

from __future__ import annotations

import math

__all__ = ["duration", "estimate_seconds", "estimate_text", "eta_seconds"]


def duration(seconds: float) -> str:
    """``"45 s"``, ``"3 min 20 s"``, ``"1 h 05 min"``."""
    seconds = max(0.0, float(seconds))
    if seconds < 60:
        return f"{seconds:.0f} s"
    if seconds < 3600:
        return f"{int(seconds // 60)} min {int(seconds % 60):02d} s"
    return f"{int(seconds // 3600)} h {int(seconds % 3600 // 60):02d} min"


def estimate_seconds(generations: int, max_new_tokens: int, tokens_per_second: float) -> float:
    """Upper bound of the time to generate ``generations`` replies of up to ``max_new_tokens`` tokens, at
    ``tokens_per_second`` reply tokens per second (measured in batches, so per-row cost is already shared)."""
    if tokens_per_second <= 0 or not math.isfinite(tokens_per_second):
        raise ValueError(f"tokens_per_second must be a positive number, got {tokens_per_second!r}")
    return generations * max_new_tokens / tokens_per_second


def estimate_text(generations: int, max_new_tokens: int, tokens_per_second: float | None) -> str:
    """One line a user reads before pressing the button."""
    work = f"{generations:,} replies × up to {max_new_tokens} tokens"
    if tokens_per_second is None:
        return f"Cost: {work} (the time estimate appears once the model has been loaded)"
    seconds = estimate_seconds(generations, max_new_tokens, tokens_per_second)
    return (
        f"Estimated cost: at most ~{duration(seconds)} ({work} at {tokens_per_second:,.0f} tokens/s measured here)"
    )


def eta_seconds(elapsed: float, done: int, total: int) -> float | None:
    """Time left at the pace so far (``elapsed`` seconds for ``done`` of ``total``); None before any progress."""
    if done <= 0 or total <= 0 or elapsed <= 0:
        return None
    return max(0.0, elapsed / done * (total - done))
