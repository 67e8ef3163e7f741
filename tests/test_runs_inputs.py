"""Run folders under stress: damaged files give advice that works when followed, and two processes asking for
the same run do the work once (the second is told who holds it; a killed holder leaves no stale lock)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from corrsteer_core.collect import collect_activations
from corrsteer_core.config import CollectConfig
from corrsteer_core.errors import CorrSteerError, LockedError
from corrsteer_core.runs import RunStore
from corrsteer_core.storage import exclusive_lock
from tests.helpers import toy_task, write_preset_file


def _damage(store: RunStore, what: str) -> None:
    if what == "batch records":
        (store.folder / "batches" / "batch_00001.json").write_text('[{"item_id": "toy-')
    elif what == "batch tensors":
        (store.folder / "batches" / "batch_00001.safetensors").unlink()
    elif what == "statistics":
        path = store.folder / "stats.safetensors"
        path.write_bytes(path.read_bytes()[:100])
    else:
        (store.folder / "run.json").write_text('{"run_id": 5}')


@pytest.mark.parametrize("what", ["batch records", "batch tensors", "statistics", "metadata"])
def test_a_damaged_run_says_how_to_recover_and_the_advice_works(tiny, tiny_saes, tmp_path, monkeypatch, what):
    monkeypatch.setenv("CORRSTEER_CACHE", str(tmp_path / "cache"))
    task, cfg = toy_task(24), CollectConfig(batch_size=8)
    first = collect_activations(tiny, tiny_saes, task, task.items, cfg)
    store = RunStore(first.run_id)
    _damage(store, what)
    with pytest.raises(CorrSteerError) as info:
        collect_activations(tiny, tiny_saes, task, task.items, cfg)
    advice = f"delete the run folder {store.folder} and run the same command again to collect it afresh"
    assert str(info.value).endswith(advice) and "\n" not in str(info.value)
    shutil.rmtree(store.folder)  # follow the advice
    again = collect_activations(tiny, tiny_saes, task, task.items, cfg)
    assert again.run_id == first.run_id and again.n == 24
    a, b = first.stats.state_dict(), again.stats.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)  # the same statistics as before the damage


def test_a_run_id_is_never_a_path(tmp_path, monkeypatch):
    monkeypatch.setenv("CORRSTEER_CACHE", str(tmp_path / "cache"))
    with pytest.raises(CorrSteerError, match="is not a run id"):
        RunStore("../../etc")


def test_the_lock_refuses_a_second_holder_and_dies_with_its_process(tmp_path):
    path = tmp_path / "x.lock"
    with (
        exclusive_lock(path),
        pytest.raises(LockedError, match=rf"^pid {os.getpid()} \(since \d\d:\d\d:\d\d\)$"),
        exclusive_lock(path),
    ):
        pass
    with exclusive_lock(path):  # released on leaving the block
        pass


_COLLECT = """
import sys, time
from pathlib import Path
from corrsteer_core.collect import collect_activations
from corrsteer_core.config import CollectConfig
from corrsteer_core.errors import CorrSteerError
from corrsteer_core.loading import load_model
from corrsteer_core.saes import load_saes
from corrsteer_core.tasks import custom_task

hold = Path(sys.argv[2]) if len(sys.argv) > 2 else None
loaded = load_model("tiny-test", device="cpu")
saes = load_saes(loaded)
task = custom_task(sys.argv[1], name="vowels", prompt_column="prompt", answer_column="answer", scorer="contains",
                   max_new_tokens=4)

def progress(stage, done, total):
    if hold is not None and done == 1:  # the first batch is checkpointed: wait here, holding the run
        (hold / "holding").write_text("yes")
        while not (hold / "release").exists():
            time.sleep(0.05)

try:
    run = collect_activations(loaded, saes, task, task.items, CollectConfig(batch_size=8), progress=progress)
except CorrSteerError as exc:
    print(f"error: {exc}", file=sys.stderr)
    sys.exit(2)
print(run.run_id, run.n)
"""


@pytest.fixture()
def collector(tiny_spec, tmp_path):
    """Start a real process collecting the same run; with a folder it pauses after the first batch."""
    home = tmp_path / "home"
    home.mkdir()
    data = tmp_path / "vowels.csv"
    data.write_text("prompt,answer\n" + "".join(f"say hi please {i},{'aeiou'[i % 5]}\n" for i in range(24)))
    script = tmp_path / "collect.py"
    script.write_text(_COLLECT)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "XDG_"))}
    env.update(
        HOME=str(home),  # nothing may be written there
        HF_HUB_OFFLINE="1",
        CORRSTEER_CACHE=str(tmp_path / "cache"),
        CORRSTEER_PRESETS=str(write_preset_file(tiny_spec, tmp_path / "presets.yaml")),
        PYTHONPATH=str(Path(__file__).resolve().parents[1]),
    )

    started: list[subprocess.Popen[str]] = []

    def start(hold: Path | None = None) -> subprocess.Popen[str]:
        args = [sys.executable, str(script), str(data), *([str(hold)] if hold else [])]
        started.append(subprocess.Popen(args, env=env, text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE))
        return started[-1]

    yield start
    for process in started:  # a failed test must not leave a collector waiting forever
        if process.poll() is None:
            process.kill()
            process.communicate()
    assert [str(p.relative_to(home)) for p in home.rglob("*")] == []


def _wait_holding(process: subprocess.Popen[str], hold: Path) -> None:
    ends = time.monotonic() + 180
    while not (hold / "holding").exists():
        assert process.poll() is None, process.communicate()
        assert time.monotonic() < ends, "the first process never reached its first batch"
        time.sleep(0.1)


def test_two_processes_collecting_one_run_do_the_work_once(collector, tmp_path):
    hold = tmp_path / "hold"
    hold.mkdir()
    first = collector(hold)
    _wait_holding(first, hold)
    out, err = collector().communicate(timeout=180)
    message = err.strip().splitlines()[-1]  # after the model's loading bar
    assert out == "" and message.startswith("error: run vowels-")
    assert f" is being collected by pid {first.pid} (since " in message
    assert message.endswith(
        "; wait for it to finish, then run the same command again: the finished run reopens at once"
    )
    (hold / "release").touch()
    first_out, _ = first.communicate(timeout=180)
    assert first.returncode == 0
    again = collector()
    assert again.communicate(timeout=180)[0] == first_out and again.returncode == 0  # reopened, same run


def test_a_killed_collector_leaves_no_stale_lock(collector, tmp_path):
    hold = tmp_path / "hold"
    hold.mkdir()
    doomed = collector(hold)
    _wait_holding(doomed, hold)
    doomed.kill()  # SIGKILL: no clean-up runs
    doomed.wait(timeout=60)
    (lock,) = (tmp_path / "cache" / "runs").glob("*/collecting.lock")
    assert lock.read_text() == f"pid {doomed.pid} (since " + lock.read_text().split("(since ")[1]  # left behind
    survivor = collector()
    out, _ = survivor.communicate(timeout=180)
    assert survivor.returncode == 0 and out.split()[1] == "24"  # resumed from the killed one's checkpoint
