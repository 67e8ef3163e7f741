"""Per-feature top-k samples of a run: for every feature of every layer, the k samples where its pooled
activation was highest, kept while collecting (memory O(layers x features x k), whatever the number of samples).

Each sample keeps only its own strongest features for the run's records; this is the other direction, so that
any feature selected later (every one is a candidate) has its top activating samples, even if it was never among
any sample's strongest features.
"""

from __future__ import annotations

import torch

__all__ = ["SAMPLE_TOP_K", "new_feature_samples", "update_feature_samples"]

SAMPLE_TOP_K = 8


def new_feature_samples(n_layers: int, n_features: int, k: int = SAMPLE_TOP_K) -> dict[str, torch.Tensor]:
    return {
        "feature_top_val": torch.zeros((n_layers, n_features, k), dtype=torch.float32),
        "feature_top_row": torch.full((n_layers, n_features, k), -1, dtype=torch.int64),  # -1: no sample yet
    }


def update_feature_samples(extra: dict[str, torch.Tensor], x: torch.Tensor, first_row: int) -> None:
    """x (B, L, F) pooled activations of samples first_row .. first_row + B - 1 (their index in the run)."""
    k = extra["feature_top_val"].shape[-1]
    rows = torch.arange(first_row, first_row + x.shape[0], dtype=torch.int64)
    values = torch.cat([extra["feature_top_val"], x.float().permute(1, 2, 0)], dim=-1)  # (L, F, k + B)
    candidates = torch.cat([extra["feature_top_row"], rows.expand(*x.shape[1:], -1)], dim=-1)
    # a sample where the feature is 0 is no evidence: rank it below every real activation
    values = torch.where(candidates >= 0, values, float("-inf"))
    top_val, slot = torch.topk(values, k, dim=-1)
    extra["feature_top_row"] = torch.where(top_val > 0, candidates.gather(-1, slot), -1)
    extra["feature_top_val"] = top_val.clamp(min=0.0)
