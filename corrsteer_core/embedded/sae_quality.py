"""Measure, filter for and save trained TopK SAEs (the evaluation half of :mod:`.sae_training`).

Quality is always measured with the SAE object itself (its own ``encode``/``decode``, float32), so the reported
numbers are those of the SAE that is saved and later loaded, not of the training-time bf16 arithmetic.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from sae_lens import SAE

from corrsteer_core.errors import ConfigError
from corrsteer_core.storage import atomic_directory, atomic_write_json

__all__ = ["QUALITY_FILENAME", "SAEQuality", "evaluate_sae", "evaluate_sae_active", "filter_outliers", "save_sae"]

QUALITY_FILENAME = "quality.json"
_EVAL_CHUNK = 4096


@dataclass(frozen=True)
class SAEQuality:
    """How well a trained SAE reconstructs held-out activations.

    ``fvu``: fraction of variance unexplained on the held-out split, Σ‖x − x̂‖² / Σ‖x − mean(x)‖².
    ``mean_l0``: mean number of active (> 0) latents per held-out token.
    ``dead_fraction``: fraction of latents that were active on no token of the last training epoch and on no
    held-out token (``train_topk_sae``), or on no token of the evaluated set (``evaluate_sae``).
    ``n_outliers_dropped``: rows removed by :func:`filter_outliers` before the split.
    ``seconds``: wall time of the whole call (filtering, training and evaluation).
    """

    fvu: float
    mean_l0: float
    dead_fraction: float
    n_train_tokens: int
    n_holdout_tokens: int
    n_outliers_dropped: int
    seconds: float

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SAEQuality:
        names = {f.name for f in dataclasses.fields(cls)}
        if set(data) != names:
            raise ConfigError(f"SAEQuality needs exactly the keys {sorted(names)}, got {sorted(data)}")
        return cls(**data)


def filter_outliers(acts: torch.Tensor, factor: float) -> tuple[torch.Tensor, int]:
    """Drop rows whose L2 norm exceeds ``factor`` × the median row norm, and non-finite rows.

    ``acts``: (N, d). Returns the kept rows (same dtype, original order) and how many were dropped. Attention-sink
    tokens (position 0 and a few others) have residual norms ~100× the median and would dominate an SAE's loss.
    """
    if acts.ndim != 2 or acts.shape[0] == 0:
        raise ConfigError(f"acts must be a non-empty 2-D (tokens, d_in) tensor, got shape {tuple(acts.shape)}")
    if not factor > 1.0:
        raise ConfigError(f"outlier factor must be > 1, got {factor!r}")
    norms = torch.cat([chunk.float().norm(dim=1) for chunk in acts.split(65536)])  # (N,)
    finite = torch.isfinite(norms)
    if not finite.any():
        raise ConfigError("acts has no row with finite values")
    median = norms[finite].median()
    keep = finite & (norms <= factor * median)
    n_dropped = int((~keep).sum())
    return (acts if n_dropped == 0 else acts[keep]), n_dropped


def evaluate_sae(sae: SAE[Any], acts: torch.Tensor) -> tuple[float, float, float]:
    """(fvu, mean_l0, dead_fraction) of ``sae`` on ``acts`` (N, d_in), in chunks with float64 sums.

    fvu = Σ‖x − x̂‖² / Σ‖x − mean(x)‖²; mean_l0 = mean number of latents > 0 per token; dead_fraction = fraction
    of latents active on none of the given tokens.
    """
    fvu, mean_l0, active = evaluate_sae_active(sae, acts)
    return fvu, mean_l0, float((~active).float().mean())


@torch.no_grad()
def evaluate_sae_active(sae: SAE[Any], acts: torch.Tensor) -> tuple[float, float, torch.Tensor]:
    """Like :func:`evaluate_sae`, but returns the (d_sae,) mask of latents active on some token instead."""
    if acts.ndim != 2 or acts.shape[0] == 0 or acts.shape[1] != sae.cfg.d_in:
        raise ConfigError(f"acts must be a non-empty (tokens, {sae.cfg.d_in}) tensor, got {tuple(acts.shape)}")
    active = torch.zeros(sae.cfg.d_sae, dtype=torch.bool)
    sq_err = sq_norm = l0 = 0.0
    sum_x = torch.zeros(acts.shape[1], dtype=torch.float64)
    for chunk in acts.split(_EVAL_CHUNK):
        x = chunk.to(device=sae.device, dtype=sae.dtype)
        feats = sae.encode(x)  # (n, d_sae)
        fired = feats > 0
        active |= fired.any(0).cpu()
        sq_err += float((x - sae.decode(feats)).double().pow(2).sum())
        sq_norm += float(x.double().pow(2).sum())
        l0 += float(fired.sum())
        sum_x += x.double().sum(0).cpu()
    n = acts.shape[0]
    total_var = sq_norm - float(sum_x.pow(2).sum()) / n
    fvu = sq_err / total_var if total_var > 0 else float("nan")
    return fvu, l0 / n, active


def save_sae(sae: SAE[Any], quality: SAEQuality, path: Path) -> None:
    """Write ``sae`` in sae-lens format (``cfg.json`` + weights) plus ``quality.json`` into ``path``, atomically.

    ``SAE.load_from_disk(path)`` loads it back; an exception part-way leaves ``path`` as it was.
    """
    with atomic_directory(Path(path)) as tmp:
        sae.save_model(tmp)
        atomic_write_json(tmp / QUALITY_FILENAME, quality.to_dict())
