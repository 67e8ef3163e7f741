"""Steering profiles: vectors, JSON/safetensors round trips, and validation that refuses bad imports."""

from __future__ import annotations

import dataclasses
import json

import pytest
import torch

from corrsteer_core.errors import ProfileError
from corrsteer_core.profile import SteeringProfile, load_profile
from corrsteer_core.profile_store import find_profile, list_saved_profiles, save_named_profile, unique_profile_name
from tests.helpers import demo_profile


def _profile(tiny, saes, **changes) -> SteeringProfile:
    return demo_profile(tiny, saes, **changes)


def test_vectors_are_coefficient_times_scales_times_direction(tiny, tiny_saes):
    profile = _profile(tiny, tiny_saes).with_layer(3, scale=0.5).with_global_scale(2.0)
    vectors = profile.vectors(tiny_saes)
    expected = tiny_saes.directions(3, [6])[0] * (5.0 * 0.5 * 2.0)
    torch.testing.assert_close(vectors["blocks.3.hook_resid_post"], expected)
    assert set(profile.with_layer(1, enabled=False).vectors(tiny_saes)) == {"blocks.3.hook_resid_post"}
    assert profile.with_enabled(set()).vectors(tiny_saes) == {}


def test_random_direction_control_keeps_norms(tiny, tiny_saes):
    profile = _profile(tiny, tiny_saes)
    control = profile.with_random_directions(seed=4)
    for hook, vec in profile.vectors(tiny_saes).items():
        other = control.vectors(tiny_saes)[hook]
        torch.testing.assert_close(other.norm(), vec.norm())
        assert abs(float(torch.nn.functional.cosine_similarity(other, vec, dim=0))) < 0.9
    assert control.content_hash() != profile.content_hash()


def test_json_and_safetensors_round_trip(tiny, tiny_saes, tmp_path):
    profile = _profile(tiny, tiny_saes)
    assert load_profile(profile.save(tmp_path / "p.json")) == profile
    path = profile.vectors_safetensors(tiny_saes, tmp_path / "p.safetensors")
    assert load_profile(path) == profile
    from safetensors.torch import load_file

    stored = load_file(str(path))
    torch.testing.assert_close(
        stored["blocks.1.hook_resid_post"], profile.vectors(tiny_saes)["blocks.1.hook_resid_post"]
    )


def test_named_store(tiny, tiny_saes, tmp_path, monkeypatch):
    monkeypatch.setenv("CORRSTEER_CACHE", str(tmp_path))
    profile = _profile(tiny, tiny_saes)
    save_named_profile(profile, "my profile/1")
    assert find_profile("my profile/1") == profile
    (tmp_path / "profiles" / "broken.json").write_text("{", encoding="utf-8")
    rows = {r["name"]: r for r in list_saved_profiles()}
    assert (
        rows["my-profile-1"]["layers"] == 2 and rows["my-profile-1"]["task"] == "toy" and rows["broken"]["error"]
    )
    with pytest.raises(ProfileError, match="already saved"):
        save_named_profile(profile.with_global_scale(0.5), "my profile/1", replace=False)
    assert find_profile("my-profile-1") == profile  # the refused save changed nothing
    assert unique_profile_name("my profile/1") == "my-profile-1-2"
    with pytest.raises(ProfileError, match="Saved"):
        find_profile("absent")


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda d: d.update(version=99), "version"),
        (lambda d: d.update(extra=1), "unknown keys"),
        (lambda d: d["layers"][0].update(coefficient="NaN"), "finite"),
        (lambda d: d["layers"][0].update(feature=-1), "non-negative"),
        (lambda d: d["layers"][0].update(bogus=1), "valid keys"),
        (lambda d: d.update(positions="sometimes"), "positions"),
        (lambda d: d.update(layers=[d["layers"][0], d["layers"][0]]), "twice"),
    ],
)
def test_invalid_profiles_are_refused(tiny, tiny_saes, mutate, message):
    data = _profile(tiny, tiny_saes).to_dict()
    mutate(data)
    with pytest.raises(ProfileError, match=message):
        load_profile(json.dumps(data).encode())


def test_non_finite_json_constants_are_refused(tiny, tiny_saes):
    text = _profile(tiny, tiny_saes).to_json().replace('"global_scale": 1.0', '"global_scale": Infinity')
    with pytest.raises(ProfileError, match="non-finite"):
        load_profile(text.encode())
    with pytest.raises(ProfileError, match="neither"):
        load_profile(b"\x00\x01 not a profile")


def test_compatibility_checks(tiny, tiny_saes):
    profile = _profile(tiny, tiny_saes)
    profile.check_compatible(tiny, tiny_saes)
    with pytest.raises(ProfileError, match="made for other/model"):
        dataclasses.replace(profile, model_id="other/model").check_compatible(tiny, tiny_saes)
    with pytest.raises(ProfileError, match="out of range"):
        profile.with_layer(1, feature=10_000).check_compatible(tiny, tiny_saes)
    with pytest.raises(ProfileError, match="other SAE weights"):
        profile.with_layer(3, fingerprint="0" * 16).check_compatible(tiny, tiny_saes)


def test_features_are_added_replaced_and_removed_by_layer(tiny, tiny_saes):
    from corrsteer_core.errors import SelectionError
    from corrsteer_core.variants import feature_setting

    profile = _profile(tiny, tiny_saes)
    added = profile.with_setting(feature_setting(tiny_saes, 2, 7, 1.25))
    assert [s.layer for s in added.layers] == [1, 2, 3]
    new = added.setting(2)
    assert (new.feature, new.coefficient, new.hook_name) == (7, 1.25, tiny_saes.hook_names[2])
    assert new.fingerprint == tiny_saes.fingerprint(2)
    added.check_compatible(tiny, tiny_saes)
    replaced = added.with_setting(feature_setting(tiny_saes, 2, 9, 0.5))
    assert replaced.setting(2).feature == 9 and len(replaced.layers) == 3
    assert [s.layer for s in replaced.without_layer(1).layers] == [2, 3]
    with pytest.raises(ProfileError, match="no layer 0"):
        profile.without_layer(0)
    with pytest.raises(SelectionError, match=r"features 0\.\."):
        feature_setting(tiny_saes, 2, tiny_saes.d_sae(2), 1.0)
