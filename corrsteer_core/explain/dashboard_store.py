"""Feature dashboards on disk (safetensors + JSON, written atomically through :mod:`corrsteer_core.storage`),
and reading them back: one feature's dashboard, or a search over every layer by label or token.

Layout: ``cache/dashboards/<preset>/<sae set>/layer_<L>.safetensors`` (the tensors, with the SAE fingerprint in
their metadata), ``layer_<L>.json`` (fingerprint, labels as text, counts; written last, so it marks the layer
done) and ``vocab.json`` (the decoded text of every token id, so that no tokenizer is needed to read them).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from corrsteer_core import storage
from corrsteer_core.config import PresetSpec
from corrsteer_core.errors import CacheCorruptError, ExplanationError
from corrsteer_core.explain.feature_stats import HIST_EDGES
from corrsteer_core.explain.labels import format_label
from corrsteer_core.explain.records import ActivationExample
from corrsteer_core.limits import MAX_FEATURE_QUERY_CHARS, check_at_most
from corrsteer_core.saes import SAESet

__all__ = [
    "FeatureDashboard",
    "FeatureMatch",
    "LayerDashboard",
    "dashboard_dir",
    "load_layer",
    "rank_matches",
    "save_layer",
    "save_vocab",
    "search_features",
    "stale_layers",
]

_ADVICE = "delete it and run `corrsteer prepare` again to rebuild the dashboards"


def dashboard_dir(preset: PresetSpec) -> Path:
    key = str(preset.sae.set_name or preset.sae.release or "sae").replace("/", "_")
    return storage.cache_root() / "dashboards" / preset.name / key


def _paths(preset: PresetSpec, layer: int) -> tuple[Path, Path]:
    base = dashboard_dir(preset)
    return base / f"layer_{layer}.safetensors", base / f"layer_{layer}.json"


def save_vocab(preset: PresetSpec, tokenizer: Any) -> None:
    path = dashboard_dir(preset) / "vocab.json"
    if not path.is_file():
        storage.atomic_write_json(path, [tokenizer.decode([i]) for i in range(len(tokenizer))], indent=None)


def _vocab(preset: PresetSpec) -> list[str]:
    data = storage.read_json(dashboard_dir(preset) / "vocab.json", _ADVICE)
    if not isinstance(data, list):
        raise CacheCorruptError(f"{dashboard_dir(preset) / 'vocab.json'} is not a token list; {_ADVICE}")
    return [str(t) for t in data]


def _decode(vocab: list[str], ids: list[int]) -> list[str]:
    return [vocab[i] if 0 <= i < len(vocab) else f"<{i}>" for i in ids]


def save_layer(
    preset: PresetSpec, layer: int, fingerprint: str, tensors: dict[str, torch.Tensor], info: dict[str, Any]
) -> None:
    tensor_path, json_path = _paths(preset, layer)
    storage.atomic_save_tensors(tensor_path, tensors, metadata={"fingerprint": fingerprint})
    vocab = _vocab(preset)
    labels = [format_label(_decode(vocab, [i for i in row if i >= 0])) for row in tensors["label_ids"].tolist()]
    storage.atomic_write_json(
        json_path, {"layer": layer, "fingerprint": fingerprint, "labels": labels, **info}, indent=None
    )


def _stored_fingerprint(preset: PresetSpec, layer: int) -> str | None:
    tensor_path, json_path = _paths(preset, layer)
    if not (tensor_path.is_file() and json_path.is_file()):
        return None
    try:
        return str(storage.read_json(json_path, _ADVICE).get("fingerprint"))
    except (CacheCorruptError, AttributeError):
        return None  # a damaged layer is simply recomputed


def stale_layers(saes: SAESet, layers: list[int]) -> list[int]:
    """Layers with no dashboard, or one computed for other SAE weights."""
    return [L for L in layers if _stored_fingerprint(saes.preset, L) != saes.fingerprint(L)]


@dataclass(frozen=True)
class FeatureDashboard:
    layer: int
    feature: int
    label: str
    precision: float
    recall: float
    f1: float
    support: int  # held-out positions where it fired: an F1 on a handful of firings is weak evidence
    density: float
    max_activation: float
    contexts: tuple[ActivationExample, ...]  # strongest first; values are per-token activations
    hist_edges: tuple[float, ...]
    hist_counts: tuple[int, ...]
    promoted: tuple[tuple[str, float], ...]
    suppressed: tuple[tuple[str, float], ...]


@dataclass(frozen=True)
class FeatureMatch:
    layer: int
    feature: int
    label: str
    f1: float
    density: float
    matched: str  # "label", "context" (a top context's peak token) or "promoted"
    exact: bool = False  # a matched token equals the query (case-insensitive), not just contains it


class LayerDashboard:
    """One layer's dashboards, loaded once; :meth:`feature` builds a feature's view on demand."""

    def __init__(self, preset: PresetSpec, layer: int, info: dict[str, Any], tensors: dict[str, torch.Tensor]):
        self.preset, self.layer, self.info, self.t = preset, layer, info, tensors
        self.labels: list[str] = [str(x) for x in info.get("labels", [])]
        self.vocab = _vocab(preset)
        self.window_before = int(info.get("config", {}).get("before", 8))

    @property
    def n_features(self) -> int:
        return int(self.t["density"].shape[0])

    def feature(self, feature: int) -> FeatureDashboard:
        t = self.t
        contexts = []
        for j in range(t["top_val"].shape[1]):
            peak = float(t["top_val"][feature, j])
            if peak <= 0:
                break
            ids, vals = t["win_ids"][feature, j].tolist(), t["win_val"][feature, j].float().tolist()
            kept = [(i, v) for i, v in zip(ids, vals, strict=True) if i >= 0]
            contexts.append(
                ActivationExample(
                    tokens=tuple(_decode(self.vocab, [i for i, _ in kept])),
                    values=tuple(round(v, 4) for _, v in kept),
                    max_value=round(peak, 4),
                )
            )
        hist = t["hist"][feature].tolist()
        return FeatureDashboard(
            layer=self.layer,
            feature=feature,
            label=self.labels[feature] if feature < len(self.labels) else "",
            precision=float(t["precision"][feature]),
            recall=float(t["recall"][feature]),
            f1=float(t["f1"][feature]),
            support=int(t["heldout_fired"][feature]),
            density=float(t["density"][feature]),
            max_activation=float(t["top_val"][feature, 0]),
            contexts=tuple(contexts),
            hist_edges=tuple(float(e) for e in HIST_EDGES),
            hist_counts=tuple(int(c) for c in hist),
            promoted=self._tokens("promoted", feature),
            suppressed=self._tokens("suppressed", feature),
        )

    def _tokens(self, kind: str, feature: int) -> tuple[tuple[str, float], ...]:
        ids, vals = self.t[f"{kind}_ids"][feature].tolist(), self.t[f"{kind}_val"][feature].tolist()
        return tuple((tok, round(v, 4)) for tok, v in zip(_decode(self.vocab, ids), vals, strict=True))

    def matches(self, query: str) -> list[FeatureMatch]:
        """Features whose label, top-context peaks or promoted tokens contain ``query`` (case-insensitive)."""
        check_at_most("the search text's length", len(query), MAX_FEATURE_QUERY_CHARS, error=ExplanationError)
        q = query.lower()
        token_hits = {i for i, tok in enumerate(self.vocab) if q in tok.lower()}
        if not token_hits:
            return []
        hit = torch.zeros(len(self.vocab) + 1, dtype=torch.bool)
        hit[torch.tensor(sorted(token_hits))] = True
        same = torch.zeros(len(self.vocab) + 1, dtype=torch.bool)
        exact_ids = [i for i in token_hits if self.vocab[i].lower() == q]
        if exact_ids:
            same[torch.tensor(exact_ids)] = True

        def rows(ids: torch.Tensor, table: torch.Tensor = hit) -> torch.Tensor:
            ids = ids.long()
            return table[torch.where(ids >= 0, ids, len(self.vocab)).clamp(max=len(self.vocab))].any(dim=1)

        exact = rows(self.t["label_ids"], same)

        peaks = self.t["win_ids"][:, :, self.window_before]
        by_label, by_context, by_promoted = (
            rows(self.t["label_ids"]),
            rows(peaks),
            rows(self.t["promoted_ids"][:, :3]),
        )
        out = []
        for f in (by_label | by_context | by_promoted).nonzero().flatten().tolist():
            matched = "label" if by_label[f] else "context" if by_context[f] else "promoted"
            out.append(
                FeatureMatch(
                    self.layer,
                    f,
                    self.labels[f],
                    float(self.t["f1"][f]),
                    float(self.t["density"][f]),
                    matched,
                    exact=bool(exact[f]),
                )
            )
        return out


def load_layer(preset: PresetSpec, layer: int, fingerprint: str | None = None) -> LayerDashboard | None:
    """The layer's dashboards, or None when there are none (or, given ``fingerprint``, none for those weights)."""
    tensor_path, json_path = _paths(preset, layer)
    if not (tensor_path.is_file() and json_path.is_file()):
        return None
    info = storage.read_json(json_path, _ADVICE)
    if not isinstance(info, dict) or (fingerprint is not None and info.get("fingerprint") != fingerprint):
        return None
    return LayerDashboard(preset, layer, info, storage.load_tensors(tensor_path, _ADVICE))


_RANK = {"label": 0, "context": 1, "promoted": 2}


def search_features(
    preset: PresetSpec, query: str, layers: list[int] | None = None, limit: int = 50
) -> list[FeatureMatch]:
    """Features of every layer with dashboards matching ``query``: label matches first, best scored first."""
    if not query:
        return []
    found: list[FeatureMatch] = []
    for layer in layers if layers is not None else list(preset.layers):
        board = load_layer(preset, layer)
        if board is not None:
            found.extend(board.matches(query))
    return rank_matches(found, limit)


def rank_matches(found: list[FeatureMatch], limit: int) -> list[FeatureMatch]:
    """Labels with the query as a whole token first, then labels containing it, then top-context and
    promoted-token matches; best label score first within each."""
    key = lambda m: (not m.exact, _RANK[m.matched], -m.f1 if math.isfinite(m.f1) else 0.0, m.layer, m.feature)  # noqa: E731
    return sorted(found, key=key)[:limit]
