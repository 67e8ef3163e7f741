"""Collect generation-time SAE activations and stream them into correlation statistics.

For each batch of selection items: greedy KV-cached generation while every SAE hook site is captured at the
generation positions; score the replies; encode each layer's residuals with its SAE; pool per sample (max, or
mean for long reasoning; optionally only over the answer span); update the float64 streaming statistics (and a
shuffled-label copy for the control). Memory is O(layers x features) plus one batch, whatever the number of
samples. Each finished batch is checkpointed, so an interrupted run resumes with identical statistics.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch

from corrsteer_core.config import CollectConfig
from corrsteer_core.errors import CollectionError, ConfigError
from corrsteer_core.experiment import Experiment
from corrsteer_core.feature_samples import new_feature_samples, update_feature_samples
from corrsteer_core.generation import GenerationResult, greedy_generate
from corrsteer_core.hooks import capture_residuals
from corrsteer_core.loading import LoadedModel
from corrsteer_core.metadata import RunIdentity, RunMeta, TaskInfo
from corrsteer_core.progress import Progress, report
from corrsteer_core.runs import RunStore, SampleRecord, run_id_for
from corrsteer_core.saes import SAESet
from corrsteer_core.stats import CorrelationStats
from corrsteer_core.steer import batch_inputs
from corrsteer_core.tasks.base import Task, TaskItem
from corrsteer_core.versions import package_versions

__all__ = ["CollectionResult", "answer_span_steps", "collect_activations", "load_collection", "read_sites"]

_ENCODE_CHUNK = 1 << 24  # feature activations materialised at once (floats)


@dataclass
class CollectionResult:
    run_id: str
    stats: CorrelationStats
    shuffled: CorrelationStats  # same activations, labels permuted within each batch: the control
    records: list[SampleRecord]
    top_idx: torch.Tensor  # (N, L, M) int32: each sample's strongest pooled features per layer
    top_val: torch.Tensor  # (N, L, M) float16
    layers: list[int]
    strata: list[str]
    meta: RunMeta
    resid_norm: dict[int, float]  # mean residual norm at the generation positions, per layer (for diagnostics)
    warnings: list[str]  # collection-level caveats (e.g. answer spans found for one class only)
    # per feature, the run's samples where it was highest: rows (L, F, k) int64 (-1: none) and values (L, F, k)
    feature_top: tuple[torch.Tensor, torch.Tensor] | None = None

    @property
    def n(self) -> int:
        return len(self.records)

    def layer_position(self, layer: int) -> int:
        return self.layers.index(layer)


def read_sites(saes: SAESet, site: str) -> dict[int, str]:
    """Hook name read (and steered) per layer: the SAE's own site, or block input for reference parity."""
    return {layer: saes.read_site(layer, site) for layer in saes.layers}


def _strata_names(items: Sequence[TaskItem], cfg: CollectConfig) -> list[str]:
    if cfg.strata_key is None:
        return []
    values = sorted({str(item.metadata.get(cfg.strata_key, "")) for item in items})
    if len(values) > cfg.max_strata:
        raise ConfigError(
            f"strata key {cfg.strata_key!r} has {len(values)} values, more than max_strata={cfg.max_strata}"
        )
    return values


def _identity(
    loaded: LoadedModel, saes: SAESet, task: Task, items: Sequence[TaskItem], cfg: CollectConfig
) -> RunIdentity:
    return RunIdentity(
        preset=loaded.preset.name,
        dtype=str(loaded.dtype),
        fingerprints={str(layer): saes.fingerprint(layer) for layer in saes.layers},
        task=task.name,
        source=task.source,
        items=tuple(item.id for item in items),
        collect=cfg,
    )


def answer_span_steps(tokenizer: Any, tokens: list[int], span: tuple[int, int] | None, n_steps: int) -> list[int]:
    """Steps whose predicted token overlaps the answer's character span (step s predicts generated token s+1)."""
    if span is None:
        return []
    ends = [len(tokenizer.decode(tokens[: j + 1], skip_special_tokens=True)) for j in range(len(tokens))]
    starts = [0, *ends[:-1]]
    return [s for s in range(min(n_steps, len(tokens))) if starts[s] < span[1] and ends[s] > span[0]]


def _pool(z: torch.Tensor, mask: torch.Tensor, pooling: str) -> torch.Tensor:
    """z (b, T, F) >= 0, mask (b, T) -> (b, F)."""
    z = z * mask[..., None].to(z.dtype)
    if pooling == "max":
        return z.amax(dim=1)
    return z.sum(dim=1) / mask.sum(dim=1, keepdim=True).clamp(min=1).to(z.dtype)


def _encode_pooled(
    saes: SAESet, layer: int, resid: torch.Tensor, mask: torch.Tensor, pooling: str
) -> torch.Tensor:
    """resid (B, T, d) -> pooled activations (B, F) float32, in row chunks to bound memory."""
    batch, steps, width = resid.shape
    rows = max(1, _ENCODE_CHUNK // max(1, steps * saes.d_sae(layer)))
    out = []
    for start in range(0, batch, rows):
        chunk = resid[start : start + rows]
        z = saes.encode(layer, chunk.reshape(-1, width)).float().reshape(chunk.shape[0], steps, -1)
        out.append(_pool(z, mask[start : start + rows].to(z.device), pooling).cpu())
    return torch.cat(out)  # on the CPU: the streaming statistics live there whatever the model's device


def _pool_masks(
    loaded: LoadedModel, result: GenerationResult, scores: list[Any], answer_span_only: bool
) -> tuple[torch.Tensor, torch.Tensor]:
    """Positions to pool per sample, and whether an answer span was found (B,) bool.

    Answer-span pooling: a sample without a span (often the wrong ones, e.g. a 'contains' scorer finds nothing)
    is pooled at its first generation position only. Pooling all of its positions instead would make the
    classes differ in how many positions they max over, which alone makes every feature look anti-correlated.
    """
    mask = result.step_mask.clone()
    found = torch.zeros(mask.shape[0], dtype=torch.bool)
    if not answer_span_only:
        return mask, found
    for row, score in enumerate(scores):
        steps = answer_span_steps(loaded.tokenizer, result.token_ids[row], score.span, result.n_steps)
        mask[row] = False
        mask[row, steps or [0]] = True
        found[row] = bool(steps)
    return mask, found


def _run_batch(
    loaded: LoadedModel,
    saes: SAESet,
    task: Task,
    items: Sequence[TaskItem],
    cfg: CollectConfig,
    sites: dict[int, str],
) -> tuple[torch.Tensor, list[Any], GenerationResult, torch.Tensor, torch.Tensor, torch.Tensor]:
    chat = loaded.use_chat_template if cfg.use_chat_template is None else cfg.use_chat_template
    max_new_tokens = cfg.max_new_tokens or task.max_new_tokens
    prompt_ids, allowed = batch_inputs(loaded, items, chat, cfg.constrained, max_new_tokens)
    with loaded.lock, capture_residuals(loaded.model, list(sites.values()), positions="generation") as rec:
        result = greedy_generate(
            loaded.model,
            loaded.tokenizer,
            prompt_ids,
            max_new_tokens=max_new_tokens,
            allowed_token_ids=allowed,
        )
    scores = [task.scorer(text, item) for text, item in zip(result.texts, items, strict=True)]
    mask, found = _pool_masks(loaded, result, scores, cfg.answer_span_only)
    pooling = cfg.pooling or task.pooling
    pooled, norms = [], []
    for layer in saes.layers:
        resid = rec.stacked(sites[layer])  # (B, T, d)
        pooled.append(_encode_pooled(saes, layer, resid, mask, pooling))
        norms.append(resid.float().norm(dim=-1)[result.step_mask.to(resid.device)].sum().cpu())
    return torch.stack(pooled, dim=1), scores, result, mask, torch.stack(norms).double(), found


def collect_activations(
    loaded: LoadedModel,
    saes: SAESet,
    task: Task,
    items: Sequence[TaskItem],
    cfg: CollectConfig | None = None,
    *,
    progress: Progress | None = None,
    experiment: Experiment | None = None,
) -> CollectionResult:
    """Run (or resume, or reopen) a collection over ``items``; see the module docstring.

    ``experiment`` records which task and split the items came from, so profiles selected from the run can be
    tested on the same split later. One process at a time collects a run: a second one asking for the same run
    gets a LockedError naming the first (runs.RunStore.collecting).
    """
    cfg = cfg or CollectConfig()
    store = RunStore(run_id_for(task.name, _identity(loaded, saes, task, items, cfg)))
    with store.collecting():
        return _collect(loaded, saes, task, items, cfg, progress=progress, experiment=experiment)


def _collect(
    loaded: LoadedModel,
    saes: SAESet,
    task: Task,
    items: Sequence[TaskItem],
    cfg: CollectConfig,
    *,
    progress: Progress | None = None,
    experiment: Experiment | None = None,
) -> CollectionResult:
    if not items:
        raise CollectionError("no items to collect on: the selection split is empty")
    if not saes.layers:
        raise CollectionError("no SAE layers to collect on: give at least one layer (e.g. --layers 0-3)")
    widths = {saes.d_sae(layer) for layer in saes.layers}
    if len(widths) != 1:
        raise CollectionError(f"all SAEs of a run must have the same width, got {sorted(widths)}")
    sites = read_sites(saes, cfg.site)
    strata = _strata_names(items, cfg)
    identity = _identity(loaded, saes, task, items, cfg)
    store = RunStore(run_id_for(task.name, identity))
    batches = [items[i : i + cfg.batch_size] for i in range(0, len(items), cfg.batch_size)]
    stats, extra, done = _resume(store, len(saes.layers), widths.pop(), cfg, strata)
    meta = RunMeta(
        run_id=store.run_id,
        identity=identity,
        task=TaskInfo(
            name=task.name,
            description=task.description,
            kind=task.kind,
            source=task.source,
            max_new_tokens=cfg.max_new_tokens or task.max_new_tokens,
            pooling=cfg.pooling or task.pooling,
        ),
        layers=tuple(saes.layers),
        sae_ids=dict(saes.sae_ids),
        sites=sites,
        n_items=len(items),
        n_batches=len(batches),
        experiment=experiment,
        strata=tuple(strata),
        chat=loaded.use_chat_template if cfg.use_chat_template is None else cfg.use_chat_template,
        versions=package_versions(),
        created=store.read_meta().created if store.exists else time.time(),
    )
    if done < len(batches):
        store.write_meta(dataclasses.replace(meta, n_done=min(len(items), done * cfg.batch_size)))
    report(progress, "collect", done, len(batches))
    for index in range(done, len(batches)):
        _collect_batch(loaded, saes, task, batches[index], cfg, sites, strata, stats, extra, store, index)
        store.save_checkpoint(stats, extra, index + 1)
        store.write_meta(dataclasses.replace(meta, n_done=min(len(items), (index + 1) * cfg.batch_size)))
        report(progress, "collect", index + 1, len(batches))
    if done < len(batches) or not store.read_meta().complete:
        store.write_meta(dataclasses.replace(meta, status="complete", n_done=len(items)))
    return load_collection(store.run_id)


def _resume(
    store: RunStore, n_layers: int, n_features: int, cfg: CollectConfig, strata: list[str]
) -> tuple[dict[str, CorrelationStats], dict[str, torch.Tensor], int]:
    checkpoint = store.load_checkpoint() if store.exists else None
    if checkpoint is not None:
        return checkpoint
    n_strata = max(1, len(strata))
    fresh = {
        name: CorrelationStats(n_layers, n_features, n_strata=n_strata, n_bins=cfg.n_bins)
        for name in ("stats", "shuffled")
    }
    extra = {
        "norm_sum": torch.zeros(n_layers, dtype=torch.float64),
        "norm_count": torch.zeros(1, dtype=torch.float64),
        "span_counts": torch.zeros(4, dtype=torch.float64),
        **new_feature_samples(n_layers, n_features),
    }
    return fresh, extra, 0


def _collect_batch(
    loaded: LoadedModel,
    saes: SAESet,
    task: Task,
    items: Sequence[TaskItem],
    cfg: CollectConfig,
    sites: dict[int, str],
    strata: list[str],
    stats: dict[str, CorrelationStats],
    extra: dict[str, torch.Tensor],
    store: RunStore,
    index: int,
) -> None:
    x, scores, result, mask, norm_sum, found = _run_batch(loaded, saes, task, items, cfg, sites)
    y = torch.tensor([float(s.correct) for s in scores], dtype=torch.float64)
    extra["norm_sum"] += norm_sum
    extra["norm_count"] += float(result.step_mask.sum())
    # [correct with span, correct, incorrect with span, incorrect]
    correct = y.bool()
    extra["span_counts"] += torch.tensor(
        [(found & correct).sum(), correct.sum(), (found & ~correct).sum(), (~correct).sum()], dtype=torch.float64
    )
    s_idx = None
    if strata:
        s_idx = torch.tensor([strata.index(str(it.metadata.get(cfg.strata_key or "", ""))) for it in items])
    gen = torch.Generator().manual_seed(cfg.shuffle_seed * 1_000_003 + index)
    perm = torch.randperm(len(items), generator=gen)
    records = [
        SampleRecord(
            item_id=item.id,
            prompt=item.prompt,
            generation=text,
            answer=score.answer,
            correct=bool(score.correct),
            target=item.target,
            n_positions=int(mask[row].sum()),
            token_ids=tuple(result.token_ids[row]),
            stratum=str(item.metadata.get(cfg.strata_key, "")) if cfg.strata_key else None,
        )
        for row, (item, text, score) in enumerate(zip(items, result.texts, scores, strict=True))
    ]
    top = torch.topk(x, k=min(cfg.keep_top, x.shape[-1]), dim=-1)
    store.save_batch(index, records, top.indices, top.values)
    if "feature_top_val" in extra:  # absent in runs checkpointed before it existed: their fallback is top_idx
        update_feature_samples(extra, x, index * cfg.batch_size)
    stats["stats"].update(x, y, s_idx)
    stats["shuffled"].update(x, y[perm], s_idx)


def _span_warnings(meta: RunMeta, counts: list[float]) -> list[str]:
    if not meta.collect.answer_span_only:
        return []
    with_c, n_c, with_i, n_i = counts
    rate_c, rate_i = with_c / max(n_c, 1), with_i / max(n_i, 1)
    if abs(rate_c - rate_i) <= 0.2:
        return []
    return [
        f"answer spans were found for {rate_c:.0%} of correct but {rate_i:.0%} of incorrect samples; samples "
        "without a span are pooled at their first generation position, so correlations partly reflect where "
        "each class was pooled"
    ]


def load_collection(run_id: str) -> CollectionResult:
    """Reopen a finished run from disk without recomputing anything."""
    store = RunStore(run_id)
    meta = store.read_meta()
    if not meta.complete:
        raise CollectionError(f"run {run_id} is not finished ({meta.n_done}/{meta.n_items}); resume it")
    checkpoint = store.load_checkpoint()
    if checkpoint is None:
        raise CollectionError(f"run {run_id} has no statistics on disk")
    stats, extra, n_batches = checkpoint
    records, top_idx, top_val = store.load_batches(n_batches)
    layers = list(meta.layers)
    mean_norm = (extra["norm_sum"] / extra["norm_count"].clamp(min=1)).tolist()
    return CollectionResult(
        warnings=_span_warnings(meta, extra["span_counts"].tolist()),
        run_id=run_id,
        stats=stats["stats"],
        shuffled=stats["shuffled"],
        records=records,
        top_idx=top_idx,
        top_val=top_val,
        layers=layers,
        strata=list(meta.strata),
        meta=meta,
        resid_norm=dict(zip(layers, mean_norm, strict=True)),
        feature_top=(extra["feature_top_row"], extra["feature_top_val"]) if "feature_top_row" in extra else None,
    )
