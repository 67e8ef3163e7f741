"""Pure helpers of the app: HTML escaping, diffs, the settings table, profile diffs, task specs, scales."""

from __future__ import annotations

import dataclasses
import html as html_module
import re

import pandas as pd
import pytest

from app.ui import text
from app.ui.profile_diff import compare_fields, compare_profiles
from app.ui.steer_table import apply_frame, preset_layers, settings_frame
from app.ui.task_form import json_object
from app.ui.work import parse_scales
from corrsteer_core.errors import ConfigError, ProfileError, TaskError
from corrsteer_core.metadata import Provenance
from corrsteer_core.profile import LayerSetting, SteeringProfile


def _profile(**kw: object) -> SteeringProfile:
    layers = tuple(
        LayerSetting(
            layer=layer,
            feature=layer + 3,
            coefficient=1.5,
            hook_name=f"blocks.{layer}.hook_resid_post",
            r=0.1 * (layer + 1),
            score=0.1 * (layer + 1),
        )
        for layer in range(4)
    )
    return SteeringProfile(preset="tiny", model_id="tiny-llama", d_model=32, layers=layers, **kw)  # type: ignore[arg-type]


def test_generated_text_is_escaped_in_every_html_rendering() -> None:
    evil = "<script>alert(1)</script>"
    assert "<script>" not in text.highlight_tokens_html([evil, "ok"], [1.0, 0.0])
    assert "&#60;script&#62;" in text.highlight_tokens_html([evil], [0.5])
    for side in ("before", "after"):
        html = text.diff_html(evil, evil + " <img src=x onerror=alert(2)>", side)
        assert "<script>" not in html and "<img" not in html


def test_html_renderings_leave_no_markdown_to_parse() -> None:
    evil = "Hello\r\n\n![x](http://127.0.0.1:1/p.png) **b** `c` # h"
    safe = text.inert_html(evil)
    assert safe.count("<br>") == 2
    bare = re.sub(r"&#\d+;|<br>", "", safe)
    assert not any(c in bare for c in "\n\r![]()*`<>#&")
    assert html_module.unescape(safe.replace("<br>", "\n")) == evil.replace("\r\n", "\n")
    for side in ("before", "after"):
        rendered = text.diff_html("Hello", evil, side) + text.diff_html(evil, "Hello", side)
        assert "\n" not in rendered and "![" not in rendered and "](" not in rendered


def test_markdown_from_outside_is_made_inert() -> None:
    evil = "![img](http://example.com/x.png) [link](http://e.com) <b>bold</b> $x^2$ **strong**"
    safe = text.md(evil)
    for char in "![]()<>$*":  # every markdown-active character arrives escaped
        assert all(safe[i - 1] == "\\" for i, c in enumerate(safe) if c == char), char
    assert safe.replace("\\", "") == evil  # only escapes were added


def test_highlight_opacity_follows_the_activation() -> None:
    html = text.highlight_tokens_html(["a", "b", "c"], [0.0, 1.0, 2.0])
    assert "rgba(221,107,32,0.00)" in html and "rgba(221,107,32,0.50)" in html and "rgba(221,107,32,1.00)" in html
    with pytest.raises(ValueError):
        text.highlight_tokens_html(["a"], [1.0, 2.0])


def test_diff_marks_added_and_removed_words() -> None:
    pieces = text.diff_words("the cat sat", "the dog sat")
    assert ("removed", "cat") in pieces and ("added", "dog") in pieces
    before = text.diff_html("the cat sat", "the dog sat", "before")
    assert "<del" not in before and '#fed7d7" title="not in the steered reply">cat</mark>' in before  # readable
    assert '#c6f6d5" title="not in the unsteered reply">dog</mark>' in text.diff_html(
        "the cat sat", "the dog sat", "after"
    )
    assert "<mark" not in text.diff_html("same", "same", "after")
    assert text.token_label("\n") == "⏎" and text.token_label("") == "∅"


def test_settings_table_round_trip_applies_enable_and_scale() -> None:
    profile = _profile()
    frame = settings_frame(profile)
    assert list(frame.columns) == ["layer", "feature", "r", "coefficient", "enabled", "scale"]
    assert apply_frame(profile, frame) is profile  # nothing edited: the same profile
    frame.loc[frame["layer"] == 1, "enabled"] = False
    frame.loc[frame["layer"] == 2, "scale"] = 0.5
    edited = apply_frame(profile, frame)
    assert [s.layer for s in edited.enabled] == [0, 2, 3]
    assert edited.setting(2).scale == 0.5 and edited.setting(0).feature == 3
    frame.loc[frame["layer"] == 3, "scale"] = float("inf")
    with pytest.raises(ProfileError):
        apply_frame(profile, frame)


def test_enable_presets() -> None:
    profile = _profile()
    assert preset_layers("all", profile) is None
    assert preset_layers("none", profile) == set()
    assert preset_layers("single", profile) == {3}  # highest score
    with pytest.raises(ProfileError, match="validation"):
        preset_layers("validated", profile)
    kept = dataclasses.replace(profile, provenance=Provenance(kept_layers=(1, 2)))
    assert preset_layers("validated", kept) == {1, 2}
    details = pd.DataFrame({"layer": [0, 1], "kept": [True, False]})
    assert preset_layers("validated", profile, details) == {0}
    with pytest.raises(ProfileError):
        preset_layers("bogus", profile)


def test_compare_profiles_flags_what_steers_differently() -> None:
    a = _profile()
    b = a.with_layer(1, scale=2.0).with_enabled({0, 1}).with_global_scale(0.5)
    layers = compare_profiles(a, b)
    assert list(layers["layer"]) == [0, 1, 2, 3]
    assert list(layers["differs"]) == [False, True, True, True]
    fields = compare_fields(a, b).set_index("field")
    assert bool(fields.loc["global_scale", "differs"]) and not bool(fields.loc["model_id", "differs"])
    off = a.with_enabled(set())
    assert not compare_profiles(off, off.with_layer(2, scale=3.0))["differs"].any()  # disabled on both sides


def test_form_reads_json_objects() -> None:
    assert json_object("", "task options", "{}") == {}
    assert json_object('{"digits": 3}', "task options", "{}") == {"digits": 3}
    for bad in ("[1]", "{digits: 3}"):
        with pytest.raises(TaskError, match="task options must be a JSON object"):
            json_object(bad, "task options", '{"digits": 3}')


def test_parse_scales() -> None:
    assert parse_scales("1, 0, 0.5;2") == [0.0, 0.5, 1.0, 2.0]
    with pytest.raises(ConfigError, match="abc"):
        parse_scales("1, abc")
    with pytest.raises(ConfigError):
        parse_scales(" , ")
    for bad in ("nan", "1, inf", ",".join(["1"] * 13)):
        with pytest.raises(ConfigError):
            parse_scales(bad)
