"""Tiny, architecture-faithful stand-ins for hub presets, laid out as the Hugging Face hub cache lays them out.

``models--{org}--{name}/refs/main`` holds the revision; ``snapshots/<rev>/<path>`` are symlinks into
``blobs/<sha256>``. Models keep the real depth and width (presets check them) with one attention head and a
tiny MLP and vocabulary; SAEs are random, in the release's own file format and folder.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import save as save_safetensors

from tests.helpers import build_tiny_tokenizer

REVISION = "0123456789abcdef0123456789abcdef01234567"


def hub_file(cache: Path, repo_id: str, path: str, data: bytes) -> Path:
    repo = cache / ("models--" + repo_id.replace("/", "--"))
    blob = repo / "blobs" / hashlib.sha256(data).hexdigest()
    blob.parent.mkdir(parents=True, exist_ok=True)
    blob.write_bytes(data)
    link = repo / "snapshots" / REVISION / path
    link.parent.mkdir(parents=True, exist_ok=True)
    if link.exists() or link.is_symlink():
        link.unlink()
    os.symlink(os.path.relpath(blob, link.parent), link)
    (repo / "refs").mkdir(exist_ok=True)
    (repo / "refs" / "main").write_text(REVISION)
    return link


def hub_model(cache: Path, repo_id: str, kind: str, n_layers: int, width: int, tmp: Path) -> None:
    """A causal LM of the real family (``gemma3_text``, ``gemma2`` or ``llama``) with the real depth and width."""
    from transformers import AutoConfig, AutoModelForCausalLM

    folder = tmp / repo_id.replace("/", "_")
    tokenizer = build_tiny_tokenizer(folder)
    config = AutoConfig.for_model(
        kind,
        vocab_size=len(tokenizer),
        hidden_size=width,
        intermediate_size=8,
        num_hidden_layers=n_layers,
        num_attention_heads=1,
        num_key_value_heads=1,
        head_dim=8,
        max_position_embeddings=256,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=None,
    )
    torch.manual_seed(0)
    AutoModelForCausalLM.from_config(config).save_pretrained(folder)
    for file in folder.iterdir():
        hub_file(cache, repo_id, file.name, file.read_bytes())


def _jumprelu_params(d_in: int, d_sae: int, seed: int) -> dict[str, np.ndarray]:
    gen = np.random.default_rng(seed)
    w_dec = gen.standard_normal((d_sae, d_in)).astype(np.float32)
    w_dec /= np.linalg.norm(w_dec, axis=1, keepdims=True)
    return {
        "w_enc": np.ascontiguousarray(w_dec.T),
        "w_dec": w_dec,
        "b_enc": (gen.standard_normal(d_sae) * 0.1).astype(np.float32),
        "b_dec": (gen.standard_normal(d_in) * 0.1).astype(np.float32),
        "threshold": np.abs(gen.standard_normal(d_sae) * 0.2).astype(np.float32),
    }


def gemma_scope_2_sae(cache: Path, layer: int, d_in: int = 640, d_sae: int = 32) -> dict[str, np.ndarray]:
    """Gemma Scope 2: resid_post_all/layer_{L}_width_16k_l0_small/{config.json, params.safetensors}."""
    folder = f"resid_post_all/layer_{layer}_width_16k_l0_small"
    repo = "google/gemma-scope-2-270m-it"
    params = _jumprelu_params(d_in, d_sae, seed=layer)
    config = {
        "architecture": "jump_relu",
        "model_name": "gemma-v3-270m-it",
        "hf_hook_point_in": f"model.layers.{layer}.output",
        "width": d_sae,
    }
    hub_file(cache, repo, f"{folder}/config.json", json.dumps(config).encode())
    tensors = {k: torch.from_numpy(v) for k, v in params.items()}
    hub_file(cache, repo, f"{folder}/params.safetensors", save_safetensors(tensors))
    return params


def gemma_scope_sae(cache: Path, layer: int, folder: str, d_in: int = 2304, d_sae: int = 16384) -> dict:
    """GemmaScope (Gemma 2): layer_{L}/width_16k/average_l0_{N}/params.npz with W_enc, W_dec, b_enc, b_dec,
    threshold (the real width: sae-lens takes d_in and d_sae from the repo and folder names)."""
    raw = _jumprelu_params(d_in, d_sae, seed=100 + layer)
    params = {"W_enc": raw["w_enc"], "W_dec": raw["w_dec"], **{k: raw[k] for k in ("b_enc", "b_dec", "threshold")}}
    buffer = io.BytesIO()
    np.savez(buffer, **params)
    hub_file(cache, "google/gemma-scope-2b-pt-res", f"{folder}/params.npz", buffer.getvalue())
    return params


def llama_scope_sae(cache: Path, layer: int, norm_factor: float, d_in: int = 4096, d_sae: int = 32) -> dict:
    """Llama Scope: Llama3_1-8B-Base-L{L}R-8x/{hyperparams.json, checkpoints/final.safetensors}."""
    repo, folder = "fnlp/Llama3_1-8B-Base-LXR-8x", f"Llama3_1-8B-Base-L{layer}R-8x"
    raw = _jumprelu_params(d_in, d_sae, seed=200 + layer)
    hyper = {
        "d_model": d_in,
        "d_sae": d_sae,
        "hook_point_in": f"blocks.{layer}.hook_resid_post",
        "hook_point_out": f"blocks.{layer}.hook_resid_post",
        "jump_relu_threshold": 0.05,
        "dataset_average_activation_norm": {"in": d_in**0.5 / norm_factor, "out": d_in**0.5 / norm_factor},
    }
    hub_file(cache, repo, f"{folder}/hyperparams.json", json.dumps(hyper).encode())
    tensors = {
        "encoder.weight": torch.from_numpy(raw["w_enc"].T.copy()),  # (d_sae, d_in), as nn.Linear stores it
        "encoder.bias": torch.from_numpy(raw["b_enc"]),
        "decoder.weight": torch.from_numpy(raw["w_dec"].T.copy()),  # (d_in, d_sae)
        "decoder.bias": torch.from_numpy(raw["b_dec"]),
    }
    hub_file(cache, repo, f"{folder}/checkpoints/final.safetensors", save_safetensors(tensors))
    return raw
