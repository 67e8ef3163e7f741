"""Neuronpedia REST client with a disk cache: what each selected SAE feature means, online or not.

Lookups never raise for network or server trouble; they return a :class:`FeatureLookup` whose status says what
happened ("ok", "not_found", "offline", "error"). Each lookup ends by its ``deadline`` and reads at most
``max_reply_bytes`` of a reply (limits.py); the API key is never sent to another host a redirect names; the
disk cache keeps each server's answers apart (a test server's reply is never served as neuronpedia.org's).
Cached features are answered from disk and never fetched again. When the host turns out to be unreachable the
client stops trying for ``offline_cooldown`` seconds, so a page listing thirty features does not wait thirty
times. Only bad arguments raise (:class:`InvalidFeatureKeyError`).

    client = NeuronpediaClient()
    lookup = client.get_feature("gemma-2-2b", "3-gemmascope-res-16k", 5)
    if lookup.ok: print(lookup.explanation.description, lookup.explanation.url)
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

import requests

from corrsteer_core.errors import ExplanationError
from corrsteer_core.explain.cache import FeatureCache
from corrsteer_core.explain.http_bounds import watch_session
from corrsteer_core.explain.records import (
    MAX_EXAMPLES,
    NEURONPEDIA_URL,
    FeatureExplanation,
    FeatureLookup,
    InvalidFeatureKeyError,
    MalformedResponseError,
    parse_feature_row,
    validate_feature_key,
)
from corrsteer_core.explain.transport import Outcome, RateLimiter, RetryPolicy, send, shared_rate_limiter
from corrsteer_core.limits import NEURONPEDIA_DEADLINE_S, NEURONPEDIA_MAX_REPLY_BYTES
from corrsteer_core.storage import cache_path

__all__ = ["OFFLINE_MESSAGE", "FeatureKey", "NeuronpediaClient", "NeuronpediaConfigError"]

log = logging.getLogger(__name__)

OFFLINE_MESSAGE = "not available offline"
API_KEY_ENV = "NEURONPEDIA_API_KEY"
OFFLINE_ENV = "CORRSTEER_OFFLINE"
FeatureKey = tuple[str, str, int]  # (model_id, sae_id, index)


class NeuronpediaConfigError(ExplanationError, ValueError):
    """A NeuronpediaClient setting is invalid."""


def _env_offline() -> bool:
    return os.environ.get(OFFLINE_ENV, "").strip().lower() in {"1", "true", "yes", "on"}


def _as_triple(key: object) -> tuple[object, object, object]:
    if not isinstance(key, tuple | list) or len(key) != 3:
        raise InvalidFeatureKeyError(f"a feature key is (model_id, sae_id, index), got {key!r}")
    return key[0], key[1], key[2]


def _describe(key: FeatureKey) -> str:
    return f"feature {key[2]} in {key[0]}/{key[1]}"


class NeuronpediaClient:
    """Fetch and cache Neuronpedia feature explanations. Thread-safe; hold one per process (e.g. in
    ``st.cache_resource``) so the offline circuit breaker is shared by every lookup."""

    def __init__(
        self,
        *,
        base_url: str = NEURONPEDIA_URL,
        cache_dir: Path | None = None,
        api_key: str | None = None,
        offline: bool | None = None,
        timeout: float = 10.0,
        max_retries: int = 3,
        backoff: float = 1.0,
        session: requests.Session | None = None,
        max_wait: float = 30.0,
        offline_cooldown: float = 60.0,
        batch_size: int = 50,
        rate_limiter: RateLimiter | None = None,
        deadline: float = NEURONPEDIA_DEADLINE_S,
        max_reply_bytes: int = NEURONPEDIA_MAX_REPLY_BYTES,
    ) -> None:
        if urlsplit(base_url).scheme not in ("http", "https") or not urlsplit(base_url).netloc:
            raise NeuronpediaConfigError(
                f"base_url must be an http(s) URL such as {NEURONPEDIA_URL}, got {base_url!r}"
            )
        if batch_size < 1 or offline_cooldown < 0:
            raise NeuronpediaConfigError(
                f"need batch_size >= 1 and offline_cooldown >= 0, got {batch_size}, {offline_cooldown}"
            )
        try:
            self.policy = RetryPolicy(
                timeout=timeout,
                connect_timeout=min(timeout, 5.0),
                max_retries=max_retries,
                backoff=backoff,
                max_wait=max_wait,
                deadline=deadline,
                max_bytes=max_reply_bytes,
            )
        except ValueError as exc:
            raise NeuronpediaConfigError(str(exc)) from exc
        self.base_url = base_url.rstrip("/")
        self.cache = FeatureCache(
            Path(cache_dir) if cache_dir is not None else cache_path("neuronpedia"), self.base_url
        )
        self.offline = _env_offline() if offline is None else bool(offline)
        self.offline_cooldown = offline_cooldown
        self.batch_size = batch_size
        self.limiter = rate_limiter if rate_limiter is not None else shared_rate_limiter(self.base_url)
        self._headers = {"Accept": "application/json", "User-Agent": "corrsteer (+https://www.neuronpedia.org)"}
        key = api_key if api_key is not None else os.environ.get(API_KEY_ENV)
        if key:
            self._headers["x-api-key"] = key  # only ever sent, never logged, stored or shown in repr
        self._own_session = session is None
        # watched: a lookup's deadline can cut the connection however slowly the server answers
        self._session = watch_session(session if session is not None else requests.Session())
        self._lock = threading.Lock()
        self._unreachable_until = 0.0
        self.last_network_error: str | None = None

    def __repr__(self) -> str:
        key = "set" if "x-api-key" in self._headers else "unset"
        return (
            f"NeuronpediaClient(base_url={self.base_url!r}, cache_dir={str(self.cache.root)!r}, "
            f"offline={self.offline}, api_key={key})"
        )

    def close(self) -> None:
        if self._own_session:
            self._session.close()

    def __enter__(self) -> NeuronpediaClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- offline state ---------------------------------------------------------------------------------------

    @property
    def is_offline(self) -> bool:
        """True in offline mode or while the circuit breaker is open after an unreachable host."""
        return self.offline or time.monotonic() < self._unreachable_until

    def reset_offline(self) -> None:
        """Close the circuit breaker: the next miss tries the network again."""
        with self._lock:
            self._unreachable_until = 0.0

    def _trip(self, outcome: Outcome) -> None:
        with self._lock:
            self._unreachable_until = time.monotonic() + self.offline_cooldown
            self.last_network_error = outcome.message
        log.warning(
            "Neuronpedia unreachable (%s); answering offline for %.0f s", outcome.message, self.offline_cooldown
        )

    # -- lookups ----------------------------------------------------------------------------------------------

    def cached(self, model_id: str, sae_id: str, index: int) -> FeatureExplanation | None:
        """The explanation on disk, if any; never touches the network."""
        return self.cache.get(*validate_feature_key(model_id, sae_id, index))

    def get_feature(self, model_id: str, sae_id: str, index: int) -> FeatureLookup:
        """One feature: from disk if cached, else ``GET /api/feature/{model_id}/{sae_id}/{index}``."""
        key = validate_feature_key(model_id, sae_id, index)
        hit = self.cache.get(*key)
        if hit is not None:
            return FeatureLookup("ok", hit, "from cache", from_cache=True)
        if self.is_offline:
            return FeatureLookup("offline", None, OFFLINE_MESSAGE)
        url = f"{self.base_url}/api/feature/{quote(key[0], safe='')}/{quote(key[1], safe='')}/{key[2]}"
        outcome = send(self._session, "GET", url, headers=self._headers, policy=self.policy, limiter=self.limiter)
        lookup = self._single_lookup(key, outcome)
        if lookup.explanation is not None:
            self.cache.put_many([lookup.explanation])
        return lookup

    def get_features(self, keys: Sequence[FeatureKey]) -> list[FeatureLookup]:
        """Many features, in input order: cached ones from disk, the distinct misses by ``POST /api/features``
        in batches of ``batch_size``."""
        wanted = [validate_feature_key(*_as_triple(k)) for k in keys]
        results: dict[FeatureKey, FeatureLookup] = {}
        on_disk: dict[tuple[str, str], dict[int, FeatureExplanation]] = {}
        misses: list[FeatureKey] = []
        for key in dict.fromkeys(wanted):  # distinct keys, first-seen order
            model_id, sae_id, index = key
            if (model_id, sae_id) not in on_disk:
                on_disk[(model_id, sae_id)] = self.cache.load(model_id, sae_id)
            hit = on_disk[(model_id, sae_id)].get(index)
            if hit is not None:
                results[key] = FeatureLookup("ok", hit, "from cache", from_cache=True)
            else:
                misses.append(key)
        for start in range(0, len(misses), self.batch_size):
            results.update(self._fetch_batch(misses[start : start + self.batch_size]))
        return [results[k] for k in wanted]

    # -- internals --------------------------------------------------------------------------------------------

    def _single_lookup(self, key: FeatureKey, outcome: Outcome) -> FeatureLookup:
        if outcome.kind == "unreachable":
            self._trip(outcome)
            return FeatureLookup("offline", None, OFFLINE_MESSAGE)
        if outcome.kind == "error":
            return FeatureLookup("error", None, f"{_describe(key)}: {outcome.message}")
        row = outcome.data
        # Neuronpedia has answered a missing feature with 404 {"error"}, and with 200 null or {"error"}.
        if (
            outcome.kind == "not_found"
            or row is None
            or (isinstance(row, dict) and "error" in row and "index" not in row)
        ):
            return self._not_found(key)
        return self._parsed(key, row)

    def _not_found(self, key: FeatureKey) -> FeatureLookup:
        return FeatureLookup("not_found", None, f"Neuronpedia has no feature {key[2]} in {key[0]}/{key[1]}")

    def _parsed(self, key: FeatureKey, row: Any) -> FeatureLookup:
        try:
            explanation = parse_feature_row(row, *key, base_url=self.base_url)
        except MalformedResponseError as exc:
            return FeatureLookup("error", None, f"{_describe(key)}: malformed Neuronpedia response ({exc})")
        return FeatureLookup("ok", explanation, "fetched from Neuronpedia")

    def _fetch_batch(self, chunk: list[FeatureKey]) -> dict[FeatureKey, FeatureLookup]:
        if self.is_offline:
            return {k: FeatureLookup("offline", None, OFFLINE_MESSAGE) for k in chunk}
        body = [{"modelId": m, "layer": s, "index": i, "maxActsToReturn": MAX_EXAMPLES} for m, s, i in chunk]
        outcome = send(
            self._session,
            "POST",
            f"{self.base_url}/api/features",
            body=body,
            headers=self._headers,
            policy=self.policy,
            limiter=self.limiter,
        )
        if outcome.kind == "unreachable":
            self._trip(outcome)
            return {k: FeatureLookup("offline", None, OFFLINE_MESSAGE) for k in chunk}
        if outcome.http_status in (400, 404):
            # One unknown model or SAE makes the whole batch invalid: ask for each feature on its own.
            return {k: self.get_feature(*k) for k in chunk}
        if outcome.kind != "ok" or not isinstance(outcome.data, list):
            why = outcome.message if outcome.kind != "ok" else "malformed Neuronpedia response (expected a list)"
            return {k: FeatureLookup("error", None, f"{_describe(k)}: {why}") for k in chunk}
        rows = self._rows_by_key(outcome.data)
        results: dict[FeatureKey, FeatureLookup] = {}
        for key in chunk:
            row = rows.get(key, rows.get(("", key[1], key[2])))
            results[key] = self._not_found(key) if row is None else self._parsed(key, row)
        self.cache.put_many(r.explanation for r in results.values() if r.explanation is not None)
        return results

    @staticmethod
    def _rows_by_key(rows: list[Any]) -> dict[FeatureKey, Any]:
        """Index batch rows by (modelId, layer, index); rows without a modelId are filed under ''."""
        by_key: dict[FeatureKey, Any] = {}
        for row in rows:
            if not isinstance(row, dict):
                continue
            model_id, layer, index = row.get("modelId") or "", row.get("layer"), str(row.get("index", "")).strip()
            if isinstance(layer, str) and index.isascii() and index.isdigit():
                by_key[(str(model_id), layer, int(index))] = row
        return by_key
