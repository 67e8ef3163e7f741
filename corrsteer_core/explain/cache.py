"""Neuronpedia answers on disk: one compact JSON file per server and (model_id, sae_id), feature index -> record.

Files live under ``<root>/<server>/<model_id>/<sae_id>.json`` and name the server they came from, so the
answers of one server (a local mirror, a test server) are never served as another's. Only successful lookups
are stored; a file that cannot be read is discarded (and its features fetched again), never fatal. All writes go
through :mod:`corrsteer_core.storage`, atomically.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

from corrsteer_core.errors import CacheCorruptError
from corrsteer_core.explain.records import (
    NEURONPEDIA_URL,
    FeatureExplanation,
    MalformedResponseError,
    feature_url,
)
from corrsteer_core.storage import atomic_write_json, read_json

__all__ = ["CACHE_FORMAT", "FeatureCache", "server_folder"]

log = logging.getLogger(__name__)

CACHE_FORMAT = 1
# Stored once per file (model_id, sae_id) or rebuilt on load (url), so records carry only the rest.
_KEY_FIELDS = ("model_id", "sae_id", "index", "url")


def _file_name(identifier: str) -> str:
    return quote(identifier, safe="-_.")


def server_folder(base_url: str) -> str:
    """A folder name for a server: its host, port and path ('www.neuronpedia.org', '127.0.0.1%3A8080')."""
    parts = urlsplit(base_url)
    return _file_name(f"{parts.netloc.lower()}{parts.path.rstrip('/')}") or "server"


class FeatureCache:
    """Read and extend the per-SAE explanation files under ``root``."""

    def __init__(self, root: Path, base_url: str = NEURONPEDIA_URL) -> None:
        self.root = Path(root)
        self.base_url = base_url.rstrip("/")
        self._lock = threading.Lock()

    def path(self, model_id: str, sae_id: str) -> Path:
        return self.root / server_folder(self.base_url) / _file_name(model_id) / f"{_file_name(sae_id)}.json"

    def load(self, model_id: str, sae_id: str) -> dict[int, FeatureExplanation]:
        """Every readable record of one SAE; a corrupt file is deleted and reads as empty."""
        path = self.path(model_id, sae_id)
        try:
            data = read_json(path)
        except FileNotFoundError:
            return {}
        except CacheCorruptError as exc:
            self._discard(path, str(exc))
            return {}
        features = data.get("features") if isinstance(data, dict) else None
        if (
            not isinstance(features, dict)
            or data.get("format") != CACHE_FORMAT
            or data.get("model_id") != model_id
            or data.get("sae_id") != sae_id
            or data.get("server") != self.base_url
        ):
            self._discard(path, "unexpected layout")
            return {}
        records: dict[int, FeatureExplanation] = {}
        for key, record in features.items():
            explanation = self._from_record(model_id, sae_id, key, record)
            if explanation is None:
                log.warning("dropping unreadable Neuronpedia cache record %s in %s", key, path)
            else:
                records[explanation.index] = explanation
        return records

    def get(self, model_id: str, sae_id: str, index: int) -> FeatureExplanation | None:
        return self.load(model_id, sae_id).get(index)

    def put_many(self, explanations: Iterable[FeatureExplanation]) -> None:
        """Merge explanations into their files (re-read first, so concurrent writers lose nothing new)."""
        by_file: dict[tuple[str, str], list[FeatureExplanation]] = {}
        for explanation in explanations:
            by_file.setdefault((explanation.model_id, explanation.sae_id), []).append(explanation)
        with self._lock:
            for (model_id, sae_id), new in by_file.items():
                merged = self.load(model_id, sae_id)
                merged.update((e.index, e) for e in new)
                payload = {
                    "format": CACHE_FORMAT,
                    "server": self.base_url,
                    "model_id": model_id,
                    "sae_id": sae_id,
                    "features": {str(i): self._to_record(merged[i]) for i in sorted(merged)},
                }
                try:
                    atomic_write_json(self.path(model_id, sae_id), payload, indent=None)
                except (OSError, ValueError) as exc:  # a read-only cache must not break lookups
                    log.warning("could not write the Neuronpedia cache %s: %s", self.path(model_id, sae_id), exc)

    @staticmethod
    def _to_record(explanation: FeatureExplanation) -> dict[str, Any]:
        record = explanation.to_dict()
        for field in _KEY_FIELDS:
            record.pop(field)
        return record

    def _from_record(self, model_id: str, sae_id: str, key: str, record: Any) -> FeatureExplanation | None:
        if not isinstance(record, dict) or not (key.isascii() and key.isdigit()):
            return None
        index = int(key)
        url = feature_url(model_id, sae_id, index, self.base_url)
        try:
            return FeatureExplanation.from_dict(
                {**record, "model_id": model_id, "sae_id": sae_id, "index": index, "url": url}
            )
        except MalformedResponseError:
            return None

    @staticmethod
    def _discard(path: Path, why: str) -> None:
        log.warning(
            "discarding corrupt Neuronpedia cache file %s (%s); its features will be fetched again", path, why
        )
        try:
            path.unlink(missing_ok=True)
        except OSError as exc:
            log.warning("could not delete %s: %s", path, exc)
