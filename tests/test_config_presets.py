"""Presets and configuration: registry contents, validation, clear errors."""

from __future__ import annotations

import pytest

from corrsteer_core.config import CollectConfig, ModelSpec, PresetSpec, SAESpec
from corrsteer_core.errors import ConfigError, LayerOutOfRangeError, PresetNotFoundError
from corrsteer_core.presets import DEFAULT_PRESET, custom_preset, get_preset, list_presets, load_preset_file
from tests.helpers import tiny_preset, write_preset_file


def test_builtin_presets_know_their_sites_and_neuronpedia_ids():
    names = [p.name for p in list_presets()]
    assert names[0] == DEFAULT_PRESET
    assert {"smollm2-135m-it", "gemma-2-2b-it", "llama-3.1-8b"} <= set(names)
    gemma = get_preset("gemma-2-2b-it")
    assert gemma.sae.release == "gemma-scope-2b-pt-res-canonical"
    assert gemma.sae.sae_id(12) == "layer_12/width_16k/canonical"
    assert gemma.sae.hook_name(12) == "blocks.12.hook_resid_post"
    assert gemma.sae.neuronpedia_ids(12) == ("gemma-2-2b", "12-gemmascope-res-16k")
    llama = get_preset("llama-3.1-8b")
    assert llama.sae.sae_id(7) == "l7r_8x" and llama.sae.neuronpedia_ids(7) == (
        "llama3.1-8b",
        "7-llamascope-res-32k",
    )
    smol = get_preset(DEFAULT_PRESET)
    assert smol.layers == tuple(range(30)) and smol.model.source == "embedded"
    assert smol.sae.neuronpedia_ids(3) is None


def test_unknown_preset_lists_valid_ones():
    with pytest.raises(PresetNotFoundError, match="smollm2-135m-it"):
        get_preset("gpt-5")


def test_custom_preset_for_any_sae_lens_release():
    preset = custom_preset(
        model_id="org/model", n_layers=12, d_model=768, release="some-release", id_template="blocks.{layer}.res"
    )
    assert preset.sae.sae_id(4) == "blocks.4.res" and preset.layers == tuple(range(12))
    with pytest.raises(ConfigError, match="layer"):
        custom_preset(model_id="org/model", n_layers=12, d_model=768, release="r", id_template="no-placeholder")


def test_layers_out_of_range_are_rejected():
    spec = get_preset(DEFAULT_PRESET).model
    assert spec.check_layer(29) == 29
    with pytest.raises(LayerOutOfRangeError, match=r"0\.\.29"):
        spec.check_layer(30)
    with pytest.raises(LayerOutOfRangeError):
        PresetSpec(
            name="x",
            description="",
            model=spec,
            sae=SAESpec(source="local", path="/nowhere", layers=(3, 31)),
        )


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"source": "ftp"}, "Valid values"),
        ({"dtype": "int8"}, "Valid values"),
        ({"n_layers": 0}, "> 0"),
        ({"source": "local"}, "path"),
    ],
)
def test_model_spec_validation(kwargs, message):
    base = {"source": "hub", "hf_id": "a/b", "n_layers": 2, "d_model": 8}
    with pytest.raises(ConfigError, match=message):
        ModelSpec(**{**base, **kwargs})


def test_config_round_trip_and_unknown_keys():
    cfg = CollectConfig(batch_size=4, strata_key="op")
    assert CollectConfig.from_dict(cfg.to_dict()) == cfg
    with pytest.raises(ConfigError, match="unknown keys"):
        CollectConfig.from_dict({"batch_size": 4, "batchsize": 3})
    with pytest.raises(ConfigError):
        CollectConfig(pooling="median")


def test_preset_file_from_environment(tmp_path, monkeypatch):
    preset = tiny_preset(tmp_path / "m", tmp_path / "s", name="from-file")
    path = write_preset_file(preset, tmp_path / "presets.yaml")
    assert load_preset_file(path)["from-file"] == preset
    monkeypatch.setenv("CORRSTEER_PRESETS", str(path))
    assert get_preset("from-file").model.path == str(tmp_path / "m")
    (tmp_path / "bad.yaml").write_text("x: [unclosed", encoding="utf-8")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_preset_file(tmp_path / "bad.yaml")


def test_presets_that_share_a_model_share_its_cache_key():
    default, wide = get_preset(DEFAULT_PRESET), get_preset("smollm2-135m-it-4096")
    assert wide.model.cache_key == default.model.cache_key  # one corpus serves both SAE sets
    assert (
        (wide.sae.d_sae, wide.sae.set_name) == (4096, "topk-4096-k32") != (default.sae.d_sae, default.sae.set_name)
    )
    assert get_preset("gemma-2-2b-it").model.cache_key != default.model.cache_key
    assert all(c.isalnum() or c in "._-" for c in default.model.cache_key)
