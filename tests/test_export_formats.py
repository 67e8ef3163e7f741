"""Exports: a llama.cpp control vector read back with the gguf reader, lm-eval's steer file, cards, bad inputs."""

from __future__ import annotations

import dataclasses
import json

import pytest
import torch

from corrsteer_core.errors import ConfigError, ProfileError
from corrsteer_core.export_formats import (
    card_path,
    check_exportable,
    read_card,
    steering_card,
    write_gguf,
    write_lm_eval,
)
from corrsteer_core.profile import SteeringProfile
from tests.helpers import demo_profile

_EVAL = {
    "split": "test",
    "summary": {
        "n": 40,
        "pos": 7,
        "neg": 2,
        "ser": 0.222,
        "p_value": 0.18,
        "diff": 0.125,
        "ci_low": -0.02,
        "ci_high": 0.27,
        "base_accuracy": 0.4,
        "steered_accuracy": 0.525,
        "changed": 9,
    },
}


def _profile(tiny, saes, layers=(1, 3), **changes) -> SteeringProfile:
    return demo_profile(tiny, saes, layers, **{"evaluation": _EVAL, **changes})


def test_gguf_control_vector_reads_back_in_llama_cpp_numbering(tiny, tiny_saes, tmp_path):
    import gguf

    profile = _profile(tiny, tiny_saes)
    path = write_gguf(profile, tiny_saes, tmp_path / "p.gguf")
    reader = gguf.GGUFReader(str(path))
    fields = {name: reader.fields[name] for name in reader.fields}
    arch = fields["general.architecture"]
    assert bytes(arch.parts[arch.data[0]]).decode() == "controlvector"
    count = fields["controlvector.layer_count"]
    assert int(count.parts[count.data[0]][0]) == 2
    tensors = {t.name: torch.from_numpy(t.data.copy()).reshape(-1) for t in reader.tensors}
    # corrsteer's blocks.L.hook_resid_post (output of 0-based block L) is llama.cpp's direction.L
    assert set(tensors) == {"direction.1", "direction.3"}
    vectors = profile.vectors(tiny_saes)
    for L in (1, 3):
        assert tensors[f"direction.{L}"].shape == (tiny.d_model,)
        torch.testing.assert_close(tensors[f"direction.{L}"], vectors[f"blocks.{L}.hook_resid_post"])
    card_field = fields["corrsteer.card"]
    card = read_card(bytes(card_field.parts[card_field.data[0]]).decode())
    assert card == json.loads(card_path(path).read_text())
    assert (card["pos"], card["neg"], card["task"], card["positions"]) == (7, 2, "toy", "generation")
    assert card["sae_fingerprints"] == {"1": tiny_saes.fingerprint(1), "3": tiny_saes.fingerprint(3)}


def test_lm_eval_steer_file_loads_with_weights_only(tiny, tiny_saes, tmp_path):
    profile = _profile(tiny, tiny_saes)
    path = write_lm_eval(profile, tiny_saes, tmp_path / "p.pt")
    data = torch.load(path, weights_only=True)
    assert set(data) == {"layers.1", "layers.3"}
    entry = data["layers.3"]
    assert entry["action"] == "add" and entry["steering_coefficient"] == 1.0
    torch.testing.assert_close(entry["steering_vector"], profile.vectors(tiny_saes)["blocks.3.hook_resid_post"])
    assert card_path(path).exists()


def test_what_llama_cpp_cannot_express_is_refused(tiny, tiny_saes, tmp_path):
    with pytest.raises(ConfigError, match="block 0"):
        check_exportable(_profile(tiny, tiny_saes, layers=(0, 2)), "gguf")
    pre = _profile(tiny, tiny_saes)
    pre = dataclasses.replace(
        pre, layers=tuple(dataclasses.replace(s, hook_name=f"blocks.{s.layer}.hook_resid_pre") for s in pre.layers)
    )
    with pytest.raises(ConfigError, match="not a block output"):
        check_exportable(pre, "gguf")
    with pytest.raises(ConfigError, match="nothing to export"):
        check_exportable(_profile(tiny, tiny_saes).with_enabled(set()), "lm-eval")
    with pytest.raises(ConfigError, match="not valid"):
        check_exportable(_profile(tiny, tiny_saes), "onnx")


def test_card_validation_refuses_bad_cards(tiny, tiny_saes):
    card = steering_card(_profile(tiny, tiny_saes))
    assert read_card(json.dumps(card)) == card
    for bad, match in [
        ({**card, "pos": -1}, "pos"),
        ({**card, "p_value": "low"}, "p_value"),
        ({**card, "extra": 1}, "unknown keys"),
        ({**card, "card_version": 9}, "version"),
        ({**card, "task": "x" * 500}, "task"),
    ]:
        with pytest.raises(ProfileError, match=match):
            read_card(bad)
    with pytest.raises(ProfileError, match="not JSON"):
        read_card("{")
    with pytest.raises(ProfileError, match="at most"):
        read_card("x" * 70_000)
    assert steering_card(_profile(tiny, tiny_saes, evaluation=None))["pos"] is None


def test_deployment_comparison_counts_flips_and_agreement():
    from corrsteer_core.deploy_check import compare_runs
    from corrsteer_core.steer import Outcome

    def outs(verdicts, texts):
        return [Outcome(str(i), t, None, v) for i, (v, t) in enumerate(zip(verdicts, texts, strict=True))]

    cs_base = outs([False, True, False, True], ["a", "b", "c", "d"])
    cs_steer = outs([True, True, False, False], ["A", "b", "c", "D"])
    lc_base = outs([False, True, True, True], ["a", "b", "x", "d"])
    lc_steer = outs([True, False, True, True], ["A", "y", "x", "d"])
    s = compare_runs(cs_base, cs_steer, lc_base, lc_steer).summary()
    assert s["n"] == 4
    assert (s["corrsteer"]["pos"], s["corrsteer"]["neg"]) == (1, 1)
    assert (s["llama_cpp"]["pos"], s["llama_cpp"]["neg"]) == (1, 1)
    assert s["verdict_agreement"] == {"unsteered": 0.75, "steered": 0.25}
    assert s["text_agreement"] == {"unsteered": 0.75, "steered": 0.25}
    assert s["flip_agreement"] == 0.5
    assert s["corrsteer"]["steered_accuracy"] == 0.5 and s["llama_cpp"]["base_accuracy"] == 0.75
    with pytest.raises(ConfigError, match="same items"):
        compare_runs(cs_base, cs_steer[:2], lc_base, lc_steer)
