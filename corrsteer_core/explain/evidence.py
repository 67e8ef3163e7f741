"""Local evidence for any SAE feature, including SAEs Neuronpedia has never seen (the embedded ones).

- where it fired most among the collection's generations, with the activating tokens (recomputed exactly by
  teacher-forcing the stored prompt and generated token ids and encoding at the feature's own hook site);
- what its decoder direction does to the output distribution: the tokens it promotes and suppresses through
  the final norm's gain and the unembedding;
- how often it fires on correct versus incorrect samples, and its activation histogram by class.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from corrsteer_core.collect import CollectionResult
from corrsteer_core.errors import ExplanationError
from corrsteer_core.generation import encode_prompts
from corrsteer_core.hooks import capture_residuals
from corrsteer_core.loading import LoadedModel
from corrsteer_core.runs import SampleRecord
from corrsteer_core.saes import SAESet

__all__ = [
    "ClassEvidence",
    "TokenActivations",
    "class_evidence",
    "logit_effects",
    "logit_lens",
    "token_activations",
    "top_activating_records",
]


@dataclass(frozen=True)
class TokenActivations:
    record: SampleRecord
    pooled: float  # the pooled activation recorded during collection
    tokens: tuple[str, ...]  # the last prompt token, then every generated token
    values: tuple[float, ...]  # the feature's activation at each of those positions


@dataclass(frozen=True)
class ClassEvidence:
    firing_rate_correct: float
    firing_rate_incorrect: float
    mean_correct: float
    mean_incorrect: float
    r: float
    bin_edges: tuple[float, ...]
    counts_correct: tuple[int, ...]
    counts_incorrect: tuple[int, ...]


def _position(collection: CollectionResult, layer: int) -> int:
    if layer not in collection.layers:
        raise ExplanationError(
            f"layer {layer} was not collected in run {collection.run_id} (layers: {collection.layers})"
        )
    return collection.layers.index(layer)


def top_activating_records(
    collection: CollectionResult, layer: int, feature: int, n: int = 5
) -> list[tuple[SampleRecord, float]]:
    """Samples whose pooled activation of the feature was highest: from the run's per-feature top samples, or,
    for runs collected before those were kept, from each sample's kept top features."""
    pos = _position(collection, layer)
    if collection.feature_top is not None:
        rows, vals = collection.feature_top[0][pos, feature], collection.feature_top[1][pos, feature]
        n_rec = len(collection.records)
        pairs = zip(rows[:n].tolist(), vals[:n].tolist(), strict=True)
        return [(collection.records[r], v) for r, v in pairs if 0 <= r < n_rec and v > 0]
    if collection.top_idx.numel() == 0:
        return []
    hits = collection.top_idx[:, pos, :] == feature  # (N, M)
    values = torch.where(hits, collection.top_val[:, pos, :].float(), torch.zeros(())).amax(dim=1)
    order = torch.argsort(values, descending=True, stable=True)[:n]
    return [(collection.records[int(i)], float(values[i])) for i in order if values[i] > 0]


@torch.inference_mode()
def token_activations(
    loaded: LoadedModel, saes: SAESet, collection: CollectionResult, layer: int, feature: int, n: int = 5
) -> list[TokenActivations]:
    """Top activating samples with the feature's activation at each generation position, recomputed exactly."""
    site = collection.meta.sites[layer]
    chat = collection.meta.chat
    out = []
    for record, pooled in top_activating_records(collection, layer, feature, n):
        prompt = encode_prompts(loaded.tokenizer, [record.prompt], chat)[0]
        ids = torch.tensor([prompt + list(record.token_ids)], device=loaded.device)
        with loaded.lock, capture_residuals(loaded.model, [site], positions="all") as rec:
            loaded.model(input_ids=ids, logits_to_keep=1)
        resid = rec.stacked(site)[0, len(prompt) - 1 :]  # last prompt token onwards
        acts = saes.encode(layer, resid)[:, feature].float().tolist()
        pieces = [prompt[-1], *record.token_ids]
        tokens = tuple(loaded.tokenizer.decode([t]) for t in pieces)
        out.append(TokenActivations(record=record, pooled=pooled, tokens=tokens, values=tuple(acts)))
    return out


@torch.inference_mode()
def logit_lens(
    loaded: LoadedModel, saes: SAESet, layer: int, features: list[int] | None = None, k: int = 10, chunk: int = 256
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """(promoted ids, their logit change, suppressed ids, their change), each (n, k), for ``features`` (default
    every feature): the tokens whose logits each feature's direction raises / lowers most, through the final
    norm's gain and the unembedding."""
    wanted = list(range(saes.d_sae(layer))) if features is None else list(features)
    norm = getattr(getattr(loaded.model, "model", None), "norm", None)
    gain = norm.weight.float() if norm is not None and getattr(norm, "weight", None) is not None else None
    unembed = loaded.model.get_output_embeddings().weight.float()  # (V, d)
    parts: list[tuple[torch.Tensor, ...]] = []
    for start in range(0, len(wanted), chunk):
        direction = saes.directions(layer, wanted[start : start + chunk]).to(loaded.device)  # (n, d)
        if gain is not None:
            direction = direction * gain
        logits = direction @ unembed.T  # (n, V)
        top, bottom = torch.topk(logits, k, dim=1), torch.topk(-logits, k, dim=1)
        parts.append((top.indices.cpu(), top.values.cpu(), bottom.indices.cpu(), -bottom.values.cpu()))
    if not parts:
        empty = torch.zeros((0, k))
        return empty.long(), empty, empty.long(), empty
    up_i, up_v, down_i, down_v = (torch.cat(p) for p in zip(*parts, strict=True))
    return up_i, up_v, down_i, down_v


def logit_effects(
    loaded: LoadedModel, saes: SAESet, layer: int, feature: int, k: int = 10
) -> tuple[list[tuple[str, float]], list[tuple[str, float]]]:
    """(promoted, suppressed): the k tokens whose logits the feature's direction raises / lowers most."""
    up_i, up_v, down_i, down_v = logit_lens(loaded, saes, layer, [feature], k)
    name = loaded.tokenizer.decode
    return (
        [(name([int(i)]), float(v)) for v, i in zip(up_v[0], up_i[0], strict=True)],
        [(name([int(i)]), float(v)) for v, i in zip(down_v[0], down_i[0], strict=True)],
    )


def class_evidence(collection: CollectionResult, layer: int, feature: int) -> ClassEvidence:
    """Firing rate and mean pooled activation per class, Pearson r, and the activation histogram by class."""
    pos = _position(collection, layer)
    stats = collection.stats
    if not 0 <= feature < stats.n_features:
        raise ExplanationError(
            f"feature {feature} is out of range: the SAE has features 0..{stats.n_features - 1}"
        )
    fired_c, fired_i = stats.firing_counts()
    n1, n0 = stats.n_correct, stats.n - stats.n_correct
    mean_c, mean_i = stats.class_means()
    edges, counts_c, counts_i = stats.histogram(pos, feature)
    return ClassEvidence(
        firing_rate_correct=float(fired_c[pos, feature]) / n1 if n1 else 0.0,
        firing_rate_incorrect=float(fired_i[pos, feature]) / n0 if n0 else 0.0,
        mean_correct=float(mean_c[pos, feature]),
        mean_incorrect=float(mean_i[pos, feature]),
        r=float(stats.pearson()[pos, feature]),
        bin_edges=tuple(float(e) for e in edges),
        counts_correct=tuple(int(c) for c in counts_c),
        counts_incorrect=tuple(int(c) for c in counts_i),
    )
