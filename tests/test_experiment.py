"""Task and split specs: rebuilding the same splits, and selecting on a subset of a paired behaviour."""

from __future__ import annotations

import pytest

from corrsteer_core.errors import ConfigError
from corrsteer_core.experiment import SplitSpec, TaskSpec, resolve_splits, resolve_task, specs_from_provenance


def test_specs_round_trip_and_rebuild_the_same_items():
    task_spec, split_spec = (
        TaskSpec(name="arithmetic", limit=80, seed=2),
        SplitSpec(n_train=40, n_val=10, n_test=30),
    )
    record = {"split": {"task_spec": task_spec.to_dict(), "split_spec": split_spec.to_dict()}}
    again_task, again_split = specs_from_provenance(record)
    assert (again_task, again_split) == (task_spec, split_spec)
    first = resolve_splits(resolve_task(task_spec), split_spec)
    second = resolve_splits(resolve_task(again_task), again_split)
    assert [i.id for i in first.test] == [i.id for i in second.test]
    with pytest.raises(ConfigError, match="does not record"):
        specs_from_provenance({})


def test_select_where_restricts_only_the_selection_split():
    task = resolve_task(TaskSpec(name="safety"))
    full = resolve_splits(task, SplitSpec(n_train=240, n_val=60, n_test=120, seed=1))
    subset = resolve_splits(
        task, SplitSpec(n_train=240, n_val=60, n_test=120, seed=1, select_where={"label": "harmful"})
    )
    assert subset.train and all(i.metadata["label"] == "harmful" for i in subset.train)
    assert [i.id for i in subset.train] == [i.id for i in full.train if i.metadata["label"] == "harmful"]
    assert subset.test == full.test and subset.validation == full.validation
    assert {i.metadata["label"] for i in subset.test} == {"harmful", "harmless"}
    with pytest.raises(ConfigError, match="values present"):
        resolve_splits(task, SplitSpec(n_train=240, n_val=60, n_test=120, select_where={"label": "evil"}))
    with pytest.raises(ConfigError, match="select_where"):
        SplitSpec(select_where={"label": 3})  # type: ignore[dict-item]
