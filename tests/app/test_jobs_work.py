"""The background-job runner and the work functions, without Streamlit."""

from __future__ import annotations

import threading

import pytest

from app.ui import work
from app.ui.jobs import Job
from corrsteer_core.config import CollectConfig, GenerateConfig
from corrsteer_core.errors import CancelledError, TaskError
from corrsteer_core.loading import LoadedModel
from corrsteer_core.profile import LayerSetting, SteeringProfile
from corrsteer_core.saes import SAESet


def test_job_records_progress_and_returns_the_result() -> None:
    def work_fn(progress):
        for i in range(3):
            progress("count", i + 1, 3)
        return "done!"

    job = Job(label="count", work=work_fn, on_done=lambda r: None)
    job.run()
    assert job.snapshot() == ("count", 3, 3, "done") and job.result == "done!" and job.finished


def test_cancel_stops_a_threaded_job_at_its_next_progress_report() -> None:
    reached, release = threading.Event(), threading.Event()

    def work_fn(progress):
        progress("step", 0, 10)
        reached.set()
        release.wait(10)
        progress("step", 1, 10)  # the cancel token raises here
        raise AssertionError("a cancelled job must not get this far")

    job = Job(label="slow", work=work_fn, on_done=lambda r: None)
    job.thread = threading.Thread(target=job.run, daemon=True)
    job.thread.start()
    assert reached.wait(10)
    assert not job.finished
    job.cancel()
    release.set()
    assert job.wait(10)
    _, done, total, status = job.snapshot()
    assert status == "cancelled" and isinstance(job.error, CancelledError) and (done, total) == (1, 10)


def test_job_keeps_errors_for_the_script_thread() -> None:
    def work_fn(progress):
        raise TaskError("no such task")

    job = Job(label="bad", work=work_fn, on_done=lambda r: None)
    job.run()
    assert job.snapshot()[3] == "failed" and isinstance(job.error, TaskError)


def _profile(loaded: LoadedModel, saes: SAESet) -> SteeringProfile:
    layers = tuple(
        LayerSetting(layer=layer, feature=3, coefficient=8.0, hook_name=saes.hook_names[layer],
                     fingerprint=saes.fingerprint(layer))
        for layer in saes.layers
    )  # fmt: skip
    return SteeringProfile(preset=loaded.preset.name, model_id=loaded.preset.model.hf_id, d_model=loaded.d_model,
                           layers=layers)  # fmt: skip


def test_try_prompt_reuses_the_unsteered_reply_for_the_same_prompt(tiny: LoadedModel, tiny_saes: SAESet) -> None:
    profile = _profile(tiny, tiny_saes)
    first = work.try_prompt(tiny, tiny_saes, profile, "say hi", 6)
    assert first["hash"] == profile.content_hash() and first["max_new"] == 6
    off = profile.with_enabled(set())
    again = work.try_prompt(tiny, tiny_saes, off, "say hi", 6, {**first, "base": "REUSED"})
    assert again["base"] == "REUSED"
    assert work.try_prompt(tiny, tiny_saes, off, "say hi", 5, first)["base"] != "REUSED"
    unsteered = work.try_prompt(tiny, tiny_saes, off, "say hi", 6)
    assert unsteered["steered"] == unsteered["base"] == first["base"]  # nothing enabled: no steering


def test_generation_settings_follow_the_run() -> None:
    collect = CollectConfig(batch_size=4, max_new_tokens=3, constrained=True)
    gen = GenerateConfig.matching(collect)
    assert (gen.batch_size, gen.max_new_tokens, gen.constrained) == (4, 3, True)
    assert GenerateConfig.matching(None).batch_size == 16 and GenerateConfig.matching(collect, 8).batch_size == 8


def test_validation_needs_items(tiny: LoadedModel, tiny_saes: SAESet) -> None:
    with pytest.raises(Exception, match="validation items"):
        work.validate_layers_work(tiny, tiny_saes, _profile(tiny, tiny_saes), None, [], GenerateConfig(),
                                  lambda *a: None)  # fmt: skip
