"""Streaming statistics between pooled SAE feature activations and task correctness (docs/method.md, steps 4–6).

One pass fills float64 sums and fixed-bin histograms for every layer × feature at once. Memory is
O(strata × layers × features), never O(samples), and because every accumulator is a sum, a count or a max over
bins fixed in advance (not learnt from the data seen so far), a checkpoint resumes exactly and two partial
collections merge exactly. Class 1 is "correct" (y = 1) throughout.
"""

from __future__ import annotations

import math
import warnings
from typing import Literal

import torch
from torch import Tensor

from corrsteer_core.config import COEFFICIENT_MODES
from corrsteer_core.errors import CollectionError, ConfigError, LayerOutOfRangeError, valid_choices

__all__ = ["COEFFICIENT_MODES", "CoefficientMode", "CorrSteerWarning", "CorrelationStats"]

CoefficientMode = Literal["correct_mean", "correct_active_mean"]

_STATE_VERSION = 1
# Σx² − (Σx)²/n of a constant feature cancels to rounding noise, not 0: below this fraction of Σx² it is 0.
_REL_VAR_TOL = 1e-12
# update() works on this many elements at a time, so a large batch never needs huge float64 copies or indices.
_CHUNK_ELEMENTS = 1 << 21
# Above this fraction of non-zero activations, dense BLAS sums are faster than scattering the non-zeros.
_DENSE_FRACTION = 0.1
# Fisher ratio smoothing, relative to the layer's mean E[x²]: keeps a/0 finite without a scale-dependent constant.
_FISHER_EPS = 1e-6
_SUM_KEYS = ("sum_x", "sum_x2", "sum_xy", "sum_x2y", "sum_pos_xy", "hist", "n", "n_correct")


class CorrSteerWarning(UserWarning):
    """The statistics can be computed but are weakly supported (one class only, too few samples of a class...)."""


class CorrelationStats:
    """Point-biserial correlation, class moments and histograms of (L, F) features against 0/1 correctness.

    Accumulators (S strata, L layers, F features; ``nbytes`` gives the total):
    ``sum_x``, ``sum_x2``, ``sum_xy`` (S, L, F) float64 — enough for pooled and within-stratum Pearson r;
    ``sum_x2y`` (Fisher ratio) and ``sum_pos_xy`` = Σ max(x, 0)·y (active-only coefficient), (L, F) float64;
    ``max`` (L, F) float32 for display; ``hist`` (2, L, F, n_bins + 1) int32 counts of *firing* (x > 0) samples
    per class and log bin. The not-firing bin is n_class − Σ bins, so it is not stored.

    Bins: ``n_bins`` log-spaced edges e_0 < … < e_{n−1} spanning ``bin_range``; the bins are [x ≤ 0], (0, e_0),
    [e_0, e_1), …, [e_{n−1}, ∞). ``n_bins=0`` reduces mutual information to "fires or not".
    """

    def __init__(
        self,
        n_layers: int,
        n_features: int,
        *,
        n_strata: int = 1,
        n_bins: int = 24,
        bin_range: tuple[float, float] = (1e-3, 1e4),
        device: str | torch.device = "cpu",
    ) -> None:
        sizes = {"n_layers": n_layers, "n_features": n_features, "n_strata": n_strata, "n_bins": n_bins}
        for name, value in sizes.items():
            low = 0 if name == "n_bins" else 1
            if not isinstance(value, int) or isinstance(value, bool) or value < low:
                raise ConfigError(f"{name} must be an integer >= {low}; got {value!r}")
        lo, hi = (float(v) for v in bin_range)
        if not 0 < lo < hi < math.inf:
            raise ConfigError(f"bin_range must be (low, high) with 0 < low < high; got {bin_range!r}")
        self.n_layers, self.n_features, self.n_strata, self.n_bins = n_layers, n_features, n_strata, n_bins
        self.bin_range = (lo, hi)
        self.device = torch.device(device)
        self.bin_edges = torch.logspace(math.log10(lo), math.log10(hi), n_bins, dtype=torch.float64, device=device)
        shape = (n_strata, n_layers, n_features)
        self._acc: dict[str, Tensor] = {
            "n": torch.zeros(n_strata, dtype=torch.int64, device=self.device),
            "n_correct": torch.zeros(n_strata, dtype=torch.int64, device=self.device),
            "sum_x": self._zeros(*shape),
            "sum_x2": self._zeros(*shape),
            "sum_xy": self._zeros(*shape),
            "sum_x2y": self._zeros(*shape[1:]),
            "sum_pos_xy": self._zeros(*shape[1:]),
            "max": torch.full(shape[1:], -math.inf, dtype=torch.float32, device=self.device),
            "hist": torch.zeros((2, n_layers, n_features, n_bins + 1), dtype=torch.int32, device=self.device),
        }

    def _zeros(self, *shape: int) -> Tensor:
        return torch.zeros(shape, dtype=torch.float64, device=self.device)

    @property
    def n(self) -> int:
        return int(self._acc["n"].sum())

    @property
    def n_correct(self) -> int:
        return int(self._acc["n_correct"].sum())

    def counts_per_stratum(self) -> tuple[Tensor, Tensor]:
        """(samples, correct samples) per stratum, each (S,) int64."""
        return self._acc["n"].clone(), self._acc["n_correct"].clone()

    @property
    def nbytes(self) -> int:
        """Bytes held by the accumulators (what a checkpoint of this object weighs)."""
        return sum(t.numel() * t.element_size() for t in self._acc.values())

    def update(self, x: Tensor, y: Tensor, strata: Tensor | None = None) -> None:
        """Add B samples: x (B, L, F) pooled activations, y (B,) 0/1 correctness, strata (B,) in [0, S).

        The batch is validated as a whole first, so a rejected batch leaves the statistics untouched.
        """
        y64, s_idx = self._check_batch(x, y, strata)
        step = max(1, _CHUNK_ELEMENTS // (self.n_layers * self.n_features))
        for start in range(0, x.shape[0], step):
            sl = slice(start, start + step)
            self._add_chunk(x[sl], y64[sl], s_idx[sl])
        self._acc["n"] += torch.bincount(s_idx, minlength=self.n_strata)
        self._acc["n_correct"] += torch.bincount(s_idx[y64 == 1], minlength=self.n_strata)

    def _check_batch(self, x: Tensor, y: Tensor, strata: Tensor | None) -> tuple[Tensor, Tensor]:
        shape = (self.n_layers, self.n_features)
        if not isinstance(x, Tensor) or x.ndim != 3 or tuple(x.shape[1:]) != shape or not x.is_floating_point():
            got = tuple(x.shape) if isinstance(x, Tensor) else type(x).__name__
            raise CollectionError(f"x must be a float tensor of shape (B, {shape[0]}, {shape[1]}); got {got}")
        b = x.shape[0]
        y = torch.as_tensor(y)
        if tuple(y.shape) != (b,):
            raise CollectionError(f"y must have shape ({b},) to match x; got {tuple(y.shape)}")
        y64 = y.to(device=self.device, dtype=torch.float64)
        if not ((y64 == 0) | (y64 == 1)).all():
            raise CollectionError(f"y must hold 0/1 correctness labels; got values {y64.unique()[:10].tolist()}")
        if strata is None:
            if self.n_strata > 1:
                raise CollectionError(f"strata are required: these statistics have {self.n_strata} strata")
            strata = torch.zeros(b, dtype=torch.int64)
        strata = torch.as_tensor(strata)
        if tuple(strata.shape) != (b,) or strata.is_floating_point() or strata.is_complex():
            raise CollectionError(
                f"strata must be an integer tensor of shape ({b},); got {strata.dtype} {tuple(strata.shape)}"
            )
        s_idx = strata.to(device=self.device, dtype=torch.int64)
        if b and (int(s_idx.min()) < 0 or int(s_idx.max()) >= self.n_strata):
            raise CollectionError(f"strata must lie in [0, {self.n_strata}); got {s_idx.unique()[:10].tolist()}")
        if not bool(torch.isfinite(x).all()):
            raise CollectionError("x holds NaN or infinite activations; they would poison every sum")
        return y64, s_idx

    def _add_chunk(self, x: Tensor, y: Tensor, s_idx: Tensor) -> None:  # x (b, L, F), y (b,), s_idx (b,)
        n_l, n_f, b = self.n_layers, self.n_features, x.shape[0]
        xc = x.detach().to(self.device).reshape(b, n_l * n_f).contiguous()  # no-op for the usual contiguous x
        torch.maximum(self._acc["max"], xc.amax(0).view(n_l, n_f).float(), out=self._acc["max"])
        # Zeros add nothing to any sum or histogram; 1-D index_select is much faster than 2-D fancy indexing.
        nonzero = xc.view(-1).nonzero().squeeze(1)
        values = xc.view(-1).index_select(0, nonzero).double()
        rows, cols = nonzero // (n_l * n_f), nonzero % (n_l * n_f)
        if nonzero.numel() > _DENSE_FRACTION * xc.numel():
            self._add_sums_dense(xc.double(), y, s_idx)
        else:
            self._add_sums_sparse(rows, cols, values, y, s_idx)
        fired = (values > 0).nonzero().squeeze(1)
        bins = torch.bucketize(values.index_select(0, fired), self.bin_edges, right=True)  # 0 .. n_bins
        fired_rows, fired_cols = rows.index_select(0, fired), cols.index_select(0, fired)
        flat = (y.index_select(0, fired_rows).long() * (n_l * n_f) + fired_cols) * (self.n_bins + 1) + bins
        self._acc["hist"].view(-1).index_add_(0, flat, torch.ones_like(flat, dtype=torch.int32))

    def _add_sums_dense(self, xc: Tensor, y: Tensor, s_idx: Tensor) -> None:  # xc (b, L·F) float64
        acc, shape, b = self._acc, self._acc["sum_x"].shape, xc.shape[0]
        # A (S, b) one-hot matmul sums each stratum's rows in one BLAS call instead of a loop over strata.
        onehot = self._zeros(shape[0], b)
        onehot[s_idx, torch.arange(b, device=self.device)] = 1.0
        x2 = xc * xc
        acc["sum_x"] += (onehot @ xc).view(shape)
        acc["sum_x2"] += (onehot @ x2).view(shape)
        acc["sum_xy"] += ((onehot * y) @ xc).view(shape)
        acc["sum_x2y"] += (y @ x2).view(shape[1:])
        acc["sum_pos_xy"] += (y @ xc.clamp_min(0.0)).view(shape[1:])

    def _add_sums_sparse(self, rows: Tensor, cols: Tensor, values: Tensor, y: Tensor, s_idx: Tensor) -> None:
        # SAE codes are sparse (TopK/JumpReLU), so scattering the non-zeros beats dense passes over (b, L·F).
        acc, yv, v2 = self._acc, y.index_select(0, rows), values * values
        flat = s_idx.index_select(0, rows) * (self.n_layers * self.n_features) + cols  # index into (S, L·F)
        acc["sum_x"].view(-1).index_add_(0, flat, values)
        acc["sum_x2"].view(-1).index_add_(0, flat, v2)
        acc["sum_xy"].view(-1).index_add_(0, flat, values * yv)
        acc["sum_x2y"].view(-1).index_add_(0, cols, v2 * yv)
        acc["sum_pos_xy"].view(-1).index_add_(0, cols, values.clamp_min(0.0) * yv)

    def pearson(self, *, within_strata: bool = False) -> Tensor:
        """Point-biserial r, (L, F) float64; 0 where the feature or the labels have no variance (never NaN).

        ``within_strata`` pools each stratum's centred cross-products, Σ_s Sxy_s / sqrt(Σ_s Sxx_s · Σ_s Syy_s),
        so a feature that only tracks a stratum (e.g. a subject) whose accuracy differs gets r ≈ 0.
        """
        acc = self._acc
        groups = range(self.n_strata) if within_strata else [None]
        sxy, sxx, scale = (self._zeros(self.n_layers, self.n_features) for _ in range(3))
        syy = 0.0
        for s in groups:
            n_s = float(acc["n"].sum() if s is None else acc["n"][s])
            if n_s == 0:
                continue
            n1 = float(acc["n_correct"].sum() if s is None else acc["n_correct"][s])
            sum_x, sum_x2, sum_xy = (
                acc[k].sum(0) if s is None else acc[k][s] for k in ("sum_x", "sum_x2", "sum_xy")
            )
            sxy += sum_xy - sum_x * (n1 / n_s)
            sxx += sum_x2 - sum_x * sum_x / n_s
            scale += sum_x2
            syy += n1 - n1 * n1 / n_s
        if syy <= 0:
            where = "any stratum" if within_strata and self.n_strata > 1 else "the samples"
            warnings.warn(
                f"correctness labels do not vary within {where} ({self._label_summary()}); every r is 0",
                CorrSteerWarning,
                stacklevel=2,
            )
            return torch.zeros_like(sxy)
        ok = sxx > _REL_VAR_TOL * scale
        r = sxy / torch.sqrt(torch.where(ok, sxx, 1.0) * syy)
        return torch.where(ok, r, 0.0).clamp_(-1.0, 1.0)

    def class_means(self) -> tuple[Tensor, Tensor]:
        """(E[x | correct], E[x | incorrect]), each (L, F) float64; zeros for a class with no samples."""
        n1, n0 = self.n_correct, self.n - self.n_correct
        sum_x, sum_xy = self._acc["sum_x"].sum(0), self._acc["sum_xy"].sum(0)
        mean1 = sum_xy / n1 if n1 else torch.zeros_like(sum_x)
        mean0 = (sum_x - sum_xy) / n0 if n0 else torch.zeros_like(sum_x)
        return mean1, mean0

    def coefficients(self, mode: CoefficientMode = "correct_mean") -> Tensor:
        """Steering coefficients (L, F): mean activation over correct samples, zeros included (docs/method.md,
        step 6), or only over the correct samples where the feature fires ("correct_active_mean"); 0 if it never
        does."""
        if mode == "correct_mean":
            return self.class_means()[0]
        if mode == "correct_active_mean":
            fired = self.firing_counts()[0].to(torch.float64)
            return torch.where(fired > 0, self._acc["sum_pos_xy"] / fired.clamp_min(1.0), 0.0)
        raise ConfigError(f"unknown coefficient mode {mode!r}; valid modes are {valid_choices(COEFFICIENT_MODES)}")

    def firing_counts(self) -> tuple[Tensor, Tensor]:
        """Number of samples with x > 0 among (correct, incorrect), each (L, F) int64."""
        fired = self._acc["hist"].sum(-1, dtype=torch.int64)  # (2, L, F)
        return fired[1], fired[0]

    def mutual_information(self) -> Tensor:
        """Plug-in mutual information (nats) between the binned activation and y, (L, F) float64 (SPARE)."""
        n = self.n
        out = self._zeros(self.n_layers, self.n_features)
        if n == 0:
            return out
        n_cls = torch.tensor([n - self.n_correct, self.n_correct], dtype=torch.float64, device=self.device)
        # N·MI = Σ n_bc log n_bc − Σ n_b log n_b − Σ n_c log n_c + N log N (0 log 0 = 0 via xlogy)
        const = n * math.log(n) - float(torch.special.xlogy(n_cls, n_cls).sum())
        for layer in range(self.n_layers):  # one layer at a time bounds the float64 temporaries
            counts = self._class_bin_counts(layer).to(torch.float64)  # (2, F, n_bins + 2)
            per_bin = counts.sum(0)  # (F, n_bins + 2)
            joint = torch.special.xlogy(counts, counts).sum((0, 2))
            out[layer] = (joint - torch.special.xlogy(per_bin, per_bin).sum(-1) + const) / n
        return out.clamp_min_(0.0)  # rounding can give -1e-17 for independent features

    def fisher_ratio(self) -> Tensor:
        """DSG's E[x² | correct] / E[x² | incorrect], (L, F) float64, always finite.

        Both moments get ε = 1e-6 × the layer's mean E[x²] added, so 0/0 (never fires) is 1 (no evidence either
        way) and a/0 (fires only on correct samples) is large but finite and still ordered by a.
        """
        n, n1 = self.n, self.n_correct
        sum_x2, sum_x2y = self._acc["sum_x2"].sum(0), self._acc["sum_x2y"]
        m1 = sum_x2y / n1 if n1 else torch.zeros_like(sum_x2)
        m0 = ((sum_x2 - sum_x2y) / (n - n1)).clamp_min(0.0) if n - n1 else torch.zeros_like(sum_x2)
        eps = _FISHER_EPS * (sum_x2 / max(n, 1)).mean(-1, keepdim=True)  # (L, 1)
        eps = torch.where(eps > 0, eps, 1.0)
        return (m1 + eps) / (m0 + eps)

    def mean_difference(self) -> Tensor:
        """CAA's |E[x | correct] − E[x | incorrect]|, (L, F) float64."""
        mean1, mean0 = self.class_means()
        return (mean1 - mean0).abs()

    def max_activation(self) -> Tensor:  # (L, F) float32; -inf before any update
        return self._acc["max"].clone()

    def mean_activation(self) -> Tensor:  # (L, F) float64 over all samples
        return self._acc["sum_x"].sum(0) / max(self.n, 1)

    def histogram(self, layer: int, feature: int) -> tuple[Tensor, Tensor, Tensor]:
        """(edges (n_bins + 3,), counts correct, counts incorrect (n_bins + 2,) int64) for one feature.

        Bin k spans [edges[k], edges[k + 1]); bin 0 is x ≤ 0 (edges −inf, 0) and bin 1 is (0, e_0).
        """
        if not 0 <= layer < self.n_layers:
            raise LayerOutOfRangeError(f"layer {layer} is out of range; valid layers are 0..{self.n_layers - 1}")
        if not 0 <= feature < self.n_features:
            raise ConfigError(f"feature {feature} is out of range; valid features are 0..{self.n_features - 1}")
        inf = torch.tensor([math.inf], dtype=torch.float64)
        edges = torch.cat([-inf, torch.zeros(1, dtype=torch.float64), self.bin_edges.cpu(), inf])
        counts = self._class_bin_counts(layer)[:, feature].cpu()
        return edges, counts[1], counts[0]

    def _class_bin_counts(self, layer: int) -> Tensor:  # (2, F, n_bins + 2) int64, not-firing bin first
        fired = self._acc["hist"][:, layer].to(torch.int64)
        n_cls = torch.tensor([self.n - self.n_correct, self.n_correct], device=self.device)
        not_firing = n_cls[:, None] - fired.sum(-1)
        return torch.cat([not_firing.unsqueeze(-1), fired], dim=-1)

    def _label_summary(self) -> str:
        return f"{self.n} samples, {self.n_correct} correct, {self.n - self.n_correct} incorrect"

    def support_warnings(self, *, min_correct: int = 10, min_incorrect: int = 10) -> list[str]:
        """Human-readable reasons the correlations are not to be trusted (empty list when none)."""
        n, n1 = self.n, self.n_correct
        if n == 0:
            return ["no samples have been collected"]
        out = []
        if n1 in (0, n):
            out.append(f"all {n} samples are {'correct' if n1 else 'incorrect'}: every r is 0 (undefined)")
        for count, least, name in ((n1, min_correct, "correct"), (n - n1, min_incorrect, "incorrect")):
            if 0 < n1 < n and count < least:
                out.append(f"only {count} of {n} samples are {name} (fewer than {least}): selection is noise")
        if self.n_strata > 1:
            ns, n1s = self._acc["n"].tolist(), self._acc["n_correct"].tolist()
            flat = [s for s in range(self.n_strata) if ns[s] and n1s[s] in (0, ns[s])]
            if flat:
                out.append(f"strata {valid_choices(flat)} have one class only: they add nothing within strata")
        return out

    def _config(self) -> Tensor:
        return torch.tensor([self.n_layers, self.n_features, self.n_strata, self.n_bins, _STATE_VERSION])

    def state_dict(self) -> dict[str, Tensor]:
        """CPU copies of every accumulator plus the configuration (safetensors-ready, exact round trip)."""
        state = {k: v.detach().cpu().clone() for k, v in self._acc.items()}
        state["config"] = self._config()
        state["bin_range"] = torch.tensor(self.bin_range, dtype=torch.float64)
        return state

    @classmethod
    def from_state_dict(cls, state: dict[str, Tensor], *, device: str | torch.device = "cpu") -> CorrelationStats:
        missing = sorted({"config", "bin_range", "max", *_SUM_KEYS} - set(state))
        if missing:
            raise CollectionError(f"statistics checkpoint lacks {valid_choices(missing)}")
        n_layers, n_features, n_strata, n_bins, version = (int(v) for v in state["config"].tolist())
        if version != _STATE_VERSION:
            raise CollectionError(f"statistics checkpoint has version {version}; this code reads {_STATE_VERSION}")
        lo, hi = state["bin_range"].tolist()
        stats = cls(n_layers, n_features, n_strata=n_strata, n_bins=n_bins, bin_range=(lo, hi), device=device)
        for key, target in stats._acc.items():
            value = state[key]
            if value.shape != target.shape or value.dtype != target.dtype:
                raise CollectionError(
                    f"checkpoint tensor {key!r} is {value.dtype} {tuple(value.shape)}; expected "
                    f"{target.dtype} {tuple(target.shape)}"
                )
            target.copy_(value)
        return stats

    def merge(self, other: CorrelationStats) -> None:
        """Add another collection's statistics (same layers, features, strata and bins) into this one."""
        same = isinstance(other, CorrelationStats) and torch.equal(self._config(), other._config())
        if not same or self.bin_range != other.bin_range:
            raise CollectionError(
                "can only merge CorrelationStats with the same layers, features, strata and bins"
            )
        for key in _SUM_KEYS:
            self._acc[key] += other._acc[key].to(self.device)
        torch.maximum(self._acc["max"], other._acc["max"].to(self.device), out=self._acc["max"])

    def __repr__(self) -> str:
        return (
            f"CorrelationStats(n_layers={self.n_layers}, n_features={self.n_features}, n_strata={self.n_strata},"
            f" n_bins={self.n_bins}; {self._label_summary()})"
        )
