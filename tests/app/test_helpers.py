"""Pure helpers of the app: HTML escaping, diffs, the settings table, profile diffs, task specs, scales."""

from __future__ import annotations

import dataclasses
import json

import pandas as pd
import pytest

from app.ui import text
from app.ui.profile_diff import compare_fields, compare_profiles
from app.ui.steer_table import apply_frame, preset_layers, settings_frame
from app.ui.taskspec import CustomColumns, TaskSpec
from app.ui.work import parse_scales
from corrsteer_core.errors import ConfigError, ProfileError
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
    assert "&lt;script&gt;" in text.highlight_tokens_html([evil], [0.5])
    for side in ("before", "after"):
        html = text.diff_html(evil, evil + " <img src=x onerror=alert(2)>", side)
        assert "<script>" not in html and "<img" not in html


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
    assert "<del" in text.diff_html("the cat sat", "the dog sat", "before")
    assert "<mark" in text.diff_html("the cat sat", "the dog sat", "after")
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
    kept = dataclasses.replace(profile, provenance={"kept_layers": [1, 2]})
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


def test_task_spec_round_trips_through_run_metadata() -> None:
    custom = CustomColumns(
        path="/tmp/x.csv", answer_column="a", scorer="contains", prompt_column="p", metadata_columns=("g",)
    )
    spec = TaskSpec(name="t", n_train=10, n_val=2, n_test=3, seed=4, custom=custom)
    again = TaskSpec.from_dict(dataclasses.asdict(spec))
    assert again == spec and again.to_json() == spec.to_json()
    assert "uploaded" in spec.label


def test_parse_scales() -> None:
    assert parse_scales("1, 0, 0.5;2") == [0.0, 0.5, 1.0, 2.0]
    with pytest.raises(ConfigError, match="abc"):
        parse_scales("1, abc")
    with pytest.raises(ConfigError):
        parse_scales(" , ")
    for bad in ("nan", "1, inf", ",".join(["1"] * 13)):
        with pytest.raises(ConfigError):
            parse_scales(bad)


def test_paired_task_selects_on_one_half_in_app_and_core():
    """The Run page's "select on the harmful half" reaches the split and the CLI's view of the run."""
    from corrsteer_core.experiment import resolve_splits, resolve_task
    from corrsteer_core.tasks import list_tasks

    info = {i.name: i for i in list_tasks()}
    assert info["safety"].select_where == (("label", "harmful"),) and not info["arithmetic"].select_where
    spec = TaskSpec(name="safety", n_train=40, n_val=20, n_test=20, select_where=info["safety"].select_where)
    splits = spec.build_splits(spec.build_task())
    assert {i.metadata["label"] for i in splits.train} == {"harmful"} and len(splits.train) == 20
    assert {i.metadata["label"] for i in splits.test} == {"harmful", "harmless"}
    core_task, core_split = spec.core_specs()
    assert core_split.select_where == {"label": "harmful"}
    theirs = resolve_splits(resolve_task(core_task), core_split)
    assert [i.id for i in theirs.train] == [i.id for i in splits.train]
    assert TaskSpec.from_core(core_task.to_dict(), core_split.to_dict()) == spec
    assert TaskSpec.from_dict(json.loads(spec.to_json())) == spec and "selected on label=harmful" in spec.label
    nothing = dataclasses.replace(spec, select_where=(("label", "knitting"),))
    with pytest.raises(ConfigError, match="no selection item matches"):
        nothing.build_splits(nothing.build_task())


def test_app_and_core_task_specs_agree(tmp_path):
    """A run started in the app can be evaluated from the CLI (and vice versa): same task, same split."""
    from corrsteer_core.experiment import SplitSpec, resolve_splits, resolve_task
    from corrsteer_core.experiment import TaskSpec as CoreTaskSpec

    spec = TaskSpec(name="arithmetic", n_train=30, n_val=10, n_test=20, seed=3, limit=80)
    core_task, core_split = spec.core_specs()
    assert core_split == SplitSpec(n_train=30, n_val=10, n_test=20, seed=3)
    ours = spec.build_splits(spec.build_task())
    theirs = resolve_splits(resolve_task(core_task), core_split)
    assert [i.id for i in ours.test] == [i.id for i in theirs.test]
    back = TaskSpec.from_core(core_task.to_dict(), core_split.to_dict())
    assert back.core_specs() == (core_task, core_split)
    csv = tmp_path / "t.csv"
    csv.write_text("q,a\nsay hi,a\nsay yo,o\n", encoding="utf-8")
    custom = CustomColumns(
        path=str(csv), answer_column="a", scorer="regex", prompt_column="q", scorer_options='{"pattern": "(a)"}'
    )
    spec = TaskSpec(name="mine", n_train=1, n_val=0, n_test=1, custom=custom)
    core_task, _ = spec.core_specs()
    assert isinstance(core_task, CoreTaskSpec) and core_task.custom["scorer_options"] == {"pattern": "(a)"}
    assert [i.prompt for i in resolve_task(core_task).items] == [i.prompt for i in spec.build_task().items]
    assert TaskSpec.from_core(core_task.to_dict(), {"n_train": 1, "n_val": 0, "n_test": 1}) == spec
