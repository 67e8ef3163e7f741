"""Every bound corrsteer puts on outside input, in one place, with one-line checks that raise before work starts.

Outside input is anything a user, a file or a server hands us: command-line numbers, task files, profile files
(and the provenance inside them), Neuronpedia replies. Each bound is far above any real use and far below what
exhausts memory or time, and each number says why it is what it is:

- ``MAX_NEW_TOKENS`` 4096: the longest task generation is GSM8K's 512 tokens; the presets' models read 8,192
  tokens in all, and steering is judged on short replies. Checked before a model loads.
- ``MAX_PROMPT_CHARS`` 32,768: 8,192 tokens (the presets' context) at the ~4 characters a token holds in
  English. A prompt over it cannot fit any preset's context; the exact check against the loaded model's own
  context, in tokens, is :func:`corrsteer_core.generation.check_context`.
- ``MAX_BATCH_SIZE`` 1024: batches are padded to their longest prompt and hold a KV cache per row.
- ``MAX_FEATURE_QUERY_CHARS`` 100: a feature search matches token text, and no vocabulary token is that long.
- ``MAX_TASK_FILE_BYTES`` 256 MiB and ``MAX_TASK_ROWS`` 250,000: the largest benchmark split used (MMLU's
  auxiliary_train, ~100k rows, ~160 MB) fits; a table beyond it would not fit in memory as items anyway.
- ``MAX_PROFILE_BYTES`` 64 MiB: a safetensors export of 128 layers of 16,384-wide float32 vectors is 8 MiB.
- ``MAX_COEFFICIENT`` 1e6 and ``MAX_SCALE`` 1e3: pure sanity bounds on numbers read from a file, so that
  coefficient x scale x global scale stays finite even in bfloat16. Whether a vector is absurd for *this*
  model is decided against the model's own residual norm: ``MAX_RELATIVE_NORM`` (see
  :func:`corrsteer_core.diagnostics.check_vector_norms`).
- ``MAX_RELATIVE_NORM`` 100: a steering vector 100x the typical residual norm at its hook replaces the residual
  stream instead of nudging it (the RMS-norm of the next block sees only the vector). Real profiles sit
  around 0.1-2x, and a sweep to x10 stays far below.
- ``NEURONPEDIA_MAX_REPLY_BYTES`` 16 MiB: a batch of 50 features with 5 examples each is ~5 MB, one feature
  with all its examples under 1 MB. ``NEURONPEDIA_DEADLINE_S`` 30 s: a whole lookup (connect, redirects,
  headers, body), however slowly a server trickles it. ``NEURONPEDIA_MAX_REDIRECTS`` 3.
- ``MAX_COLLECT_BINS`` 256 and ``MAX_STRATA`` 64: statistics hold layers x features x bins (or strata) floats.
- ``MAX_MODEL_LAYERS`` 1024 and ``MAX_MODEL_WIDTH`` 131,072: ten times the deepest and eight times the widest
  open model (Llama-3.1-405B: 126 layers of 16,384); presets from a user's YAML and profiles from a file are
  held to them before anything is sized by them.
- ``MAX_SAMPLES`` 16 and ``MAX_TEMPERATURE`` 10: replies sampled per prompt for a side-by-side comparison
  (each is a row of the batch), and a temperature past which every token is near-uniform noise.
- JSON nesting: Python's own recursion limit; deeper JSON is refused with :class:`ValueError` by
  :func:`loads_json` instead of a ``RecursionError`` escaping.
"""

from __future__ import annotations

import json
from typing import Any

from corrsteer_core.errors import ConfigError, CorrSteerError, TaskError

__all__ = [
    "MAX_BATCH_SIZE",
    "MAX_COEFFICIENT",
    "MAX_COLLECT_BINS",
    "MAX_FEATURE_QUERY_CHARS",
    "MAX_MODEL_LAYERS",
    "MAX_MODEL_WIDTH",
    "MAX_NEW_TOKENS",
    "MAX_PROFILE_BYTES",
    "MAX_PROMPT_CHARS",
    "MAX_RELATIVE_NORM",
    "MAX_SAMPLES",
    "MAX_SCALE",
    "MAX_STRATA",
    "MAX_TASK_FILE_BYTES",
    "MAX_TASK_ROWS",
    "MAX_TEMPERATURE",
    "NEURONPEDIA_DEADLINE_S",
    "NEURONPEDIA_MAX_REDIRECTS",
    "NEURONPEDIA_MAX_REPLY_BYTES",
    "check_at_most",
    "check_new_tokens",
    "check_prompt_size",
    "loads_json",
]

MAX_NEW_TOKENS = 4096
MAX_PROMPT_CHARS = 32_768
MAX_BATCH_SIZE = 1024
MAX_FEATURE_QUERY_CHARS = 100  # a feature search matches tokens: no token is longer
MAX_TASK_FILE_BYTES = 256 * 2**20
MAX_TASK_ROWS = 250_000
MAX_PROFILE_BYTES = 64 * 2**20
MAX_COEFFICIENT = 1e6
MAX_SCALE = 1e3
MAX_RELATIVE_NORM = 100.0
MAX_COLLECT_BINS = 256
MAX_STRATA = 64
MAX_SAMPLES = 16
MAX_TEMPERATURE = 10.0
MAX_MODEL_LAYERS = 1024
MAX_MODEL_WIDTH = 1 << 17
NEURONPEDIA_MAX_REPLY_BYTES = 16 * 2**20
NEURONPEDIA_DEADLINE_S = 30.0
NEURONPEDIA_MAX_REDIRECTS = 3


def check_at_most(
    name: str, value: int | float, most: int | float, *, error: type[CorrSteerError] = ConfigError, why: str = ""
) -> None:
    """Raise ``error`` naming ``name``, the value and the bound when ``value > most``."""
    if value > most:
        raise error(f"{name} is {value:,}; at most {most:,} is allowed{f' ({why})' if why else ''}")


def check_new_tokens(value: int | None, name: str = "max_new_tokens") -> None:
    """Positive and at most :data:`MAX_NEW_TOKENS` (None: the task's own, always within the bound)."""
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(f"{name} must be a positive integer, got {value!r}")
    check_at_most(name, value, MAX_NEW_TOKENS, why="steering is judged on replies far shorter")


def check_prompt_size(prompt: str, where: str) -> None:
    """TaskError naming ``where`` (an item, a file's row) when a prompt is longer than any context can hold."""
    if len(prompt) > MAX_PROMPT_CHARS:
        raise TaskError(
            f"{where}: the prompt has {len(prompt):,} characters; at most {MAX_PROMPT_CHARS:,} are accepted "
            "(about 8,192 tokens, the presets' whole context)"
        )


def loads_json(data: str | bytes) -> Any:
    """``json.loads``, except that nesting too deep for Python raises ValueError like any other bad JSON.

    Non-finite numbers (NaN, Infinity) are refused too: nothing corrsteer reads may hold them.
    """
    try:
        return json.loads(data, parse_constant=_refuse_constant)
    except RecursionError:
        raise ValueError("JSON nested deeper than Python can read (a few hundred levels)") from None


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"non-finite number {name} in JSON")
