"""The optimiser behind :func:`corrsteer_core.embedded.sae_training.train_topk_sae`: a TopK SAE trained with Adam.

Model: z = TopK(W_enc_t (x − b_dec) + b_enc), x̂ = W_decᵀ z + b_dec, with x scaled so that E‖x‖² = d_in.
Loss = Σ‖x̂ − x‖² / (B · E‖x − mean‖²) (the batch FVU) + aux_coef · AuxK loss (OpenAI's TopK SAE recipe).

Why it is written by hand: on a 2-core CPU autograd through a dense (B, d_sae) code would cost five
(B × d_in × d_sae) products per step. Here the only dense product is the encoder's, in bf16 (or float32)
against copies of float32 master weights; the decoder is a k-sparse ``embedding_bag``, d loss / d z is a sampled
matmul at the selected latents, and the weight gradients are k-sparse COO matmuls. On a busy machine every
multi-threaded op waits for a free core, so the step also keeps the number of ops low: all parameters live in one
flat buffer (one fused Adam kernel) and both weight gradients are written straight into the flat gradient.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F

if TYPE_CHECKING:
    from corrsteer_core.embedded.sae_training import SAETrainConfig

__all__ = ["TopKTrainer"]


class TopKTrainer:
    """Float32 master weights [W_dec | W_enc_t | b_enc | b_dec] in one flat buffer, Adam, hand-written backward."""

    def __init__(self, train: torch.Tensor, cfg: SAETrainConfig) -> None:
        """``train`` (N, d_in) is owned by the trainer: it is scaled in place (in its own dtype)."""
        self.cfg, self.lo = cfg, getattr(torch, cfg.dtype)
        n, d = train.shape
        m = cfg.d_sae
        sq_norm, mean = _moments(train)
        self.scale = math.sqrt(d / sq_norm)  # inputs are scaled so that E‖x‖² = d_in
        for chunk in train.split(65536):
            chunk.copy_(chunk.float() * self.scale)
        self.train = train
        self.var = max(d - self.scale**2 * float(mean.pow(2).sum()), 1e-6)  # E‖x − mean‖² after scaling
        self.flat = torch.zeros(2 * m * d + m + d, requires_grad=True)
        self.flat.grad = torch.zeros_like(self.flat)
        self.W_dec, self.W_enc_t, self.b_enc, self.b_dec = _unflatten(self.flat.detach(), m, d)
        self.grads = _unflatten(self.flat.grad, m, d)
        self.gen = torch.Generator().manual_seed(cfg.seed)
        with torch.no_grad():
            w_dec = torch.randn(m, d, generator=self.gen)
            self.W_dec.copy_(w_dec / w_dec.norm(dim=1, keepdim=True))  # unit rows
            self.W_enc_t.copy_(self.W_dec)  # W_enc initialised as W_decᵀ
            self.b_dec.copy_(mean * self.scale)
        self.opt = torch.optim.Adam([self.flat], lr=cfg.lr, fused=True)
        self.since_fired = torch.zeros(m, dtype=torch.long)  # tokens since each latent last fired
        self.batch = min(cfg.batch_size, n)
        self.steps_per_epoch = math.ceil(n / self.batch)

    def fit(self, progress: Callable[[int, int], None] | None) -> torch.Tensor:
        """Train for cfg.epochs; returns the (d_sae,) mask of latents that fired during the last epoch."""
        total = self.steps_per_epoch * self.cfg.epochs
        step = 0
        active = torch.zeros(self.cfg.d_sae, dtype=torch.bool)
        for epoch in range(self.cfg.epochs):
            perm = torch.randperm(self.train.shape[0], generator=self.gen)
            for rows in perm.split(self.batch):
                self.opt.param_groups[0]["lr"] = self.cfg.lr * _lr_factor(step, total)
                fired = self.step(self.train[rows].float())
                if epoch == self.cfg.epochs - 1:
                    active |= fired
                step += 1
                if progress is not None:
                    progress(step, total)
        return active

    @torch.no_grad()
    def step(self, x: torch.Tensor) -> torch.Tensor:
        """One Adam step on the scaled batch x (B, d_in); returns the (d_sae,) mask of latents that fired."""
        n, m = x.shape[0], self.cfg.d_sae
        g_w_dec, g_w_enc_t, g_b_enc, g_b_dec = self.grads
        xc = x - self.b_dec
        pre = xc.to(self.lo) @ self.W_enc_t.to(self.lo).T  # (B, d_sae)
        pre += self.b_enc.to(self.lo)
        vals, idx = pre.topk(self.cfg.k, dim=1, sorted=False)  # (B, k)
        z = vals.float().relu()
        diff = F.embedding_bag(idx, self.W_dec, per_sample_weights=z, mode="sum").sub_(xc)  # x̂ − x
        c = 2.0 / (n * self.var)  # d loss / d x̂ = c · diff
        g_z = _gathered_dots(diff, self.W_dec, idx) * ((vals > 0) * c)  # d loss / d z, through the ReLU
        torch.addmm(g_w_dec, _rows_matrix(idx, z * c, m), diff, beta=0.0, out=g_w_dec)
        aux = self._aux(diff, pre)
        if aux is not None:  # dead latents reconstructing the error x − x̂
            aux_idx, aux_z, aux_g_z, aux_grad_out = aux
            g_w_dec.addmm_(_rows_matrix(aux_idx, aux_z, m), aux_grad_out)
            idx, g_z = torch.cat([idx, aux_idx], 1), torch.cat([g_z, aux_g_z], 1)
        torch.addmm(g_w_enc_t, _rows_matrix(idx, g_z, m), xc, beta=0.0, out=g_w_enc_t)
        g_b_enc.zero_().index_add_(0, idx.flatten(), g_z.flatten())
        torch.sum(diff, 0, out=g_b_dec)
        g_b_dec.mul_(c).sub_(g_b_enc @ self.W_enc_t)  # b_dec is also subtracted from the encoder input
        radial = torch.einsum("md,md->m", g_w_dec, self.W_dec).unsqueeze(1)
        g_w_dec.addcmul_(self.W_dec, radial, value=-1.0)  # keep decoder rows on the unit sphere
        self.opt.step()
        self.W_dec.div_(self.W_dec.norm(dim=1, keepdim=True))
        fired = torch.bincount(idx[:, : self.cfg.k].flatten(), weights=z.flatten(), minlength=m) > 0
        self.since_fired += n
        self.since_fired[fired] = 0
        return fired

    def _aux(
        self, diff: torch.Tensor, pre: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor] | None:
        """AuxK: the top aux_k dead latents (by pre-activation) reconstruct the error x − x̂ = −diff (B, d_in).

        Returns their indices and activations, d loss / d activations (B, aux_k), and d loss / d their
        reconstruction (B, d_in); None when no latent is dead or AuxK is off.
        """
        dead = (self.since_fired >= self.cfg.dead_after_tokens).nonzero().squeeze(1)
        if self.cfg.aux_k == 0 or self.cfg.aux_coef == 0 or dead.numel() == 0:
            return None
        n, err = diff.shape[0], diff.neg()
        err_var = float((err - err.mean(0)).pow(2).sum()) / n
        if err_var <= 0:
            return None
        vals, local = pre[:, dead].topk(min(self.cfg.aux_k, dead.numel()), dim=1, sorted=False)
        idx = dead[local]
        z = vals.float().relu()
        err_hat = F.embedding_bag(idx, self.W_dec, per_sample_weights=z, mode="sum")
        grad_out = (err_hat - err) * (2.0 * self.cfg.aux_coef / (n * err_var))
        return idx, z, _gathered_dots(grad_out, self.W_dec, idx) * (vals > 0), grad_out

    def raw_weights(self) -> dict[str, torch.Tensor]:
        """sae-lens weights for raw (unscaled) inputs: with s the scale, latents become z/s, so b_enc and b_dec
        are divided by s while W_enc and the unit-norm W_dec stay; encode and decode then commute with scaling."""
        return {
            "W_enc": self.W_enc_t.T.clone(),
            "b_enc": self.b_enc / self.scale,
            "W_dec": self.W_dec.clone(),
            "b_dec": self.b_dec / self.scale,
        }


def _unflatten(
    flat: torch.Tensor, m: int, d: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Views (W_dec (m, d), W_enc_t (m, d), b_enc (m,), b_dec (d,)) of a flat buffer."""
    w = flat[: 2 * m * d].view(2 * m, d)
    return w[:m], w[m:], flat[2 * m * d : 2 * m * d + m], flat[2 * m * d + m :]


def _gathered_dots(a: torch.Tensor, w: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
    """out[b, j] = a[b] · w[idx[b, j]] for a (B, d), w (m, d), idx (B, k): a sampled matmul, no (B, m) product."""
    n, k = idx.shape
    crow = torch.arange(0, n * k + 1, k)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta")
        mask = torch.sparse_csr_tensor(
            crow, idx.flatten(), torch.zeros(n * k), (n, w.shape[0]), check_invariants=False
        )
    return torch.sparse.sampled_addmm(mask, a, w.T, beta=0.0).values().view(n, k)


def _rows_matrix(idx: torch.Tensor, vals: torch.Tensor, m: int) -> torch.Tensor:
    """The sparse (m, B) matrix with vals[b, j] at (idx[b, j], b): times a (B, d) it sums rows into latents."""
    n, k = idx.shape
    rows = torch.arange(n).repeat_interleave(k)
    return torch.sparse_coo_tensor(
        torch.stack([idx.flatten(), rows]), vals.flatten(), (m, n), check_invariants=False
    )


def _lr_factor(step: int, total: int) -> float:
    """Short linear warm-up, then linear decay to zero over the last 30% of steps."""
    warmup = max(1, round(0.02 * total))
    if step < warmup:
        return (step + 1) / warmup
    decay_start = 0.7 * total
    return 1.0 if step < decay_start else max(0.0, (total - step) / (total - decay_start))


def _moments(acts: torch.Tensor) -> tuple[float, torch.Tensor]:
    """(E‖x‖², E[x]) of (N, d) rows, in float64 chunks."""
    sq, total = 0.0, torch.zeros(acts.shape[1], dtype=torch.float64)
    for chunk in acts.split(65536):
        c = chunk.double()
        sq += float(c.pow(2).sum())
        total += c.sum(0)
    n = acts.shape[0]
    return sq / n, total / n
