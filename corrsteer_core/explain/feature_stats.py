"""Streaming per-feature statistics over a token corpus, in memory O(features x k), whatever the corpus size.

:class:`FeatureAccumulator` takes one batch of a layer's feature activations at a time and keeps, per feature:
the k sequences where it fired most (by the sequence's peak) with a window of token ids and activations around
that peak (for highlighting), its firing count (density) and a histogram of its non-zero activations on fixed
log-spaced bins. :class:`LabelScorer` then measures, on held-out batches, how well each feature's label tokens
predict where it fires (precision, recall, F1).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

__all__ = ["HIST_EDGES", "FeatureAccumulator", "LabelScorer", "WindowSpec"]

# activations of 1e-3 .. 1e3 on 6 bins per decade; values outside land in the first / last bin
HIST_EDGES = torch.logspace(-3, 3, 37)
_BINS_PER_DECADE = 6


@dataclass(frozen=True)
class WindowSpec:
    before: int = 8  # tokens kept before a context's peak
    after: int = 3  # and after it

    @property
    def width(self) -> int:
        return self.before + 1 + self.after


class FeatureAccumulator:
    """Top-k contexts, firing counts and activation histograms of ``n_features`` features."""

    def __init__(self, n_features: int, k: int, window: WindowSpec) -> None:
        self.k, self.window, self.n_features = k, window, n_features
        self.top_val = torch.full((n_features, k), float("-inf"))  # peak activation of each kept context
        self.top_seq = torch.full((n_features, k), -1, dtype=torch.int32)  # its sequence index in the corpus
        self.win_ids = torch.full((n_features, k, window.width), -1, dtype=torch.int32)  # -1: outside
        self.win_val = torch.zeros((n_features, k, window.width), dtype=torch.float16)
        self.fired = torch.zeros(n_features, dtype=torch.int64)
        self.hist = torch.zeros((n_features, len(HIST_EDGES) - 1), dtype=torch.int64)
        self.n_tokens = 0

    def update(self, z: torch.Tensor, keep: torch.Tensor, ids: torch.Tensor, seq_index: torch.Tensor) -> None:
        """z (B, T, F) activations >= 0, keep (B, T) bool, ids (B, T) token ids, seq_index (B,) corpus rows."""
        z = z.float().masked_fill(~keep[..., None], 0.0)
        self.n_tokens += int(keep.sum())
        active = z > 0
        self.fired += active.sum(dim=(0, 1))
        self._update_hist(z, active)
        self._update_top(z, ids, seq_index)

    def _update_hist(self, z: torch.Tensor, active: torch.Tensor) -> None:
        values = z[active]
        feature = active.nonzero()[:, 2]
        n_bins = self.hist.shape[1]
        bins = ((values.log10() + 3) * _BINS_PER_DECADE).floor().long().clamp(0, n_bins - 1)
        flat = torch.bincount(feature * n_bins + bins, minlength=self.hist.numel())
        self.hist += flat.view_as(self.hist)

    def _update_top(self, z: torch.Tensor, ids: torch.Tensor, seq_index: torch.Tensor) -> None:
        _, steps, n_feat = z.shape
        peak, peak_pos = z.max(dim=1)  # (B, F)
        cand = torch.cat([self.top_val, peak.T], dim=1)  # (F, k + B)
        top_val, slot = torch.topk(cand, self.k, dim=1)  # (F, k)
        new = slot >= self.k
        b = (slot - self.k).clamp(min=0)  # the batch row of a new entry
        pos = peak_pos.T.gather(1, b)  # (F, k)
        offsets = torch.arange(-self.window.before, self.window.after + 1)
        where = pos[..., None] + offsets  # (F, k, W)
        inside = (where >= 0) & (where < steps)
        where = where.clamp(0, steps - 1)
        rows = b[..., None].expand_as(where)
        feats = torch.arange(n_feat)[:, None, None].expand_as(where)
        new_ids = torch.where(inside, ids[rows, where].int(), -1)
        new_val = torch.where(inside, z[rows, where, feats], 0.0).half()
        old = slot.clamp(max=self.k - 1)
        keep_ids = self.win_ids.gather(1, old[..., None].expand_as(where))
        keep_val = self.win_val.gather(1, old[..., None].expand_as(where))
        self.win_ids = torch.where(new[..., None], new_ids, keep_ids)
        self.win_val = torch.where(new[..., None], new_val, keep_val)
        self.top_seq = torch.where(new, seq_index.int()[b], self.top_seq.gather(1, old))
        self.top_val = top_val

    def peak_tokens(self) -> torch.Tensor:
        """(F, k) the token id at each kept context's peak; -1 for contexts where the feature did not fire."""
        ids = self.win_ids[:, :, self.window.before]
        return torch.where(self.top_val > 0, ids, -1)

    def max_activation(self) -> torch.Tensor:
        return self.top_val[:, 0].clamp(min=0.0)


class LabelScorer:
    """Counts, on held-out text, where label tokens predict firing: a feature 'fires' at a position when its
    activation is at least ``fire_fraction`` of its maximum on the labelling text."""

    def __init__(self, label_ids: torch.Tensor, max_activation: torch.Tensor, fire_fraction: float) -> None:
        self.label_ids = label_ids.long()  # (F, L), -1 padded
        self.threshold = (max_activation * fire_fraction).float()
        self.live = max_activation > 0
        n = label_ids.shape[0]
        self.tp = torch.zeros(n, dtype=torch.int64)
        self.n_fire = torch.zeros(n, dtype=torch.int64)
        self.n_pred = torch.zeros(n, dtype=torch.int64)

    def update(self, z: torch.Tensor, keep: torch.Tensor, ids: torch.Tensor) -> None:
        fire = (z.float() >= self.threshold) & self.live & keep[..., None]  # (B, T, F)
        pred = torch.zeros_like(fire)
        for column in self.label_ids.T:  # one label token slot at a time: (B, T, F) each
            pred |= ids[..., None] == column
        pred &= keep[..., None]
        self.tp += (fire & pred).sum(dim=(0, 1))
        self.n_fire += fire.sum(dim=(0, 1))
        self.n_pred += pred.sum(dim=(0, 1))

    def scores(self) -> dict[str, torch.Tensor]:
        tp = self.tp.double()
        precision = torch.where(self.n_pred > 0, tp / self.n_pred.clamp(min=1), 0.0)
        recall = torch.where(self.n_fire > 0, tp / self.n_fire.clamp(min=1), 0.0)
        f1 = torch.where(precision + recall > 0, 2 * precision * recall / (precision + recall), 0.0)
        return {
            "precision": precision.float(),
            "recall": recall.float(),
            "f1": f1.float(),
            "heldout_fired": self.n_fire.int(),
        }
