"""Apply a steering profile while the model generates, and run tasks' items steered or not.

The shared model is steered under its lock: two callers (two app sessions) never see each other's hooks, and
unsteered generation also takes the lock so it never runs while someone else's hooks are installed.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

import torch

from corrsteer_core.config import GenerateConfig
from corrsteer_core.errors import ProfileError
from corrsteer_core.generation import Sampling, check_context, choice_token_ids, encode_prompts, greedy_generate
from corrsteer_core.hooks import add_to_residual
from corrsteer_core.loading import LoadedModel
from corrsteer_core.profile import SteeringProfile
from corrsteer_core.progress import Progress, report
from corrsteer_core.saes import SAESet
from corrsteer_core.tasks.base import Task, TaskItem

__all__ = [
    "Outcome",
    "batch_inputs",
    "generate_texts",
    "judge",
    "profile_vectors",
    "run_items",
    "steering",
]


@dataclass(frozen=True)
class Outcome:
    item_id: str
    generation: str
    answer: str | None
    correct: bool


def judge(task: Task, item: TaskItem, generation: str) -> Outcome:
    """The task's verdict on one generation."""
    score = task.scorer(generation, item)
    return Outcome(item.id, generation, score.answer, bool(score.correct))


@contextmanager
def steering(
    loaded: LoadedModel, vectors: Mapping[str, torch.Tensor] | None, positions: str = "generation"
) -> Iterator[None]:
    """Hold the model's lock and add ``vectors`` (hook name -> (d_model,)) for the duration of the block."""
    with loaded.lock, add_to_residual(loaded.model, vectors or {}, positions=positions):
        yield


def profile_vectors(loaded: LoadedModel, saes: SAESet, profile: SteeringProfile | None) -> dict[str, torch.Tensor]:
    if profile is None:
        return {}
    profile.check_compatible(loaded, saes)
    return profile.vectors(saes)


def generate_texts(
    loaded: LoadedModel,
    prompts: Sequence[str],
    *,
    vectors: Mapping[str, torch.Tensor] | None = None,
    positions: str = "generation",
    max_new_tokens: int = 48,
    use_chat_template: bool | None = None,
    sampling: Sampling | None = None,
    on_tokens: Callable[[list[int]], None] | None = None,
) -> list[str]:
    """Replies to free-form prompts, steered by ``vectors`` when given: greedy, or ``sampling.n_samples`` sampled
    replies per prompt (prompt-major: all of prompt 1's, then prompt 2's ...); ``on_tokens``: see greedy_generate.
    """
    if not prompts or any(not p.strip() for p in prompts):
        raise ProfileError("every prompt must contain some text")
    chat = loaded.use_chat_template if use_chat_template is None else use_chat_template
    ids = encode_prompts(loaded.tokenizer, list(prompts), chat)
    check_context(loaded.model, ids, max_new_tokens, [f"prompt {i + 1}" for i in range(len(ids))])
    repeats = sampling.n_samples if sampling is not None and not sampling.greedy else 1
    ids = [row for row in ids for _ in range(repeats)]
    with steering(loaded, vectors, positions):
        return greedy_generate(
            loaded.model,
            loaded.tokenizer,
            ids,
            max_new_tokens=max_new_tokens,
            sampling=sampling,
            on_tokens=on_tokens,
        ).texts


def batch_inputs(
    loaded: LoadedModel, items: Sequence[TaskItem], chat: bool, constrained: bool, max_new_tokens: int
) -> tuple[list[list[int]], list[int] | None]:
    """Prompt token ids of a batch (each checked to fit the model's context with ``max_new_tokens`` more), and
    the allowed first tokens for constrained multiple choice."""
    ids = encode_prompts(loaded.tokenizer, [item.prompt for item in items], chat)
    check_context(loaded.model, ids, max_new_tokens, [f"item {item.id!r}" for item in items])
    allowed = None
    if constrained and any(item.choices for item in items):
        allowed = choice_token_ids(loaded.tokenizer, sorted({c for item in items for c in item.choices}))
    return ids, allowed


def run_items(
    loaded: LoadedModel,
    task: Task,
    items: Sequence[TaskItem],
    *,
    vectors: Mapping[str, torch.Tensor] | None = None,
    positions: str = "generation",
    cfg: GenerateConfig | None = None,
    progress: Progress | None = None,
    stage: str = "generate",
) -> list[Outcome]:
    """Generate and score every item (batched), steered by ``vectors`` when given."""
    cfg = cfg or GenerateConfig()
    chat = loaded.use_chat_template if cfg.use_chat_template is None else cfg.use_chat_template
    outcomes: list[Outcome] = []
    batches = [items[i : i + cfg.batch_size] for i in range(0, len(items), cfg.batch_size)]
    report(progress, stage, 0, len(batches))
    max_new_tokens = cfg.max_new_tokens or task.max_new_tokens
    for index, batch in enumerate(batches):
        ids, allowed = batch_inputs(loaded, batch, chat, cfg.constrained, max_new_tokens)
        with steering(loaded, vectors, positions):
            result = greedy_generate(
                loaded.model,
                loaded.tokenizer,
                ids,
                max_new_tokens=max_new_tokens,
                allowed_token_ids=allowed,
            )
        outcomes.extend(judge(task, item, text) for item, text in zip(batch, result.texts, strict=True))
        report(progress, stage, index + 1, len(batches))
    return outcomes
