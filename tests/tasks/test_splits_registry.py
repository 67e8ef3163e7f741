"""Splits are fixed by the split seed alone; the registry lists tasks and rejects bad names and options."""

from __future__ import annotations

import random

import pytest
import torch

from corrsteer_core.errors import TaskError
from corrsteer_core.tasks import (
    TASK_NAMES,
    Task,
    TaskItem,
    default_split_sizes,
    get_scorer,
    get_task,
    list_tasks,
    split_task,
    task_options,
)


def make_task(n: int, name: str = "toy") -> Task:
    items = tuple(TaskItem(id=f"{name}-{i:04d}", prompt=f"q{i}", target=str(i)) for i in range(n))
    return Task(name, "toy", items, get_scorer("exact"), 4, "max", "short_answer", "builtin")


def test_split_depends_on_the_split_seed_only() -> None:
    task = make_task(300)
    random.seed(0)
    torch.manual_seed(0)
    first = split_task(task, seed=7)
    random.seed(99)
    torch.manual_seed(99)
    assert split_task(task, seed=7) == first
    assert split_task(task, seed=8).train != first.train
    # Re-ordering the items does not move any item to another split.
    shuffled = task.with_items(reversed(task.items))
    assert {i.id for i in split_task(shuffled, seed=7).test} == {i.id for i in first.test}


def test_split_is_disjoint_and_covers_the_task() -> None:
    splits = split_task(make_task(100), seed=0)
    ids = [i.id for part in (splits.train, splits.validation, splits.test) for i in part]
    assert len(ids) == len(set(ids)) == 100
    assert splits.sizes() == {"train": 50, "validation": 15, "test": 35}


def test_default_sizes_follow_the_reference() -> None:
    assert default_split_sizes(100) == (50, 15, 35)
    assert default_split_sizes(2000) == (1000, 200, 800)
    assert default_split_sizes(12032) == (4000, 200, 7832)
    assert default_split_sizes(0) == (0, 0, 0)


def test_explicit_sizes() -> None:
    task = make_task(100)
    assert split_task(task, n_train=10, n_val=5, n_test=20).sizes() == {"train": 10, "validation": 5, "test": 20}
    assert split_task(task, n_train=80).sizes() == {"train": 80, "validation": 15, "test": 5}
    assert split_task(task, n_test=90).sizes() == {"train": 0, "validation": 10, "test": 90}
    # The same seed gives nested prefixes: a smaller selection set is part of a larger one.
    small, large = split_task(task, n_train=10, seed=3), split_task(task, n_train=30, n_val=0, seed=3)
    assert set(small.train) <= set(large.train)


def test_split_errors_name_the_sizes() -> None:
    with pytest.raises(TaskError, match="has 100 items but the split asks for 150"):
        split_task(make_task(100), n_train=100, n_val=50)
    with pytest.raises(TaskError, match="n_val must be a non-negative integer"):
        split_task(make_task(10), n_val=-1)


def test_list_tasks_describes_every_task() -> None:
    infos = {info.name: info for info in list_tasks()}
    assert set(infos) == set(TASK_NAMES)
    assert {n for n, i in infos.items() if not i.needs_data} == {
        "arithmetic",
        "capitals",
        "safety",
        "language",
        "format",
    }
    assert infos["gsm8k"].hub_id == "openai/gsm8k" and infos["gsm8k"].kind == "long_answer"
    assert infos["mmlu"].options == ("split", "subjects") and "condition" not in task_options("bbq_ambig")


def test_registry_errors_list_the_valid_choices() -> None:
    with pytest.raises(TaskError, match="valid tasks are arithmetic, capitals, safety, language, format, mmlu"):
        get_task("trivia")
    with pytest.raises(TaskError, match="valid options are n, operations, level"):
        get_task("arithmetic", digits=3)
    with pytest.raises(TaskError, match="takes no source"):
        get_task("capitals", source="somewhere.csv")
    with pytest.raises(TaskError, match="limit must be a positive integer"):
        get_task("capitals", limit=0)


def test_task_validates_itself() -> None:
    with pytest.raises(TaskError, match="two items with id 'toy-0000'"):
        make_task(2).with_items([make_task(1).items[0]] * 2)
    with pytest.raises(Exception, match="valid poolings are max, mean"):
        Task("t", "d", (), get_scorer("exact"), 4, "sum", "short_answer", "x")  # type: ignore[arg-type]
    item = TaskItem(id="x", prompt="p", target="t", metadata={"n": 3})  # type: ignore[dict-item]
    assert (
        item.metadata == {"n": "3"}
        and len({item, TaskItem(id="x", prompt="p", target="t", metadata={"n": "3"})}) == 1
    )


def test_pairs_stay_together_in_splits_and_subsets() -> None:
    task = get_task("safety")
    splits = split_task(task, n_train=101, n_val=40, seed=5)
    assert len(splits.train) == 100  # one pair short rather than a pair cut in two
    for part in (splits.train, splits.validation, splits.test):
        labels_by_pair: dict[str, list[str]] = {}
        for item in part:
            labels_by_pair.setdefault(item.metadata["pair_id"], []).append(item.metadata["label"])
        assert all(sorted(v) == ["harmful", "harmless"] for v in labels_by_pair.values())
    subset = get_task("safety", limit=51, seed=2)
    assert len(subset) == 50 and len({i.metadata["pair_id"] for i in subset.items}) == 25
    ungrouped = split_task(task, n_train=101, n_val=40, seed=5, group_key=None)
    assert len(ungrouped.train) == 101
