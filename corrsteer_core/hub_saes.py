"""Hub SAEs through sae-lens, also offline from the local Hugging Face cache.

sae-lens' own converters only call ``hf_hub_download`` for GemmaScope (``gemma_2``) and Llama Scope
(``llama_scope``), so those load from the cache with ``HF_HUB_OFFLINE=1``. Its Gemma Scope 2 converter
(``gemma_3``) first asks the hub for the parameter file's header over HTTP (to learn the shapes), which fails
offline even when the file is cached. :func:`gemma_3_cached_loader` does the same conversion from the cached
files: it reads the shapes from the local safetensors header and maps the parameters exactly as sae-lens does
(``w_enc, w_dec, b_enc, b_dec, threshold`` -> ``W_enc, W_dec, b_enc, b_dec, threshold``; JumpReLU; the
residual hook ``blocks.{L}.hook_resid_post`` for ``resid_post`` folders; no input normalisation).
"""

from __future__ import annotations

import json
import re
from typing import Any

import torch

from corrsteer_core.config import SAESpec
from corrsteer_core.errors import HubUnavailableError, SAEShapeError

__all__ = ["gemma_3_cached_loader", "load_hub_sae"]


def gemma_3_cached_loader(
    repo_id: str,
    folder_name: str,
    device: str = "cpu",
    force_download: bool = False,
    cfg_overrides: dict[str, Any] | None = None,
) -> tuple[dict[str, Any], dict[str, torch.Tensor], None]:
    """A sae-lens converter for Gemma Scope 2 residual SAEs that needs no hub request beyond the downloads."""
    from huggingface_hub import hf_hub_download
    from safetensors import safe_open

    if "resid_post" not in folder_name:
        raise SAEShapeError(f"only Gemma Scope 2 resid_post SAEs load offline here, not {folder_name!r}")
    layer = re.search(r"layer_(\d+)", folder_name)
    if layer is None:
        raise SAEShapeError(f"no layer number in the Gemma Scope 2 folder name {folder_name!r}")
    cfg_path = hf_hub_download(repo_id, f"{folder_name}/config.json", force_download=force_download)
    with open(cfg_path, encoding="utf-8") as handle:
        raw = json.load(handle)
    if raw.get("architecture") != "jump_relu":
        raise SAEShapeError(f"unexpected architecture {raw.get('architecture')!r} in {repo_id}/{folder_name}")
    params = hf_hub_download(repo_id, f"{folder_name}/params.safetensors", force_download=force_download)
    with safe_open(params, framework="pt", device=str(device)) as handle:
        raw_state = {key: handle.get_tensor(key).float() for key in handle.keys()}  # noqa: SIM118
    d_in, d_sae = raw_state["w_enc"].shape
    model_name = str(raw.get("model_name", "gemma-3"))
    model_name = (model_name if "google" in model_name else "google/" + model_name).replace("-v3", "-3")
    if "270m" in model_name:
        model_name = model_name.replace("-pt", "")
    cfg = {
        "architecture": "jumprelu",
        "d_in": int(d_in),
        "d_sae": int(d_sae),
        "dtype": "float32",
        "model_name": model_name,
        "hook_name": f"blocks.{int(layer.group(1))}.hook_resid_post",
        "hook_head_index": None,
        "apply_b_dec_to_input": False,
        "normalize_activations": "none",
        "reshape_activations": "none",
        "hf_hook_name": raw.get("hf_hook_point_in"),
        "device": device,
        **(cfg_overrides or {}),
    }
    state = {
        "W_enc": raw_state["w_enc"],
        "W_dec": raw_state["w_dec"],
        "b_enc": raw_state["b_enc"],
        "b_dec": raw_state["b_dec"],
        "threshold": raw_state["threshold"],
    }
    return cfg, state, None


def _converter(release: str) -> Any:
    from sae_lens.loading.pretrained_sae_loaders import get_conversion_loader_name

    return gemma_3_cached_loader if get_conversion_loader_name(release) == "gemma_3" else None


def load_hub_sae(spec: SAESpec, layer: int, device: str) -> Any:
    """``SAE.from_pretrained`` for the preset's release; offline, from the local Hugging Face cache."""
    from sae_lens import SAE

    from corrsteer_core.loading import hub_offline

    what = f"SAE {spec.release}/{spec.sae_id(layer)}"
    try:
        with hub_offline() as online:
            converter = None if online else _converter(str(spec.release))
            return SAE.from_pretrained(str(spec.release), spec.sae_id(layer), device=device, converter=converter)
    except Exception as exc:  # offline, any failure to fetch means: not in the local cache
        if online:
            raise
        raise HubUnavailableError(
            f"{what} is not in the local Hugging Face cache and the hub is unreachable (or HF_HUB_OFFLINE is set) "
            f"({type(exc).__name__}: {exc}). Download it once with network, or use the embedded preset "
            "'smollm2-135m-it', which runs offline."
        ) from exc
