"""Sampled generation for free-form comparisons: bounded settings, reproducible by seed, greedy at temperature 0,
and the streamed tokens are exactly the reply's."""

from __future__ import annotations

import pytest

from corrsteer_core.errors import ConfigError
from corrsteer_core.generation import Sampling, encode_prompts, greedy_generate
from corrsteer_core.steer import generate_texts

PROMPTS = ["tell me a story", "what is two plus two"]


@pytest.mark.parametrize(
    "bad",
    [
        {"temperature": -0.1},
        {"temperature": float("nan")},
        {"temperature": 11.0},
        {"top_p": 0.0},
        {"top_p": 1.5},
        {"seed": -1},
        {"n_samples": 0},
        {"n_samples": 17},
    ],
)
def test_sampling_settings_are_bounded(bad: dict) -> None:
    with pytest.raises(ConfigError):
        Sampling(**bad)


def test_same_seed_same_replies_and_temperature_zero_is_greedy(tiny) -> None:
    greedy = generate_texts(tiny, PROMPTS, max_new_tokens=12)
    assert (
        generate_texts(tiny, PROMPTS, max_new_tokens=12, sampling=Sampling(temperature=0.0, n_samples=3)) == greedy
    )
    hot = Sampling(temperature=1.5, seed=3, n_samples=4)
    first = generate_texts(tiny, PROMPTS, max_new_tokens=12, sampling=hot)
    assert len(first) == 8 and first == generate_texts(tiny, PROMPTS, max_new_tokens=12, sampling=hot)
    other = generate_texts(
        tiny, PROMPTS, max_new_tokens=12, sampling=Sampling(temperature=1.5, seed=4, n_samples=4)
    )
    assert other != first  # a random model at temperature 1.5: another seed gives other replies
    assert len(set(first[:4])) > 1  # the samples of one prompt differ from each other
    nucleus = Sampling(temperature=1.5, top_p=1e-6, seed=9)  # only the most likely token survives: greedy
    assert generate_texts(tiny, PROMPTS, max_new_tokens=12, sampling=nucleus) == greedy


def test_streamed_tokens_are_the_reply(tiny) -> None:
    ids = encode_prompts(tiny.tokenizer, PROMPTS, tiny.use_chat_template)
    steps: list[list[int]] = []
    result = greedy_generate(tiny.model, tiny.tokenizer, ids, max_new_tokens=10, on_tokens=steps.append)
    for row, tokens in enumerate(result.token_ids):
        assert [s[row] for s in steps if s[row] != -1] == tokens
