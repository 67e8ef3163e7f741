"""The library's own bounds (limits.py): what no caller, file or form can make corrsteer attempt."""

from __future__ import annotations

import pytest
import torch

from corrsteer_core.config import CollectConfig, GenerateConfig
from corrsteer_core.errors import ConfigError, TaskError
from corrsteer_core.experiment import CustomTable
from corrsteer_core.generation import encode_prompts, greedy_generate
from corrsteer_core.limits import MAX_PROMPT_CHARS, check_at_most, loads_json
from corrsteer_core.loading import resolve_device
from corrsteer_core.steer import generate_texts, run_items
from corrsteer_core.tasks.base import TaskItem
from tests.helpers import toy_task


def test_a_prompt_that_cannot_fit_the_context_is_refused_before_generating(tiny):
    context = tiny.model.config.max_position_embeddings  # 512 for the tiny model (one token per character)
    chat_tokens = len(encode_prompts(tiny.tokenizer, ["y" * context], True)[0])  # the template adds its own
    with pytest.raises(ConfigError) as info:
        generate_texts(tiny, ["short", "y" * context], max_new_tokens=8)
    assert str(info.value) == (
        f"prompt 2: the prompt is {chat_tokens:,} tokens; with 8 new tokens it exceeds the model's context of "
        f"{context:,} tokens; shorten the prompt"
    )
    task = toy_task(3)
    long_item = TaskItem(id="too-long", prompt="z" * context, target="a")
    with pytest.raises(ConfigError, match=r"^item 'too-long': the prompt is "):
        run_items(tiny, task, [*task.items, long_item])


def test_new_tokens_are_bounded_everywhere(tiny):
    message = "max_new_tokens is 100,000; at most 4,096 is allowed"
    for make in (
        lambda: CollectConfig(max_new_tokens=100_000),
        lambda: GenerateConfig(max_new_tokens=100_000),
        lambda: CustomTable(path="x.csv", answer_column="a", prompt_column="p", max_new_tokens=100_000),
        lambda: greedy_generate(
            tiny.model, tiny.tokenizer, encode_prompts(tiny.tokenizer, ["hi"], True), max_new_tokens=100_000
        ),
    ):
        with pytest.raises(ConfigError, match=message):
            make()


def test_statistics_sizes_are_bounded():
    with pytest.raises(ConfigError, match="n_bins is 1,000,000; at most 256"):
        CollectConfig(n_bins=1_000_000)
    with pytest.raises(ConfigError, match="max_strata is 10,000; at most 64"):
        CollectConfig(max_strata=10_000)


def test_task_items_are_bounded():
    with pytest.raises(TaskError, match=f"^item 'x': the prompt has {MAX_PROMPT_CHARS + 1:,} characters"):
        TaskItem(id="x", prompt="p" * (MAX_PROMPT_CHARS + 1), target="a")


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks a machine without CUDA")
def test_devices_this_machine_lacks_are_refused():
    with pytest.raises(
        ConfigError, match="device 'cuda' is not available: this machine or this torch build has no"
    ):
        resolve_device("cuda")
    assert resolve_device("auto").type == "cpu" and resolve_device("cpu").type == "cpu"


def test_unsupported_devices_are_refused():
    with pytest.raises(ConfigError, match="is not"):
        resolve_device("tpu")
    with pytest.raises(ConfigError, match="not supported"):
        resolve_device("meta")


def test_json_helpers():
    assert loads_json('{"a": [1, 2]}') == {"a": [1, 2]}
    for bad in ("[" * 50_000 + "]" * 50_000, '{"a": NaN}', "{"):
        with pytest.raises(ValueError):
            loads_json(bad)
    check_at_most("n", 3, 3)
    with pytest.raises(ConfigError, match=r"^n is 4; at most 3 is allowed \(why\)$"):
        check_at_most("n", 4, 3, why="why")
