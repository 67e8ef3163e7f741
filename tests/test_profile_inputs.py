"""Imported profiles that would steer the wrong place, or steer absurdly, are refused with a message that says so;
profile files in odd encodings or shapes are read safely."""

from __future__ import annotations

import dataclasses
import json

import pytest

from corrsteer_core.errors import ProfileError
from corrsteer_core.profile import LayerSetting, SteeringProfile, load_profile
from corrsteer_core.steer import generate_texts, profile_vectors


def _profile(tiny, saes, *, layer: int = 2, site: str = "sae", **setting: object) -> SteeringProfile:
    values = {
        "layer": layer,
        "feature": 5,
        "coefficient": 1.0,
        "hook_name": saes.read_site(layer, site),
        "sae_id": saes.sae_ids[layer],
        "fingerprint": saes.fingerprint(layer),
        **setting,
    }
    return SteeringProfile(
        preset=tiny.preset.name,
        model_id=tiny.preset.model.hf_id,
        d_model=tiny.d_model,
        layers=(LayerSetting(**values),),  # type: ignore[arg-type]
        site=site,
    )


def test_a_feature_steered_at_another_blocks_hook_is_refused(tiny, tiny_saes):
    _profile(tiny, tiny_saes).check_compatible(tiny, tiny_saes)
    wrong = _profile(tiny, tiny_saes, hook_name="blocks.0.hook_resid_post")
    with pytest.raises(ProfileError) as info:
        wrong.check_compatible(tiny, tiny_saes)
    assert str(info.value) == (
        "layer 2: hook_name 'blocks.0.hook_resid_post' is not where this layer's SAE feature is steered "
        "('blocks.2.hook_resid_post' for site=sae); a feature may only be added where its SAE reads"
    )
    with pytest.raises(ProfileError, match="is not where"):
        profile_vectors(tiny, tiny_saes, wrong)  # every steering path checks it


def test_the_block_input_convention_is_checked_too(tiny, tiny_saes):
    _profile(tiny, tiny_saes, site="block_input").check_compatible(tiny, tiny_saes)
    mixed = _profile(tiny, tiny_saes, site="block_input", hook_name="blocks.2.hook_resid_post")
    with pytest.raises(ProfileError, match=r"'blocks\.2\.hook_resid_pre' for site=block_input"):
        mixed.check_compatible(tiny, tiny_saes)


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("coefficient", 1e308, "layer 2: coefficient is 1e+308; its magnitude may be at most 1e+06"),
        ("scale", -5000.0, "layer 2: scale is -5000; its magnitude may be at most 1000"),
        ("sae_id", 5, "layer 2: sae_id must be a string, got 5"),
    ],
)
def test_absurd_numbers_in_a_file_are_refused_on_reading(tiny, tiny_saes, field, value, message):
    data = json.loads(_profile(tiny, tiny_saes).to_json())
    data["layers"][0][field] = value
    with pytest.raises(ProfileError) as info:
        SteeringProfile.from_dict(data)
    assert str(info.value) == message
    with pytest.raises(ProfileError, match="global_scale is 10000; its magnitude may be at most 1000"):
        _profile(tiny, tiny_saes).with_global_scale(1e4)


def test_a_vector_out_of_proportion_to_the_residual_stream_is_refused(tiny, tiny_saes):
    from corrsteer_core.diagnostics import residual_scale

    typical = residual_scale(tiny, ["blocks.2.hook_resid_post"])["blocks.2.hook_resid_post"]
    norm = float(tiny_saes.directions(2, [5])[0].norm())
    fine = _profile(tiny, tiny_saes, coefficient=50 * typical / norm)  # 50x: collapses, but it is steering
    fine.check_compatible(tiny, tiny_saes)
    huge = dataclasses.replace(fine, global_scale=4.0)  # 200x: the vector is the residual stream
    with pytest.raises(ProfileError) as info:
        huge.check_compatible(tiny, tiny_saes)
    message = str(info.value)
    assert message.startswith("layer 2: the steering vector at blocks.2.hook_resid_post has norm ")
    assert "200x the model's typical residual norm there" in message and "at most 100x" in message
    with pytest.raises(ProfileError, match="typical residual norm"):  # refused before anything is generated
        generate_texts(tiny, ["hello"], vectors=profile_vectors(tiny, tiny_saes, huge))


def test_residual_scale_is_measured_once(tiny):
    from corrsteer_core.diagnostics import residual_scale

    first = residual_scale(tiny, ["blocks.1.hook_resid_post", "blocks.1.hook_resid_pre"])
    assert all(v > 0 for v in first.values())
    assert residual_scale(tiny, ["blocks.1.hook_resid_post"]) == {"blocks.1.hook_resid_post": first[
        "blocks.1.hook_resid_post"]}  # fmt: skip
    assert set(tiny.residual_norms) >= set(first)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"name": 5}, "name must be a string, got 5"),
        ({"model_id": []}, "model_id must be a non-empty string, got []"),
        ({"evaluation": "x"}, "evaluation must be a mapping or null, got str"),
        ({"provenance": {"run_id": "../../etc"}}, "run_id may hold only letters, digits"),
    ],
)
def test_wrong_types_in_a_profile_file_are_refused(tiny, tiny_saes, changes, message):
    data = {**json.loads(_profile(tiny, tiny_saes).to_json()), **changes}
    with pytest.raises(ProfileError, match=message.replace("[", r"\[").replace("]", r"\]")):
        SteeringProfile.from_dict(data)


def test_profile_bytes_in_odd_encodings(tiny, tiny_saes, tmp_path):
    profile = dataclasses.replace(_profile(tiny, tiny_saes), name="caf\u00e9")
    text = profile.to_json()
    assert load_profile(b"\xef\xbb\xbf" + text.encode()) == profile  # a UTF-8 byte-order mark is harmless
    assert load_profile(b"\n  " + text.encode()) == profile
    with pytest.raises(ProfileError, match="profile is not UTF-8 text"):
        load_profile(json.dumps(profile.to_dict(), ensure_ascii=False).encode("latin-1"))
    with pytest.raises(ProfileError, match="nested deeper than Python can read"):
        load_profile(b'{"a": ' + b"[" * 50_000 + b"]" * 50_000 + b"}")
    path = tmp_path / "p.safetensors"
    profile.vectors_safetensors(tiny_saes, path)
    assert load_profile(path) == profile


def test_oversized_profile_files_are_refused_unread(tiny, tiny_saes, tmp_path, monkeypatch):
    from corrsteer_core import profile as profile_module

    monkeypatch.setattr(profile_module, "MAX_PROFILE_BYTES", 1000)
    path = tmp_path / "big.json"
    path.write_text(" " * 2000)
    with pytest.raises(ProfileError, match=r"the size of big\.json in bytes is 2,000; at most 1,000 is allowed"):
        load_profile(path)
