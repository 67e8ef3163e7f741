"""Headless runs of the whole app (streamlit.testing AppTest) on the tiny random model and a small CSV task."""

from __future__ import annotations

import json
import time

import pytest
from streamlit.testing.v1 import AppTest

from app.ui import state
from corrsteer_core.runs import RunStore
from tests.app.conftest import NP_PRESET, STARTS_WITH, task_csv

PAGES = ("run", "correlations", "features", "steer", "profiles")


def ok(at: AppTest) -> AppTest:
    assert not at.exception, [e.value for e in at.exception]
    return at


def shown(elements: object) -> list[str]:
    """Texts of alerts as a reader sees them (the app escapes markdown in anything that comes from outside)."""
    return [e.value.replace("\\", "") for e in elements]  # type: ignore[attr-defined]


def errors(at: AppTest) -> list[str]:
    return shown(at.error)


def button(at: AppTest, label: str):
    found = [b for b in at.button if b.label == label]
    assert found, f"no button {label!r}; buttons: {[b.label for b in at.button]}"
    return found[0]


def go(at: AppTest, page: str) -> AppTest:
    return ok(at.switch_page(f"app_pages/{page}.py").run())


def upload_task(at: AppTest, data: bytes | None = None, name: str = "hi.csv") -> AppTest:
    at.radio(key=state.RUN_TASK_SOURCE).set_value("Upload a CSV / JSONL file").run()
    at.file_uploader(key=state.RUN_UPLOAD).set_value((name, data if data is not None else task_csv(), "text/csv"))
    ok(at.run())
    if data is None:  # the default task: score with the regex scorer (see STARTS_WITH)
        at.selectbox(key=state.RUN_UP_SCORER).set_value("regex").run()
        at.text_input(key=state.RUN_UP_SCORER_OPTIONS).set_value(STARTS_WITH)
        at.number_input(key=state.RUN_UP_MAX_NEW).set_value(8)
    return ok(at.run())


def run_selection(
    at: AppTest, *, n_train: int = 36, n_val: int = 12, n_test: int = 24, batch: int = 12
) -> AppTest:
    sizes = (
        (state.RUN_N_TRAIN, n_train),
        (state.RUN_N_VAL, n_val),
        (state.RUN_N_TEST, n_test),
        (state.RUN_BATCH, batch),
    )
    for key, value in sizes:
        at.number_input(key=key).set_value(value)
    ok(at.run())
    return ok(button(at, "Run selection").click().run())


def test_every_page_renders_without_a_run(at: AppTest) -> None:
    assert at.title[0].value == "Run a selection"
    assert at.selectbox(key=state.PRESET).value == "tiny-app"  # CORRSTEER_DEFAULT_PRESET
    for page in PAGES[1:]:
        go(at, page)
        assert not errors(at)
    assert any("No current profile" in i.value for i in at.info)
    go(at, "steer")
    assert any("No steering profile" in i.value for i in at.info)


def test_paired_tasks_offer_selection_on_one_half(at: AppTest) -> None:
    at.selectbox(key=state.RUN_TASK).set_value("safety")
    ok(at.run())
    half = at.checkbox(key=state.RUN_SELECT_HALF)
    assert half.value and "label = harmful" in half.label
    at.selectbox(key=state.RUN_TASK).set_value("arithmetic")
    ok(at.run())
    assert not [c for c in at.checkbox if c.key == state.RUN_SELECT_HALF]


def test_main_flow_run_correlations_features_steer_evaluate_export_import(at: AppTest) -> None:
    upload_task(at)
    assert any("72 items" in s.value for s in at.success)
    run_selection(at)
    assert not errors(at), errors(at)
    run_id = at.session_state[state.RUN_ID]
    selection = at.session_state[state.SELECTION]
    assert run_id and selection.profile.layers
    assert any("Run " in s.value for s in at.success)  # the job's notice

    go(at, "correlations")
    assert at.title[0].value == "Correlations" and not errors(at)
    assert at.metric[0].value == "36"
    assert len(at.dataframe) >= 2  # selected features, norm diagnostics
    first = selection.profile.layers[0]
    at.selectbox(key=state.CORR_PICK).set_value(f"layer {first.layer} · feature {first.feature}")
    ok(button(at, "Open in Features").click().run())
    assert at.title[0].value == "Features" and not errors(at)
    assert at.session_state[state.FOCUS] == (first.layer, first.feature)
    assert any(m.label == "Pearson r" for m in at.metric)
    assert any("not on Neuronpedia" in c.value for c in at.caption)

    go(at, "steer")
    assert at.title[0].value == "Steer" and not errors(at)
    editor_key = f"steer_editor_{at.session_state[state.EDITOR_VERSION]}"
    at.session_state[editor_key] = {"edited_rows": {0: {"enabled": False}}, "added_rows": [], "deleted_rows": []}
    ok(at.run())
    working = at.session_state[state.WORKING_PROFILE]
    assert not working.layers[0].enabled and all(s.enabled for s in working.layers[1:])
    ok(button(at, "Generate").click().run())
    tried = at.session_state[state.TRY_RESULT]
    assert tried["hash"] == working.content_hash() and isinstance(tried["steered"], str)
    ok(button(at, "Evaluate").click().run())
    content_hash, result = at.session_state[state.EVALUATION]
    assert content_hash == working.content_hash() and result.effects.n == 24
    assert any(m.label == "McNemar p" for m in at.metric)
    assert any("wrong → right" in t.label for t in at.tabs)
    assert any(e.label == "Saved evaluations of this run (1)" for e in at.expander)  # kept with the run
    assert RunStore(run_id).evaluations()[0]["profile_hash"] == working.content_hash()
    ok(button(at, "Scale sweep").click().run())
    assert list(at.session_state[state.SWEEP][1]["scale"]) == [0.0, 0.5, 1.0, 1.5, 2.0]

    go(at, "profiles")
    assert not errors(at)
    downloads = {b.label for b in at.get("download_button")}
    assert downloads >= {"Download JSON", "Download vectors (.safetensors)", "Download steering card (.json)"}
    assert "Download lm-eval steer file (.pt)" in downloads
    # a gguf download, or the one-line reason llama.cpp cannot hold this profile (layer 0)
    assert "Download llama.cpp control vector (.gguf)" in downloads or any(
        "No gguf export" in c.value for c in at.caption
    )
    at.text_input(key=state.PROFILES_NAME).set_value("my profile")
    ok(button(at, "Save to the library").click().run())
    assert any("Saved as my-profile.json" in text for text in shown(at.success))
    exported = json.loads((_profiles_dir() / "my-profile.json").read_text())
    assert exported["evaluation"]["n"] == 24  # the test evaluation travels with the exact settings it measured

    imported = dict(exported, name="imported", global_scale=0.5)
    at.file_uploader(key=state.PROFILES_UPLOAD).set_value(
        ("p.json", json.dumps(imported).encode(), "application/json")
    )
    ok(at.run())
    assert not errors(at) and any("valid profile" in text for text in shown(at.success))
    assert any(e.label.startswith("Steering card") for e in at.expander)  # the imported profile's card
    ok(button(at, "Use as the current profile").click().run())
    assert at.session_state[state.WORKING_PROFILE].global_scale == 0.5
    assert at.session_state[state.WORKING_PROFILE].name == "imported"
    at.selectbox(key=state.PROFILES_CMP_B).set_value("my-profile")
    ok(at.run())
    assert any("top-level settings differ" in c.value for c in at.caption)


def _profiles_dir():
    from corrsteer_core.storage import cache_root

    return cache_root() / "profiles"


@pytest.mark.parametrize(
    ("data", "template", "message"),
    [
        (task_csv(), "{nope} please", "nope"),  # template names a column the file does not have
        (b"prompt,answer\n", None, "no rows"),  # header only
        (b"prompt,answer\nh\xe9llo,a\nb,c\n", None, "is not UTF-8 text: byte 0xe9 on line 2"),  # Latin-1
    ],
)
def test_bad_task_files_show_an_error_and_start_nothing(
    at: AppTest, data: bytes, template: str | None, message: str
) -> None:
    upload_task(at, data)
    if template is not None:
        at.toggle(key=state.RUN_UP_USE_TEMPLATE).set_value(True).run()
        at.text_area(key=state.RUN_UP_TEMPLATE).set_value(template)
        ok(at.run())
    assert any(message in e for e in errors(at)), errors(at)
    runs = [b for b in at.button if b.label == "Run selection"]  # none when the file cannot even be previewed
    if runs and not runs[0].disabled:  # the form is complete but the task cannot be built: clicking shows it again
        ok(runs[0].click().run())
        assert any(message in e for e in errors(at)), errors(at)
    assert state.RUN_ID not in at.session_state and state.JOB not in at.session_state


def test_corrupt_or_foreign_profiles_are_rejected_and_change_nothing(at: AppTest) -> None:
    upload_task(at)
    run_selection(at)
    before = at.session_state[state.WORKING_PROFILE]
    go(at, "profiles")
    foreign = json.loads(before.to_json())
    foreign["model_id"] = "someone/else"
    wrong_site, absurd = json.loads(before.to_json()), json.loads(before.to_json())
    first = wrong_site["layers"][0]
    first["hook_name"] = f"blocks.{(first['layer'] + 1) % 4}.hook_resid_post"  # another block than its SAE's
    absurd["layers"][0]["coefficient"] = 1e308
    cases = [
        (b"\x00\x01 not a profile", "neither a profile JSON"),
        (b'{"version": 1, "preset": "x"', "not valid JSON"),
        (json.dumps(foreign).encode(), "someone/else"),
        (json.dumps({**json.loads(before.to_json()), "version": 99}).encode(), "version 99"),
        (json.dumps(wrong_site).encode(), "is not where this layer's SAE feature is steered"),
        (json.dumps(absurd).encode(), "coefficient is 1e+308; its magnitude may be at most 1e+06"),
        (b'{"provenance": ' + b"[" * 50_000 + b"]" * 50_000 + b"}", "nested deeper than Python can read"),
    ]
    for raw, message in cases:
        at.file_uploader(key=state.PROFILES_UPLOAD).set_value(("bad.json", raw, "application/json"))
        ok(at.run())
        assert any(message in e for e in errors(at)), (message, errors(at))
        assert not [b for b in at.button if b.label == "Use as the current profile"]
        assert at.session_state[state.WORKING_PROFILE] == before


def test_saved_run_reopens_without_recomputing(at: AppTest, monkeypatch: pytest.MonkeyPatch) -> None:
    upload_task(at)
    run_selection(at)
    run_id = at.session_state[state.RUN_ID]
    from app.ui import work

    def no_collection(*args: object, **kwargs: object) -> None:
        raise AssertionError("reopening a finished run must not collect again")

    monkeypatch.setattr(work, "collect_activations", no_collection)
    fresh = AppTest.from_file(str(at._script_path), default_timeout=120)
    ok(fresh.run())
    assert fresh.selectbox(key=state.RUN_PICK).value == run_id
    fresh.selectbox(key=state.RUN_VARIANT).set_value("P")  # pruning on validation: the task is rebuilt from disk
    ok(button(fresh, "Open with the method above").click().run())
    assert fresh.session_state[state.RUN_ID] == run_id
    details = fresh.session_state[state.SELECTION].details
    assert details is not None and "kept" in details.columns
    go(fresh, "correlations")
    assert not errors(fresh)
    assert any("Validation details" in e.label for e in fresh.expander)
    go(fresh, "run")  # the same run with O, its penalty and budget taken from Advanced options
    fresh.selectbox(key=state.RUN_VARIANT).set_value("O")
    fresh.number_input(key=state.RUN_LAM).set_value(2.0)
    fresh.number_input(key=state.RUN_BUDGET).set_value(24)
    ok(button(fresh, "Open with the method above").click().run())
    optimised = fresh.session_state[state.SELECTION].profile.provenance
    assert optimised.select is not None and optimised.select.optimize.lam == 2.0
    assert optimised.validation is not None and optimised.validation.generations <= 24


def test_neuronpedia_offline_says_so(at: AppTest) -> None:
    upload_task(at)
    run_selection(at)
    at.selectbox(key=state.PRESET).set_value(NP_PRESET)
    ok(at.run())
    assert state.RUN_ID not in at.session_state  # another preset: the run is closed
    run_selection(at)
    go(at, "features")
    assert any("not available offline" in i.value for i in at.info)


def test_threaded_job_reports_progress_and_can_be_cancelled(at: AppTest, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CORRSTEER_APP_INLINE_JOBS")
    upload_task(at)
    run_selection(at, n_train=40, n_val=8, n_test=16, batch=8)
    deadline = time.monotonic() + 120
    while state.RUN_ID not in at.session_state:
        assert time.monotonic() < deadline, "the background selection did not finish"
        job = at.session_state.get(state.JOB, None)
        if job is not None:
            assert job.thread is not None and job.thread.name.startswith("corrsteer-job")
        time.sleep(0.3)
        ok(at.run())
    assert state.JOB not in at.session_state

    run_selection(at, n_train=48, n_val=8, n_test=16, batch=1)  # 48 batches: time to press Cancel
    assert len(at.get("progress")) == 1
    ok(button(at, "Cancel").click().run())
    job = at.session_state.get(state.JOB, None)
    if job is not None:
        assert job.wait(60)
    ok(at.run())
    assert any("cancelled" in text for text in shown(at.warning)), shown(at.warning)
    assert state.JOB not in at.session_state


def test_steer_presets_validation_controls_and_test_items(at: AppTest) -> None:
    upload_task(at)
    run_selection(at)
    go(at, "steer")
    n_layers = len(at.session_state[state.WORKING_PROFILE].layers)
    ok(button(at, "None").click().run())
    assert at.session_state[state.WORKING_PROFILE].enabled == ()
    ok(button(at, "Single best").click().run())
    assert len(at.session_state[state.WORKING_PROFILE].enabled) == 1
    ok(button(at, "Validated").click().run())  # nothing validated yet: a readable error, nothing changes
    assert any("validation" in e for e in errors(at))
    assert len(at.session_state[state.WORKING_PROFILE].enabled) == 1
    ok(button(at, "All layers").click().run())
    assert len(at.session_state[state.WORKING_PROFILE].enabled) == n_layers

    ok(button(at, "Validate layers").click().run())
    table = at.session_state[state.VALIDATION]
    assert len(table) == n_layers and "kept" in table.columns
    kept = {int(layer) for layer in table.loc[table["kept"], "layer"]}
    assert {s.layer for s in at.session_state[state.WORKING_PROFILE].enabled} == kept
    ok(button(at, "All layers").click().run())
    ok(button(at, "Validated").click().run())
    assert {s.layer for s in at.session_state[state.WORKING_PROFILE].enabled} == kept

    at.radio(key=state.STEER_MODE).set_value("Test item").run()
    ok(button(at, "Generate").click().run())
    tried = at.session_state[state.TRY_RESULT]
    assert "base_correct" in tried and tried["target"] == "ai"

    ok(button(at, "Run controls").click().run())
    tested, report = at.session_state[state.CONTROLS]
    working = at.session_state[state.WORKING_PROFILE]
    assert tested == working.content_hash() and report.profiles["profile"] == working  # the profile as edited
    assert set(report.table()["condition"]) == {
        "profile",
        "random-directions",
        "shuffled-labels",
        "random-features",
    }
    assert at.success or at.warning  # the verdict


def test_embedded_preset_without_saes_says_how_to_prepare(at: AppTest) -> None:
    from corrsteer_core.presets import DEFAULT_PRESET, get_preset
    from corrsteer_core.saes import missing_embedded_layers

    if not missing_embedded_layers(get_preset(DEFAULT_PRESET)):
        pytest.skip("the embedded SAEs are prepared in this cache")
    at.selectbox(key=state.PRESET).set_value(DEFAULT_PRESET)
    ok(at.run())
    assert any("corrsteer prepare" in w for w in shown(at.warning))
