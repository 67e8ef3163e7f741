"""Feature dashboards for any preset's SAEs, computed from a token corpus (the embedded prepare corpus).

One pass over the corpus per group of layers: every fourth-of-five sequence feeds a
:class:`~corrsteer_core.explain.feature_stats.FeatureAccumulator` (top contexts, density, histogram); labels
are chosen from those contexts (:mod:`corrsteer_core.explain.labels`); the held-out fifth then scores each label
(:class:`~corrsteer_core.explain.feature_stats.LabelScorer`); the logit lens adds promoted / suppressed tokens.
Each layer is saved as soon as its group is done (:mod:`corrsteer_core.explain.dashboard_store`), keyed to its
SAE's fingerprint: a finished layer is skipped, a layer whose SAE changed is recomputed.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import torch

from corrsteer_core.config import _check_positive, _DictMixin
from corrsteer_core.embedded.corpus import Corpus, CorpusBatch, corpus_batches
from corrsteer_core.errors import ConfigError
from corrsteer_core.explain import dashboard_store
from corrsteer_core.explain.evidence import logit_lens
from corrsteer_core.explain.feature_stats import FeatureAccumulator, LabelScorer, WindowSpec
from corrsteer_core.explain.labels import choose_labels, token_frequencies
from corrsteer_core.loading import LoadedModel
from corrsteer_core.progress import Progress, report
from corrsteer_core.saes import SAESet

__all__ = ["DashboardConfig", "build_dashboards", "build_layer_from_residuals", "residual_batches", "split_rows"]


@dataclass(frozen=True)
class DashboardConfig(_DictMixin):
    k: int = 10  # top contexts kept per feature
    before: int = 8  # context tokens kept before the peak
    after: int = 3  # and after it
    holdout_every: int = 5  # every 5th corpus sequence is held out to score the labels
    fire_fraction: float = 0.25  # 'fires' = activation >= this fraction of the feature's maximum
    label_tokens: int = 3
    logit_k: int = 8
    batch_size: int = 16
    layers_per_pass: int = 10  # layers computed in one corpus pass (and saved together)

    def __post_init__(self) -> None:
        for name in ("k", "holdout_every", "label_tokens", "logit_k", "batch_size", "layers_per_pass"):
            _check_positive(name, getattr(self, name))
        if self.before < 0 or self.after < 0:
            raise ConfigError(f"before/after must be >= 0, got {self.before}/{self.after}")
        if not 0 < self.fire_fraction <= 1:
            raise ConfigError(f"fire_fraction must be in (0, 1], got {self.fire_fraction}")
        if self.holdout_every < 2:
            raise ConfigError(f"holdout_every must be >= 2 (1 holds out everything), got {self.holdout_every}")

    @property
    def window(self) -> WindowSpec:
        return WindowSpec(before=self.before, after=self.after)


def split_rows(n: int, holdout_every: int) -> tuple[list[int], list[int]]:
    """(labelling rows, held-out rows) of a corpus of n sequences."""
    held = [i for i in range(n) if i % holdout_every == holdout_every - 1]
    return [i for i in range(n) if i % holdout_every != holdout_every - 1], held


def _encode(saes: SAESet, layer: int, resid: torch.Tensor) -> torch.Tensor:
    batch, steps, width = resid.shape
    return saes.encode(layer, resid.reshape(-1, width)).float().reshape(batch, steps, -1).cpu()


BatchSource = Callable[[list[int]], Iterator[CorpusBatch]]  # corpus rows -> batches of their residuals


def residual_batches(corpus: Corpus, residuals: torch.Tensor, hook: str, batch_size: int = 16) -> BatchSource:
    """Batches rebuilt from one layer's flat residuals (N, d) in :func:`corpus_activations` order (the ones
    prepare trains on), so that a freshly trained layer gets its dashboards without another forward pass."""
    seqs, start = corpus.sequences, corpus.start
    spans: dict[int, tuple[int, int]] = {}
    offset = 0
    for i in sorted(range(len(seqs)), key=lambda i: (len(seqs[i]), i)):
        spans[i] = (offset, max(0, len(seqs[i]) - start))
        offset += spans[i][1]
    if offset != residuals.shape[0]:
        raise ConfigError(f"{residuals.shape[0]} residuals for a corpus of {offset} kept tokens")

    def source(rows: list[int]) -> Iterator[CorpusBatch]:
        wanted = sorted(rows, key=lambda i: (len(seqs[i]), i))
        for first in range(0, len(wanted), batch_size):
            chunk = wanted[first : first + batch_size]
            width = max(1, max(spans[i][1] for i in chunk))
            ids = torch.zeros((len(chunk), width), dtype=torch.long)
            keep = torch.zeros((len(chunk), width), dtype=torch.bool)
            resid = torch.zeros((len(chunk), width, residuals.shape[1]), dtype=residuals.dtype)
            for j, i in enumerate(chunk):
                at, n = spans[i]
                ids[j, :n] = torch.tensor(seqs[i][start:], dtype=torch.long)
                keep[j, :n] = True
                resid[j, :n] = residuals[at : at + n]
            yield CorpusBatch(rows=chunk, ids=ids, keep=keep, resid={hook: resid})

    return source


def _build_group(
    loaded: LoadedModel,
    saes: SAESet,
    corpus: Corpus,
    layers: list[int],
    cfg: DashboardConfig,
    freq: torch.Tensor,
    progress: Progress | None,
    source: BatchSource | None = None,
) -> None:
    hooks = {layer: saes.hook_names[layer] for layer in layers}
    if source is None:
        sites = list(set(hooks.values()))
        source = lambda rows: corpus_batches(loaded, corpus, sites, batch_size=cfg.batch_size, rows=rows)  # noqa: E731
    train, held = split_rows(len(corpus.sequences), cfg.holdout_every)
    accs = {layer: FeatureAccumulator(saes.d_sae(layer), cfg.k, cfg.window) for layer in layers}
    done, total = 0, len(corpus.sequences)
    stage = f"dashboards {layers[0]}-{layers[-1]}"
    for batch in source(train):
        seq_index = torch.tensor(batch.rows)
        for layer, hook in hooks.items():
            accs[layer].update(_encode(saes, layer, batch.resid[hook]), batch.keep, batch.ids, seq_index)
        done += len(batch.rows)
        report(progress, stage, done, total)
    labels = {layer: choose_labels(acc.peak_tokens(), freq, cfg.label_tokens) for layer, acc in accs.items()}
    scorers = {
        layer: LabelScorer(labels[layer], acc.max_activation(), cfg.fire_fraction) for layer, acc in accs.items()
    }
    for batch in source(held):
        for layer, hook in hooks.items():
            scorers[layer].update(_encode(saes, layer, batch.resid[hook]), batch.keep, batch.ids)
        done += len(batch.rows)
        report(progress, stage, done, total)
    for layer in layers:
        up_i, up_v, down_i, down_v = logit_lens(loaded, saes, layer, None, cfg.logit_k)
        acc = accs[layer]
        tensors = {
            "top_val": acc.top_val.clamp(min=0.0),
            "top_seq": acc.top_seq,
            "win_ids": acc.win_ids,
            "win_val": acc.win_val,
            "density": acc.fired.double().div(max(acc.n_tokens, 1)).float(),
            "hist": acc.hist.int(),
            "label_ids": labels[layer],
            "promoted_ids": up_i.int(),
            "promoted_val": up_v.float(),
            "suppressed_ids": down_i.int(),
            "suppressed_val": down_v.float(),
            **scorers[layer].scores(),
        }
        info = {"n_tokens": acc.n_tokens, "n_heldout_sequences": len(held), "config": cfg.to_dict()}
        dashboard_store.save_layer(saes.preset, layer, saes.fingerprint(layer), tensors, info)


def build_dashboards(
    loaded: LoadedModel,
    saes: SAESet,
    corpus: Corpus,
    cfg: DashboardConfig | None = None,
    *,
    layers: list[int] | None = None,
    force: bool = False,
    progress: Progress | None = None,
    log: Callable[[str], None] = print,
) -> list[int]:
    """Compute and save the dashboards of ``layers`` (default: every loaded SAE) that are missing or stale;
    returns the layers computed. Memory: O(layers per pass x features x k) plus one batch."""
    cfg = cfg or DashboardConfig()
    wanted = list(layers) if layers is not None else saes.layers
    todo = wanted if force else dashboard_store.stale_layers(saes, wanted)
    if not todo:
        log("dashboards: all layers up to date")
        return []
    started = time.perf_counter()
    freq = _prepare_vocab(loaded, saes, corpus)
    for start in range(0, len(todo), cfg.layers_per_pass):
        group = todo[start : start + cfg.layers_per_pass]
        _build_group(loaded, saes, corpus, group, cfg, freq, progress)
        log(f"dashboards: layers {group} done ({time.perf_counter() - started:.0f} s so far)")
    return todo


def _prepare_vocab(loaded: LoadedModel, saes: SAESet, corpus: Corpus) -> torch.Tensor:
    dashboard_store.save_vocab(saes.preset, loaded.tokenizer)
    vocab_size = max(len(loaded.tokenizer), int(loaded.model.get_output_embeddings().weight.shape[0]))
    return token_frequencies(corpus.sequences, corpus.start, vocab_size)


def build_layer_from_residuals(
    loaded: LoadedModel,
    saes: SAESet,
    corpus: Corpus,
    layer: int,
    residuals: torch.Tensor,
    cfg: DashboardConfig | None = None,
    *,
    progress: Progress | None = None,
) -> None:
    """One layer's dashboards from the residuals prepare already holds for training it (no forward pass)."""
    cfg = cfg or DashboardConfig()
    freq = _prepare_vocab(loaded, saes, corpus)
    source = residual_batches(corpus, residuals, saes.hook_names[layer], cfg.batch_size)
    _build_group(loaded, saes, corpus, [layer], cfg, freq, progress, source)
