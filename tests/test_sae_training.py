"""The TopK SAE trainer on synthetic data with a known answer: a planted sparse dictionary."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import pytest
import torch
from sae_lens import SAE, TopKSAE, TopKSAEConfig

from corrsteer_core.embedded.sae_quality import QUALITY_FILENAME
from corrsteer_core.embedded.sae_topk import TopKTrainer
from corrsteer_core.embedded.sae_training import (
    SAEQuality,
    SAETrainConfig,
    _split,
    _to_sae,
    evaluate_sae,
    filter_outliers,
    save_sae,
    train_topk_sae,
)
from corrsteer_core.errors import ConfigError
from corrsteer_core.storage import read_json

D_IN, N_ATOMS, ACTIVE = 32, 96, 3


def planted(n: int, *, scale: float = 1.0, seed: int = 123) -> tuple[torch.Tensor, torch.Tensor]:
    """n samples, each a sum of ACTIVE of N_ATOMS random unit directions, plus an offset; and the dictionary."""
    gen = torch.Generator().manual_seed(seed)
    atoms = torch.randn(N_ATOMS, D_IN, generator=gen)
    atoms /= atoms.norm(dim=1, keepdim=True)
    idx = torch.rand(n, N_ATOMS, generator=gen).topk(ACTIVE, dim=1).indices
    coef = torch.rand(n, ACTIVE, generator=gen) * 1.5 + 0.5
    x = torch.zeros(n, N_ATOMS).scatter(1, idx, coef) @ atoms + 0.3
    return x * scale, atoms


def build_cfg(**overrides: Any) -> SAETrainConfig:
    base: dict[str, Any] = dict(
        d_sae=192, k=ACTIVE, epochs=8, batch_size=512, lr=3e-2, aux_k=32, dead_after_tokens=4096
    )
    return SAETrainConfig(**(base | overrides))


def train(acts: torch.Tensor, **overrides: Any) -> tuple[TopKSAE, SAEQuality]:
    return train_topk_sae(acts, build_cfg(**overrides), hook_name="blocks.0.hook_resid_post", model_name="test")


@pytest.fixture(scope="module")
def planted_run() -> tuple[torch.Tensor, torch.Tensor, TopKSAE, SAEQuality]:
    acts, atoms = planted(3000, scale=40.0)  # far from unit scale: the folded input scaling matters
    sae, quality = train(acts)
    return acts, atoms, sae, quality


def test_planted_dictionary_is_learned(
    planted_run: tuple[torch.Tensor, torch.Tensor, TopKSAE, SAEQuality],
) -> None:
    _, atoms, sae, quality = planted_run
    assert quality.fvu < 0.2  # an untrained SAE (lr ~ 0) scores about 0.67 here
    assert quality.mean_l0 == pytest.approx(ACTIVE, abs=0.1)
    best_cos = (atoms @ sae.W_dec.detach().T).max(dim=1).values  # (N_ATOMS,)
    assert (best_cos > 0.9).float().mean() > 0.8
    assert torch.allclose(sae.W_dec.norm(dim=1), torch.ones(sae.cfg.d_sae), atol=1e-5)
    assert quality.n_train_tokens + quality.n_holdout_tokens == 3000
    assert quality.n_holdout_tokens == 150


def test_untrained_sae_is_far_worse() -> None:
    acts, _ = planted(3000)
    _, quality = train(acts, lr=1e-9, epochs=1)
    assert quality.fvu > 0.5


def test_saved_sae_reconstructs_raw_activations(
    planted_run: tuple[torch.Tensor, torch.Tensor, TopKSAE, SAEQuality],
) -> None:
    acts, _, sae, quality = planted_run
    assert sae.cfg.normalize_activations == "none"
    expected_scale = (D_IN / acts.pow(2).sum(1).mean()) ** 0.5  # training inputs had E‖x‖² = d_in
    assert sae.cfg.metadata.activation_scale == pytest.approx(float(expected_scale), rel=0.02)
    _, holdout = _split(acts, build_cfg().holdout_fraction)
    fvu, mean_l0, _ = evaluate_sae(sae, holdout)
    assert fvu == pytest.approx(quality.fvu, rel=1e-6)
    assert mean_l0 == pytest.approx(quality.mean_l0)


def test_hand_written_gradients_match_autograd() -> None:
    """The trainer's backward pass (main loss + AuxK on dead latents) equals autograd on the same loss."""
    acts, _ = planted(600)
    cfg = build_cfg(d_sae=128, k=8, aux_k=16, dtype="float32")
    trainer = TopKTrainer(acts.clone(), cfg)
    trainer.since_fired[:50] = cfg.dead_after_tokens  # latents 0..49 are dead: AuxK is active
    x = trainer.train[:256].clone()  # scaled by the trainer
    w_dec, w_enc_t, b_enc, b_dec = (
        p.clone().requires_grad_() for p in (trainer.W_dec, trainer.W_enc_t, trainer.b_enc, trainer.b_dec)
    )
    pre = (x - b_dec) @ w_enc_t.T + b_enc
    vals, idx = pre.topk(cfg.k, dim=1)
    x_hat = torch.zeros_like(pre).scatter(1, idx, vals.relu()) @ w_dec + b_dec
    err = (x - x_hat).detach()
    aux_vals, aux_idx = pre[:, :50].topk(cfg.aux_k, dim=1)
    err_hat = torch.zeros(256, 50).scatter(1, aux_idx, aux_vals.relu()) @ w_dec[:50]
    err_var = (err - err.mean(0)).pow(2).sum() / 256
    loss = (x_hat - x).pow(2).sum() / (256 * trainer.var) + cfg.aux_coef * (err_hat - err).pow(2).sum() / (
        256 * err_var
    )
    loss.backward()
    unit_rows = trainer.W_dec.clone()
    trainer.step(x)  # leaves its gradients in trainer.grads (Adam does not clear them)
    assert w_dec.grad is not None
    radial = (w_dec.grad * unit_rows).sum(1, keepdim=True) * unit_rows  # projected out by the trainer
    expected = [w_dec.grad - radial, w_enc_t.grad, b_enc.grad, b_dec.grad]
    for got, want in zip(trainer.grads, expected, strict=True):
        assert want is not None
        torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-7)


def test_folded_scale_reproduces_the_training_space() -> None:
    """On raw inputs the saved SAE gives the training-space latents and reconstruction divided by the scale."""
    acts, _ = planted(400, scale=40.0)
    cfg = build_cfg(dtype="float32")
    trainer = TopKTrainer(acts.clone(), cfg)
    with torch.no_grad():  # make every folded term matter
        trainer.b_enc.normal_(0.0, 0.5, generator=torch.Generator().manual_seed(1))
        trainer.b_dec.add_(0.3)
    sae = _to_sae(trainer, cfg, hook_name="h", model_name="m")
    x = trainer.train[:100]  # scaled
    pre = (x - trainer.b_dec) @ trainer.W_enc_t.T + trainer.b_enc
    vals, idx = pre.topk(cfg.k, dim=1)
    z = torch.zeros_like(pre).scatter(1, idx, vals.relu())
    with torch.no_grad():
        raw_z = sae.encode(acts[:100])
        torch.testing.assert_close(raw_z * trainer.scale, z)
        torch.testing.assert_close(sae.decode(raw_z) * trainer.scale, z @ trainer.W_dec + trainer.b_dec)


def test_same_seed_gives_identical_weights_and_other_seed_does_not() -> None:
    acts, _ = planted(800)
    settings: dict[str, Any] = dict(d_sae=256, epochs=2, batch_size=256, dead_after_tokens=256)  # AuxK runs
    first, _ = train(acts, **settings)
    second, _ = train(acts, **settings)
    other, _ = train(acts, **settings, seed=1)
    for name, tensor in first.state_dict().items():
        assert torch.equal(tensor, second.state_dict()[name]), name
    assert not torch.equal(first.W_dec, other.W_dec)


def test_progress_reports_every_step() -> None:
    acts, _ = planted(1000)
    seen: list[tuple[int, int]] = []
    cfg = build_cfg(d_sae=32, epochs=2, batch_size=300)
    train_topk_sae(acts, cfg, hook_name="h", model_name="m", progress=lambda s, t: seen.append((s, t)))
    assert seen == [(step, 8) for step in range(1, 9)]  # 950 training tokens: 4 batches of <= 300 per epoch


def test_filter_outliers_drops_huge_and_non_finite_rows() -> None:
    acts, _ = planted(1000)
    acts[[3, 500]] *= 100.0
    acts[7, 0] = float("nan")
    kept, n_dropped = filter_outliers(acts.to(torch.bfloat16), 10.0)
    assert n_dropped == 3
    assert kept.dtype == torch.bfloat16 and kept.shape == (997, D_IN)
    assert torch.equal(kept[:3], acts[:3].to(torch.bfloat16))


def test_training_excludes_outliers() -> None:
    acts, _ = planted(2000)
    acts[:5] *= 1000.0
    _, quality = train(acts, d_sae=64, epochs=1)
    assert quality.n_outliers_dropped == 5
    assert quality.n_train_tokens + quality.n_holdout_tokens == 1995


def test_evaluate_sae_on_a_known_sae() -> None:
    """Identity encoder/decoder with k = d: reconstruction is exact for non-negative inputs."""
    sae = TopKSAE(TopKSAEConfig(d_in=8, d_sae=8, k=8))
    with torch.no_grad():
        for param in (sae.W_enc, sae.W_dec):
            param.copy_(torch.eye(8))
        sae.b_enc.zero_()
        sae.b_dec.zero_()
    acts = torch.rand(100, 8)
    acts[:, 5] = 0.0  # latent 5 never fires
    fvu, mean_l0, dead = evaluate_sae(sae, acts)
    assert fvu == pytest.approx(0.0, abs=1e-10)
    assert mean_l0 == pytest.approx(7.0)
    assert dead == pytest.approx(1 / 8)


def test_save_and_load_round_trip(
    planted_run: tuple[torch.Tensor, torch.Tensor, TopKSAE, SAEQuality], tmp_path: Path
) -> None:
    acts, _, sae, quality = planted_run
    save_sae(sae, quality, tmp_path / "layer_0")
    loaded = SAE.load_from_disk(tmp_path / "layer_0")
    assert isinstance(loaded, TopKSAE)
    assert loaded.cfg.k == ACTIVE and loaded.cfg.metadata.hook_name == "blocks.0.hook_resid_post"
    with torch.no_grad():
        assert torch.equal(loaded.encode(acts[:500]), sae.encode(acts[:500]))
    assert SAEQuality.from_dict(read_json(tmp_path / "layer_0" / QUALITY_FILENAME)) == quality


def test_interrupted_save_leaves_nothing(
    planted_run: tuple[torch.Tensor, torch.Tensor, TopKSAE, SAEQuality],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _, _, sae, quality = planted_run

    def broken_save(path: Path) -> None:
        (Path(path) / "sae_weights.safetensors").write_bytes(b"partial")
        raise KeyboardInterrupt

    monkeypatch.setattr(sae, "save_model", broken_save)
    with pytest.raises(KeyboardInterrupt):
        save_sae(sae, quality, tmp_path / "layer_0")
    assert list(tmp_path.iterdir()) == []


def test_config_round_trips() -> None:
    cfg = build_cfg(seed=3, dtype="float32")
    assert SAETrainConfig.from_dict(cfg.to_dict()) == cfg


@pytest.mark.parametrize(
    "overrides",
    [
        {"d_sae": 0},
        {"k": 0},
        {"k": 600},
        {"epochs": 0},
        {"epochs": True},
        {"batch_size": 2.5},
        {"lr": 0.0},
        {"lr": float("nan")},
        {"aux_k": -1},
        {"aux_coef": -0.1},
        {"dead_after_tokens": 0},
        {"holdout_fraction": 0.0},
        {"holdout_fraction": 0.9},
        {"outlier_factor": 1.0},
        {"seed": -1},
        {"dtype": "float16"},
    ],
)
def test_invalid_config_raises(overrides: dict[str, Any]) -> None:
    with pytest.raises(ConfigError):
        build_cfg(**overrides)


def test_bad_activations_raise() -> None:
    with pytest.raises(ConfigError, match="floating-point"):
        train(torch.ones(100, D_IN, dtype=torch.long))
    with pytest.raises(ConfigError, match="2-D"):
        train(torch.ones(100))
    sae = TopKSAE(TopKSAEConfig(d_in=8, d_sae=8, k=2))
    with pytest.raises(ConfigError, match="tokens, 8"):
        evaluate_sae(sae, torch.ones(10, 9))


def test_unknown_config_key_raises() -> None:
    data = dataclasses.asdict(build_cfg()) | {"width": 3}
    with pytest.raises(ConfigError, match="Valid keys"):
        SAETrainConfig.from_dict(data)
