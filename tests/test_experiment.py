"""Experiments (task + split specs) and the typed records that carry them: runs' metadata, profiles' provenance."""

from __future__ import annotations

import hashlib
import json

import pytest

from corrsteer_core.config import CollectConfig, OptimizeConfig, SelectConfig
from corrsteer_core.errors import ConfigError, ProfileError, TaskError
from corrsteer_core.experiment import CustomTable, Experiment, SplitSpec, TaskSpec
from corrsteer_core.metadata import Provenance, RunIdentity, RunMeta, TaskInfo
from corrsteer_core.runs import run_id_for


def _csv(tmp_path) -> str:
    path = tmp_path / "t.csv"
    path.write_text("q,a,g\nsay hi,a,x\nsay yo,o,y\nsay ho,o,x\n", encoding="utf-8")
    return str(path)


def test_experiments_round_trip_and_rebuild_the_same_items(tmp_path):
    builtin = Experiment(TaskSpec(name="arithmetic", limit=80, seed=2), SplitSpec(n_train=40, n_val=10, n_test=30))
    custom = Experiment(
        TaskSpec(
            name="mine",
            custom=CustomTable(
                path=_csv(tmp_path),
                answer_column="a",
                scorer="regex",
                prompt_column="q",
                metadata_columns=("g",),
                scorer_options={"pattern": "(a)"},
            ),
        ),
        SplitSpec(n_train=1, n_val=0, n_test=2),
    )
    for experiment in (builtin, custom):
        again = Experiment.from_dict(json.loads(json.dumps(experiment.to_dict())))
        assert again == experiment
        (_, first), (_, second) = experiment.build(), again.build()
        assert [i.id for i in first.test] == [i.id for i in second.test]
    assert "uploaded" in custom.label and "built-in" in builtin.label
    with pytest.raises(ConfigError, match="task"):
        Experiment.from_dict({})


def test_runs_written_before_the_one_spec_still_read(tmp_path):
    """Run metadata of earlier versions repeated the task name in its custom part and kept the app's own form."""
    old = {
        "task_spec": {
            "name": "mine",
            "source": None,
            "limit": None,
            "seed": 0,
            "options": {},
            "custom": {
                "path": _csv(tmp_path),
                "name": "mine",
                "prompt_column": "q",
                "template": None,
                "answer_column": "a",
                "scorer": "contains",
                "choices_column": None,
                "max_new_tokens": 32,
                "pooling": "max",
                "metadata_columns": [],
                "scorer_options": {},
            },
        },
        "split_spec": {"n_train": 1, "n_val": 0, "n_test": 2, "seed": 0, "select_where": None},
        "sizes": {"train": 1, "validation": 0, "test": 2},
        "app_task": {"name": "mine", "n_train": 1},
    }
    experiment = Experiment.from_dict(old)
    assert experiment.task_spec.custom is not None and experiment.task_spec.custom.answer_column == "a"
    assert len(experiment.build()[0].items) == 3


def test_custom_tables_say_what_is_missing(tmp_path):
    with pytest.raises(TaskError, match="answer column"):
        CustomTable(path=_csv(tmp_path), answer_column=None, prompt_column="q")  # type: ignore[arg-type]
    with pytest.raises(TaskError, match="exactly one of"):
        CustomTable(path=_csv(tmp_path), answer_column="a")
    gone = TaskSpec(
        name="x", custom=CustomTable(path=str(tmp_path / "gone.csv"), answer_column="a", prompt_column="q")
    )
    with pytest.raises(TaskError, match="is gone"):
        gone.build()


def test_select_where_restricts_only_the_selection_split():
    task = TaskSpec(name="safety").build()
    full = SplitSpec(n_train=240, n_val=60, n_test=120, seed=1).resolve(task)
    subset = SplitSpec(n_train=240, n_val=60, n_test=120, seed=1, select_where={"label": "harmful"}).resolve(task)
    assert subset.train and all(i.metadata["label"] == "harmful" for i in subset.train)
    assert [i.id for i in subset.train] == [i.id for i in full.train if i.metadata["label"] == "harmful"]
    assert subset.test == full.test and subset.validation == full.validation
    assert {i.metadata["label"] for i in subset.test} == {"harmful", "harmless"}
    with pytest.raises(ConfigError, match="values present"):
        SplitSpec(n_train=240, n_val=60, n_test=120, select_where={"label": "evil"}).resolve(task)
    with pytest.raises(ConfigError, match="select_where"):
        SplitSpec(select_where={"label": 3})  # type: ignore[dict-item]


def _meta() -> RunMeta:
    identity = RunIdentity(
        preset="p", dtype="torch.float32", fingerprints={"0": "ab"}, task="t", source=None, items=("a", "b"),
        collect=CollectConfig(batch_size=4),
    )  # fmt: skip
    return RunMeta(
        run_id="t-1",
        identity=identity,
        task=TaskInfo(name="t", kind="open"),
        layers=(0, 2),
        sae_ids={0: "layer_0", 2: "layer_2"},
        sites={0: "blocks.0.hook_resid_post", 2: "blocks.2.hook_resid_post"},
        n_items=2,
        n_batches=1,
        experiment=Experiment(TaskSpec(name="arithmetic"), SplitSpec(n_train=2)),
    )


def test_run_metadata_round_trips_and_keeps_run_ids():
    meta = _meta()
    assert RunMeta.from_dict(json.loads(json.dumps(meta.to_dict()))) == meta
    # the run id hashes the identity exactly as the untyped dict of earlier versions did, so old runs reopen
    legacy = {"preset": "p", "dtype": "torch.float32", "fingerprints": {"0": "ab"}, "task": "t", "source": None,
              "items": ["a", "b"], "collect": CollectConfig(batch_size=4).to_dict()}  # fmt: skip
    digest = hashlib.sha256(json.dumps(legacy, sort_keys=True, default=str).encode()).hexdigest()[:10]
    assert run_id_for("t", meta.identity) == f"t-{digest}"
    with pytest.raises(ConfigError, match="unknown keys"):
        RunMeta.from_dict({**meta.to_dict(), "surprise": 1})


def test_provenance_reads_the_old_layout_and_refuses_garbage():
    old = {
        "run_id": "r-1",
        "task": {"name": "t"},
        "select": {"variant": "A", "selector": "corr", "lam": 1.5, "budget": 300},
        "variant": "O",
        "optimize": OptimizeConfig(lam=1.5, budget=300, whole_scales=(0.3,)).to_dict(),
        "validation": {
            "objective": 0.5,
            "accuracy": 0.6,
            "pos": 3,
            "neg": 1,
            "unsteered_accuracy": 0.5,
            "generations": 120,
            "budget_exhausted": False,
        },
    }
    prov = Provenance.from_dict(old)
    assert prov.variant == "O" and prov.select is not None
    assert prov.select.optimize == OptimizeConfig(lam=1.5, budget=300, whole_scales=(0.3,))
    assert Provenance.from_dict(json.loads(json.dumps(prov.to_dict()))) == prov
    assert SelectConfig.from_dict({"lam": 2.0}).optimize.lam == 2.0
    for bad in ("x", [1], {"run_id": 3}, {"task": "t"}, {"kept_layers": ["a"]}, {"select": {"variant": "Z"}},
                {"validation": {"objective": "high"}}, {"versions": {"torch": 2}}, {"who": "me"}):  # fmt: skip
        with pytest.raises(ProfileError, match="provenance"):
            Provenance.from_dict(bad)
