"""The hub presets' loading path, offline: tiny architecture-faithful stand-ins in a Hugging Face cache layout,
loaded by the real code (transformers from the cache, sae-lens' registry and conversions) with HF_HUB_OFFLINE=1
in a fresh process (huggingface_hub reads its cache location and offline flag at import)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from tests.hub_standins import gemma_scope_2_sae, gemma_scope_sae, hub_model, llama_scope_sae

ROOT = Path(__file__).resolve().parents[1]
LOADER = """
import json, sys, torch
from safetensors.torch import save_file
from corrsteer_core.hooks import capture_residuals
from corrsteer_core.loading import load_model
from corrsteer_core.saes import load_saes
preset, layers, out = sys.argv[1], json.loads(sys.argv[2]), sys.argv[3]
loaded = load_model(preset, device="cpu")
saes = load_saes(loaded, layers)
tensors, info = {}, {}
for layer in layers:
    sae, hook = saes.saes[layer], saes.hook_names[layer]
    with capture_residuals(loaded.model, [hook], positions="all") as rec:
        loaded.model(input_ids=torch.tensor([[5, 6, 7, 8]]))
    resid = rec.stacked(hook)[0].float()
    tensors[f"{layer}.resid"] = resid.contiguous()
    tensors[f"{layer}.z"] = saes.encode(layer, resid).float().contiguous()
    tensors[f"{layer}.W_enc"] = sae.W_enc.detach().float()[:, :32].contiguous()
    tensors[f"{layer}.W_dec"] = sae.W_dec.detach().float()[:32].contiguous()
    info[layer] = {"hook": hook, "d_sae": saes.d_sae(layer), "norm": sae.cfg.normalize_activations,
                   "neuronpedia": saes.neuronpedia_ids(layer)}
save_file(tensors, out)
print("RESULT " + json.dumps(info))
"""


def _load_offline(cache: Path, tmp: Path, preset: str, layers: list[int]) -> tuple[dict, dict[str, torch.Tensor]]:
    env = {
        "PATH": os.environ.get("PATH", ""),
        "HOME": str(tmp),
        "HF_HUB_CACHE": str(cache),
        "HF_HUB_OFFLINE": "1",
        "CORRSTEER_CACHE": str(tmp / "corrsteer-cache"),
        "CORRSTEER_OFFLINE": "1",
        "OMP_NUM_THREADS": "1",
    }
    out = tmp / f"{preset}.safetensors"
    done = subprocess.run(
        [sys.executable, "-c", LOADER, preset, json.dumps(layers), str(out)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    line = next(x for x in done.stdout.splitlines() if x.startswith("RESULT "))
    return {int(k): v for k, v in json.loads(line[7:]).items()}, load_file(str(out))


def _jumprelu(x: torch.Tensor, params: dict, w_enc: str = "w_enc") -> torch.Tensor:
    pre = x @ torch.from_numpy(params[w_enc]) + torch.from_numpy(params["b_enc"])
    return torch.relu(pre) * (pre > torch.from_numpy(params["threshold"]))


def test_gemma_3_270m_with_gemma_scope_2_loads_offline_from_the_hf_cache(tmp_path):
    cache = tmp_path / "hub"
    hub_model(cache, "google/gemma-3-270m-it", "gemma3_text", 18, 640, tmp_path)
    params = {layer: gemma_scope_2_sae(cache, layer) for layer in (0, 17)}
    info, got = _load_offline(cache, tmp_path, "gemma-3-270m-it", [0, 17])
    for layer in (0, 17):
        assert info[layer]["hook"] == f"blocks.{layer}.hook_resid_post"
        assert info[layer]["d_sae"] == 32 and info[layer]["norm"] == "none"
        assert info[layer]["neuronpedia"] is None  # sae-lens lists no Neuronpedia ids for this release
        assert torch.equal(got[f"{layer}.W_enc"], torch.from_numpy(params[layer]["w_enc"])[:, :32])
        want = _jumprelu(got[f"{layer}.resid"], params[layer])
        assert torch.allclose(got[f"{layer}.z"], want, atol=1e-4)
        assert (got[f"{layer}.z"] > 0).any(), "some stand-in features should fire"


def test_a_missing_sae_offline_says_it_is_not_cached(tmp_path):
    cache = tmp_path / "hub"
    hub_model(cache, "google/gemma-3-270m-it", "gemma3_text", 18, 640, tmp_path)
    env = {**os.environ, "HF_HUB_CACHE": str(cache), "HF_HUB_OFFLINE": "1", "CORRSTEER_CACHE": str(tmp_path)}
    code = "from corrsteer_core.saes import load_saes; load_saes('gemma-3-270m-it', [3])"
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True)
    assert done.returncode != 0 and "not in the local Hugging Face cache" in done.stderr


@pytest.mark.slow
def test_gemma_2_2b_with_gemma_scope_jumprelu_loads_offline(tmp_path):
    cache = tmp_path / "hub"
    hub_model(cache, "google/gemma-2-2b-it", "gemma2", 26, 2304, tmp_path)
    params = gemma_scope_sae(cache, 0, "layer_0/width_16k/average_l0_105")  # the registry's canonical path
    info, got = _load_offline(cache, tmp_path, "gemma-2-2b-it", [0])
    assert info[0]["hook"] == "blocks.0.hook_resid_post" and info[0]["d_sae"] == 16384
    assert info[0]["neuronpedia"] == ["gemma-2-2b", "0-gemmascope-res-16k"]
    assert torch.equal(got["0.W_enc"], torch.from_numpy(params["W_enc"])[:, :32])
    assert torch.allclose(got["0.z"], _jumprelu(got["0.resid"], params, "W_enc"), atol=1e-3)


@pytest.mark.slow
def test_llama_3_1_8b_with_llama_scope_loads_offline_with_its_norm_folded(tmp_path):
    factor = 58.935251798561154  # sae-lens' registry norm_scaling_factor for l0r_8x
    cache = tmp_path / "hub"
    hub_model(cache, "meta-llama/Llama-3.1-8B", "llama", 32, 4096, tmp_path)
    raw = llama_scope_sae(cache, 0, factor)
    info, got = _load_offline(cache, tmp_path, "llama-3.1-8b", [0])
    assert info[0]["hook"] == "blocks.0.hook_resid_post" and info[0]["d_sae"] == 32
    assert info[0]["norm"] == "none"  # folded into the weights at load: fixed decoder directions
    w_enc = torch.from_numpy(raw["w_enc"]).to(torch.bfloat16).float()[:, :32]
    assert torch.allclose(got["0.W_enc"], w_enc * factor, rtol=2e-2)
    w_dec = torch.from_numpy(raw["w_dec"]).to(torch.bfloat16).float()[:32]
    assert torch.allclose(got["0.W_dec"], w_dec / factor, rtol=2e-2)
