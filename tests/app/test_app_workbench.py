"""AppTests of the researcher's workbench: building a profile by hand, per-half results, naming what is tested,
keeping one's place across reloads, no silent overwrite, the readable comparison, time estimates, the heatmap."""

from __future__ import annotations

import pytest
from streamlit.testing.v1 import AppTest

from app.ui import profile_builder, state
from tests.app.test_app_pages import button, errors, go, ok, run_selection, shown, upload_task


@pytest.fixture
def ran(at: AppTest) -> AppTest:
    upload_task(at)
    return run_selection(at)


def _other_candidate(at: AppTest, avoid: int | None = None) -> tuple[int, int]:
    """A (layer, feature) among the run's candidates that the profile does not steer."""
    frame = at.session_state[state.SELECTION].candidates_frame()
    steered = {(s.layer, s.feature) for s in at.session_state[state.WORKING_PROFILE].layers}
    for layer, feature in zip(frame["layer"].astype(int), frame["feature"].astype(int), strict=True):
        if (layer, feature) not in steered and layer != avoid:
            return layer, feature
    raise AssertionError("every candidate is already steered")


def test_build_a_profile_by_hand_from_every_page(ran: AppTest) -> None:
    at = ran
    run = at.session_state[state.SELECTION]
    layer, feature = _other_candidate(at)
    go(at, "correlations")
    at.selectbox(key=state.CORR_PICK).set_value(f"layer {layer} · feature {feature}")
    ok(button(at, "Add to the profile").click().run())
    profile = at.session_state[state.WORKING_PROFILE]
    assert profile.setting(layer).feature == feature
    added = profile.setting(layer)
    row = next(iter(run.candidates_frame().query("layer == @layer and feature == @feature").itertuples()))
    assert added.coefficient == pytest.approx(row.coefficient) and added.r == pytest.approx(row.r)
    assert any(f"Layer {layer} now steers feature {feature}" in s for s in shown(at.success))

    go(at, "features")  # any feature by layer and index, not only candidates
    top = 5
    at.number_input(key=state.FEATURES_ANY_FEATURE).set_value(top)
    any_layer = at.selectbox(key=state.FEATURES_ANY_LAYER).value
    ok(button(at, "Add to the profile").click().run())
    assert at.session_state[state.WORKING_PROFILE].setting(any_layer).feature == top

    go(at, "steer")
    assert not errors(at)
    n = len(at.session_state[state.WORKING_PROFILE].layers)
    at.selectbox(key=profile_builder.REMOVE_LAYER).set_value(any_layer)
    ok(button(at, "Remove from profile").click().run())
    working = at.session_state[state.WORKING_PROFILE]
    assert len(working.layers) == n - 1 and any_layer not in {s.layer for s in working.layers}
    at.selectbox(key=profile_builder.ADD_LAYER).set_value(any_layer)
    at.number_input(key=profile_builder.ADD_FEATURE).set_value(7)
    ok(button(at, "Add to profile").click().run())
    working = at.session_state[state.WORKING_PROFILE]
    assert working.setting(any_layer).feature == 7 and len(working.layers) == n

    first = working.layers[0].layer  # the strength slider and the coefficient cell
    slider = next(s for s in at.slider if s.label.startswith(f"L{first} ·"))
    ok(slider.set_value(0.5).run())
    assert at.session_state[state.WORKING_PROFILE].setting(first).scale == 0.5
    editor_key = f"steer_editor_{at.session_state[state.EDITOR_VERSION]}"
    at.session_state[editor_key] = {
        "edited_rows": {0: {"coefficient": 3.25}},
        "added_rows": [],
        "deleted_rows": [],
    }
    ok(at.run())
    edited = at.session_state[state.WORKING_PROFILE].setting(first)
    assert edited.coefficient == 3.25 and edited.scale == 0.5
    at.session_state[editor_key] = {"edited_rows": {0: {"coefficient": 1e9}}, "added_rows": [], "deleted_rows": []}
    ok(at.run())
    assert any("coefficient must be a finite number" in e for e in errors(at))


def test_halves_of_a_paired_task_are_measured_in_the_core() -> None:
    """EvaluationResult.groups: per half accuracy and flips, which add up to the whole."""
    from corrsteer_core.evaluate import compare_outcomes
    from corrsteer_core.steer import Outcome
    from corrsteer_core.tasks.base import TaskItem

    items = [
        TaskItem(id=f"i{k}", prompt="p", target="t", metadata={"language": "fr" if k % 2 else "en"})
        for k in range(8)
    ]
    base = [Outcome(i.id, "a", "a", k < 4) for k, i in enumerate(items)]
    steered = [Outcome(i.id, "b", "b", k % 2 == 1) for k, i in enumerate(items)]

    class _Task:
        name = "language"

    result = compare_outcomes(_Task(), items, base, steered)  # type: ignore[arg-type]
    halves = {g["group"]: g for g in result.groups("language")}
    assert halves["fr"]["pos"] == 2 and halves["fr"]["neg"] == 0 and halves["fr"]["steered_accuracy"] == 1.0
    assert halves["en"]["pos"] == 0 and halves["en"]["neg"] == 2 and halves["en"]["diff"] == -0.5
    assert result.groups("nope") == [] and result.groups(None) == []


def test_paired_task_shows_both_halves_in_evaluate_and_controls(at: AppTest) -> None:
    """An uploaded task with a metadata column is split by it like a paired task by its pair key."""
    upload_task(at)
    at.multiselect(key=state.RUN_UP_META).set_value(["group"])
    ok(at.run())
    run_selection(at)
    assert not errors(at), errors(at)
    go(at, "steer")
    ok(button(at, "Evaluate").click().run())
    _, result = at.session_state[state.EVALUATION]
    halves = result.groups("group")
    assert {h["group"] for h in halves} == {"g0", "g1", "g2"} and sum(h["n"] for h in halves) == 24
    assert (
        sum(h["pos"] for h in halves) == result.effects.pos and sum(h["neg"] for h in halves) == result.effects.neg
    )
    assert any("Per half" in m.value for m in at.markdown)
    tables = [d.value for d in at.dataframe if "group" in d.value.columns and "wrong → right" in d.value.columns]
    assert tables and set(tables[0]["group"]) == {"g0", "g1", "g2"}
    ok(button(at, "Run controls").click().run())
    tables = [d.value for d in at.dataframe if "condition" in d.value.columns and "group" in d.value.columns]
    assert tables and len(tables[0]) == 3 * 4  # four conditions, three groups each


def test_controls_test_the_profile_as_edited_name_it_and_say_which_runs(
    ran: AppTest, monkeypatch: pytest.MonkeyPatch
) -> None:
    from app.ui import jobs

    stages: list[str] = []
    original = jobs.Job.progress

    def spy(self: jobs.Job, stage: str, done: int, total: int) -> None:
        stages.append(stage)
        original(self, stage, done, total)

    monkeypatch.setattr(jobs.Job, "progress", spy)
    at = ran
    go(at, "steer")
    first = at.session_state[state.WORKING_PROFILE].layers[0].layer
    ok(next(s for s in at.slider if s.label.startswith(f"L{first} ·")).set_value(0.5).run())
    ok(button(at, "Evaluate").click().run())
    ok(button(at, "Run controls").click().run())
    working = at.session_state[state.WORKING_PROFILE]
    tested, report = at.session_state[state.CONTROLS]
    assert tested == working.content_hash() and report.profiles["profile"] == working
    assert (
        report.results["profile"].summary()["steered_accuracy"]
        == at.session_state[state.EVALUATION][1].summary()["steered_accuracy"]
    )  # Evaluate and the Controls' profile row agree
    assert report.profiles["random-directions"].setting(first).scale == 0.5  # dialled like the profile
    named = [m.value for m in at.markdown if m.value.startswith("**Tested:**")]
    assert len(named) == 2 and all(f"L{first} f{working.setting(first).feature} ×0\\.5" in n for n in named)
    assert {s.split(" · ")[0] for s in stages if " · " in s} >= {
        "profile",
        "random-directions",
        "shuffled-labels",
        "random-features",
    }


def test_reload_reopens_the_same_run_page_and_edited_profile(ran: AppTest) -> None:
    from tests.app.conftest import APP

    at = ran
    go(at, "steer")
    first = at.session_state[state.WORKING_PROFILE].layers[0].layer
    ok(next(s for s in at.slider if s.label.startswith(f"L{first} ·")).set_value(0.5).run())
    layer, feature = _other_candidate(at, avoid=first)
    at.selectbox(key=profile_builder.ADD_LAYER).set_value(layer)
    at.number_input(key=profile_builder.ADD_FEATURE).set_value(feature)
    ok(button(at, "Add to profile").click().run())
    ok(at.run())
    edited = at.session_state[state.WORKING_PROFILE]
    params = dict(at.query_params)
    assert params["run"] == at.session_state[state.RUN_ID] and params["variant"] == "A"

    fresh = AppTest.from_file(str(APP), default_timeout=120)  # a reload: a new session with the same URL
    for key, value in params.items():
        fresh.query_params[key] = value
    fresh.switch_page("app_pages/steer.py")
    ok(fresh.run())
    assert fresh.title[0].value == "Steer"
    assert fresh.session_state[state.RUN_ID] == at.session_state[state.RUN_ID]
    rebuilt = fresh.session_state[state.WORKING_PROFILE]
    assert rebuilt.content_hash() == edited.content_hash()
    assert rebuilt.setting(first).scale == 0.5 and rebuilt.setting(layer).feature == feature

    broken = AppTest.from_file(str(APP), default_timeout=120)  # a mangled link: a notice, an empty session
    broken.query_params["run"] = "../../etc"
    ok(broken.run())
    assert state.RUN_ID not in broken.session_state
    assert any("could not be reopened" in w for w in shown(broken.warning))


def test_run_status_is_fresh_and_an_empty_upload_keeps_the_form(ran: AppTest) -> None:
    at = ran
    from corrsteer_core.runs import list_runs

    picked = at.selectbox(key=state.RUN_PICK).value
    meta = next(r for r in list_runs() if r.run_id == picked)
    expected = "complete" if meta.complete else "incomplete (resumable)"
    assert any(c.value.startswith(f"Status: {expected} ·") for c in at.caption)  # read fresh from disk
    at.file_uploader(key=state.RUN_UPLOAD).set_value(("empty.csv", b"", "text/csv"))
    ok(at.run())
    assert any("empty.csv is empty" in e for e in errors(at))
    assert any(h.value == "Splits" for h in at.subheader) and any(h.value == "Saved runs" for h in at.subheader)
    assert next(b for b in at.button if b.label == "Run selection").disabled


def test_saving_never_replaces_a_profile_without_asking(ran: AppTest) -> None:
    from corrsteer_core import profile_store

    at = ran
    go(at, "profiles")
    first = at.text_input(key=state.PROFILES_NAME).value
    assert at.session_state[state.RUN_ID] in first  # the run is part of the default name
    ok(button(at, "Save to the library").click().run())
    assert first in profile_store.saved_profiles()
    second = at.text_input(key=state.PROFILES_NAME).value
    assert second != first and second not in profile_store.saved_profiles()  # a fresh default: unique again
    at.text_input(key=state.PROFILES_NAME).set_value(first)
    ok(button(at, "Save to the library").click().run())
    assert any("already in the library" in w for w in shown(at.warning))
    before = profile_store.saved_profiles()[first].read_bytes()
    ok(button(at, "Keep both").click().run())
    assert f"{first}-2" in profile_store.saved_profiles()
    assert profile_store.saved_profiles()[first].read_bytes() == before
    at.text_input(key=state.PROFILES_NAME).set_value(first)
    ok(button(at, "Save to the library").click().run())
    ok(button(at, f"Replace {first}").click().run())
    assert any(f"Saved as {first}.json" in s for s in shown(at.success))


def test_readable_comparison_on_request_with_sampling_and_flags(ran: AppTest) -> None:
    from app.ui import try_view

    at = ran
    go(at, "steer")
    assert not at.checkbox(key=state.STEER_LIVE).value  # generation on request by default
    at.text_area(key=state.STEER_PROMPT).set_value("say <b>hi</b> **now**")
    ok(button(at, "Generate").click().run())  # streamed: one greedy reply each
    tried = at.session_state[state.TRY_RESULT]
    working = at.session_state[state.WORKING_PROFILE]
    assert tried["hash"] == working.content_hash() and tried["prompt"] == "say <b>hi</b> **now**"
    assert any(t.value == "say <b>hi</b> **now**" for t in at.text)  # the prompt above the replies, as text
    assert all("<b>" not in m.value and "<del" not in m.value for m in at.markdown)  # inert, nothing struck
    first = working.layers[0].layer
    ok(next(s for s in at.slider if s.label.startswith(f"L{first} ·")).set_value(0.0).run())
    assert at.session_state[state.TRY_RESULT] == tried  # an edit does not cost a generation
    assert any("earlier version of the settings" in c.value for c in at.caption)

    at.number_input(key=try_view.TEMPERATURE).set_value(1.5)
    at.number_input(key=try_view.SAMPLES).set_value(3)
    ok(button(at, "Generate").click().run())
    sampled = at.session_state[state.TRY_RESULT]
    assert len(sampled["base_samples"]) == 3 and len(sampled["steered_samples"]) == 3
    assert "temperature 1.5" in sampled["sampling"] and any(m.value == "Sample 3 of 3" for m in at.markdown)
    ok(button(at, "Generate").click().run())
    assert at.session_state[state.TRY_RESULT]["steered_samples"] == sampled["steered_samples"]  # same seed

    degenerate = dict(sampled, base="", steered="a a a a a a a a a a a a", base_samples=None, steered_samples=None)
    at.session_state[state.TRY_RESULT] = degenerate
    ok(at.run())
    assert sum("Degenerate reply" in w for w in shown(at.warning)) == 2

    at.radio(key=state.STEER_MODE).set_value("Test item").run()
    ok(button(at, "Generate").click().run())
    item = at.session_state[state.TRY_RESULT]
    assert any(t.value == item["prompt"] for t in at.text) and "base_correct" in item


def test_time_estimates_and_eta() -> None:
    import time

    from app.ui import timing, widgets
    from app.ui.jobs import Job

    assert (
        timing.duration(42) == "42 s"
        and timing.duration(200) == "3 min 20 s"
        and timing.duration(3900) == "1 h 05 min"
    )
    assert timing.estimate_seconds(32, 10, 80.0) == 4.0
    assert "~4 s" in timing.estimate_text(32, 10, 80.0) and "32 replies × up to 10 tokens" in timing.estimate_text(
        32, 10, 80.0
    )
    assert timing.eta_seconds(10.0, 0, 5) is None and timing.eta_seconds(10.0, 2, 6) == 20.0
    job = Job(label="x", work=lambda p: None, on_done=lambda r: None, estimate=90.0)
    assert job.eta() is None and "estimated 1 min 2" in widgets._eta(job)
    job.progress("collect", 0, 4)
    time.sleep(0.2)
    job.progress("collect", 1, 4)
    eta = job.eta()
    assert eta is not None and 0.4 < eta < 3.0 and "left in this stage" in widgets._eta(job)
    job.progress("select", 0, 2)  # a new stage starts its own pace
    assert job.eta() is None


def test_estimated_cost_is_shown_before_long_jobs(ran: AppTest) -> None:
    at = ran
    assert any("Estimated cost: at most" in c.value and "tokens/s measured here" in c.value for c in at.caption)
    go(at, "steer")
    costs = [c.value for c in at.caption if "Estimated cost" in c.value]
    assert any(c.startswith("Evaluate") and "48 replies" in c for c in costs), costs  # 24 test items, twice
    assert any(c.startswith("Controls") for c in costs)


def test_small_things_a_newcomer_hit(ran: AppTest) -> None:
    from pathlib import Path

    from app.ui.evaluation_view import accuracy_delta
    from app.ui.profile_edit import steers_phrase

    at = ran
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    assert "corrsteer app --port" in readme
    assert steers_phrase([20]) == "steers layer 20" and steers_phrase([3, 5]) == "steers layers 3, 5"
    assert steers_phrase([], "steering") == "steering no layer"
    assert any("Selected profile steers layer" in s for s in shown(at.success))
    variant = at.selectbox(key=state.RUN_VARIANT)
    assert all(len(label) <= 32 for label in variant.options)  # short enough for the dropdown
    assert accuracy_delta(0.0) is None and accuracy_delta(0.0004) is None and accuracy_delta(0.05) == "+5.0%"
    go(at, "steer")
    ok(button(at, "None").click().run())  # nothing steered: the same replies, a change of exactly zero
    ok(button(at, "Evaluate").click().run())
    metric = next(m for m in at.metric if m.label == "Accuracy (unsteered → steered)")
    assert at.session_state[state.EVALUATION][1].effects.diff == 0 and not metric.delta  # no "+0.0 %"


def test_heatmap_is_fitted_to_the_data_with_the_chance_level(ran: AppTest) -> None:
    at = ran
    go(at, "correlations")
    run = at.session_state[state.SELECTION]
    chart = at.get("plotly_chart")[0]
    import json as _json

    spec = _json.loads(chart.proto.spec)
    squares, diamonds = spec["data"][0], spec["data"][1]
    r = run.candidates_frame()["r"]
    assert squares["marker"]["cmax"] >= r.max() and squares["marker"]["cmin"] <= r.min()
    assert diamonds["name"] == "chance" and len(diamonds["y"]) >= 1
    layers = sorted(int(k) for k in spec["layout"]["yaxis"]["tickvals"])
    assert layers == [0, 1, 2, 3]  # the tiny model's layers and no others
    assert any(c.value.startswith("Chance: with labels shuffled") for c in at.caption)
