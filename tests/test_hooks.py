"""Hooks on the tiny model: which positions are touched, restoration, batching, errors."""

from __future__ import annotations

import pytest
import torch

from corrsteer_core.errors import ConfigError, HookError, LayerOutOfRangeError
from corrsteer_core.generation import encode_prompts, greedy_generate
from corrsteer_core.hooks import add_to_residual, capture_residuals, decoder_layers, resolve_hook

PROMPTS = ["hello there", "what is 2+2?", "a", "The capital of France is"]


def _ids(tiny, chat: bool = True):
    return encode_prompts(tiny.tokenizer, PROMPTS, chat)


def _vector(tiny, scale: float = 8.0) -> torch.Tensor:
    gen = torch.Generator().manual_seed(1)
    return torch.randn(tiny.d_model, generator=gen) * scale


def _touched_positions(tiny, prompt_ids, positions: str, hook: str = "blocks.1.hook_resid_post"):
    """Per forward call, the (row, position) pairs whose residual the steering hook changed."""
    layer = decoder_layers(tiny.model)[1]
    before: list[torch.Tensor] = []
    after: list[torch.Tensor] = []
    h1 = layer.register_forward_hook(lambda m, a, o: before.append(o.detach().clone()))
    try:
        with add_to_residual(tiny.model, {hook: _vector(tiny)}, positions=positions):
            h2 = layer.register_forward_hook(lambda m, a, o: after.append(o.detach().clone()))
            try:
                result = greedy_generate(tiny.model, tiny.tokenizer, prompt_ids, max_new_tokens=6)
            finally:
                h2.remove()
    finally:
        h1.remove()
    changed = [((a - b).abs().sum(-1) > 0) for a, b in zip(after, before, strict=True)]
    return changed, result


def test_generation_mode_touches_last_prompt_and_generated_positions(tiny):
    prompt_ids = _ids(tiny)
    changed, result = _touched_positions(tiny, prompt_ids, "generation")
    width = max(len(p) for p in prompt_ids)
    prefill = changed[0]
    assert prefill.shape == (len(PROMPTS), width)
    expected = torch.zeros_like(prefill)
    expected[:, -1] = True  # left padding: the last column is every row's last prompt token
    assert torch.equal(prefill, expected)
    assert len(changed) == result.n_steps > 1
    for step in changed[1:]:
        assert step.shape == (len(PROMPTS), 1) and bool(step.all())


def test_prompt_and_all_modes(tiny):
    prompt_ids = _ids(tiny)
    changed, _ = _touched_positions(tiny, prompt_ids, "prompt")
    assert bool(changed[0].all())
    assert all(not bool(step.any()) for step in changed[1:])
    changed, _ = _touched_positions(tiny, prompt_ids, "all")
    assert all(bool(step.all()) for step in changed)


def test_one_token_prompt_is_steered_at_its_only_position(tiny):
    prompt_ids = [[tiny.tokenizer.convert_tokens_to_ids("a")]]
    changed, _ = _touched_positions(tiny, prompt_ids, "generation")
    assert changed[0].shape == (1, 1) and bool(changed[0].all())


def test_steering_changes_output_and_context_exit_restores_it(tiny):
    prompt_ids = _ids(tiny)
    base = greedy_generate(tiny.model, tiny.tokenizer, prompt_ids, max_new_tokens=10)
    with add_to_residual(tiny.model, {"blocks.2.hook_resid_post": _vector(tiny)}):
        steered = greedy_generate(tiny.model, tiny.tokenizer, prompt_ids, max_new_tokens=10)
    after = greedy_generate(tiny.model, tiny.tokenizer, prompt_ids, max_new_tokens=10)
    assert steered.token_ids != base.token_ids
    assert after.token_ids == base.token_ids
    assert not decoder_layers(tiny.model)[2]._forward_hooks


def test_hooks_removed_when_generation_raises(tiny):
    with pytest.raises(RuntimeError), add_to_residual(tiny.model, {"blocks.0.hook_resid_pre": _vector(tiny)}):
        raise RuntimeError("boom")
    assert not decoder_layers(tiny.model)[0]._forward_pre_hooks


@pytest.mark.parametrize("hook", [None, "blocks.1.hook_resid_post", "blocks.2.hook_resid_pre"])
def test_batched_left_padded_equals_one_by_one(tiny, hook):
    prompt_ids = _ids(tiny)
    vectors = {hook: _vector(tiny)} if hook else {}
    with add_to_residual(tiny.model, vectors):
        batched = greedy_generate(tiny.model, tiny.tokenizer, prompt_ids, max_new_tokens=12)
        single = [greedy_generate(tiny.model, tiny.tokenizer, [p], max_new_tokens=12) for p in prompt_ids]
    assert batched.token_ids == [s.token_ids[0] for s in single]
    assert batched.texts == [s.texts[0] for s in single]


def test_steering_also_applies_inside_hf_generate(tiny):
    """User code calling model.generate (KV cache) is steered the same way as corrsteer's own loop."""
    prompt_ids = _ids(tiny)[:1]
    vectors = {"blocks.1.hook_resid_post": _vector(tiny)}
    with add_to_residual(tiny.model, vectors):
        ours = greedy_generate(tiny.model, tiny.tokenizer, prompt_ids, max_new_tokens=8, stop_ids=set())
        theirs = tiny.model.generate(
            torch.tensor(prompt_ids),
            max_new_tokens=8,
            min_new_tokens=8,
            do_sample=False,
            pad_token_id=tiny.tokenizer.pad_token_id,
        )
    assert theirs[0, len(prompt_ids[0]) :].tolist() == ours.token_ids[0]


def _touched_in_hf_generate(tiny, positions: str) -> list[torch.Tensor]:
    """Like _touched_positions, but with transformers' own ``model.generate`` driving the KV cache."""
    layer = decoder_layers(tiny.model)[1]
    before: list[torch.Tensor] = []
    after: list[torch.Tensor] = []
    h1 = layer.register_forward_hook(lambda m, a, o: before.append(o.detach().clone()))
    try:
        with add_to_residual(tiny.model, {"blocks.1.hook_resid_post": _vector(tiny)}, positions=positions):
            h2 = layer.register_forward_hook(lambda m, a, o: after.append(o.detach().clone()))
            try:
                tiny.model.generate(
                    torch.tensor(_ids(tiny)[:1]),
                    max_new_tokens=5,
                    min_new_tokens=5,
                    do_sample=False,
                    pad_token_id=tiny.tokenizer.pad_token_id,
                )
            finally:
                h2.remove()
    finally:
        h1.remove()
    return [((a - b).abs().sum(-1) > 0) for a, b in zip(after, before, strict=True)]


@pytest.mark.parametrize("positions", ["prompt", "generation", "all"])
def test_position_modes_inside_hf_generate(tiny, positions):
    """The prefill/decode split holds whatever keyword the installed transformers passes the cache under."""
    changed = _touched_in_hf_generate(tiny, positions)
    assert len(changed) == 5 and all(step.shape[1] == 1 for step in changed[1:])
    prefill = changed[0][0]
    if positions == "generation":  # only the last prompt position, which predicts the first new token
        assert bool(prefill[-1]) and not bool(prefill[:-1].any())
    else:
        assert bool(prefill.all())
    decode_steered = positions != "prompt"
    assert all(bool(step.all()) == decode_steered and bool(step.any()) == decode_steered for step in changed[1:])


@pytest.mark.parametrize("keyword", ["past_key_values", "cache", "kv", None])
def test_phase_is_read_from_the_cache_object_not_its_keyword(keyword):
    from transformers.cache_utils import DynamicCache

    from corrsteer_core.hooks import _PhaseTracker

    cache = DynamicCache()
    cache.update(torch.zeros(1, 2, 3, 4), torch.zeros(1, 2, 3, 4), layer_idx=0)  # 3 tokens held
    tracker = _PhaseTracker()
    ids = torch.zeros(1, 1, dtype=torch.long)
    if keyword is None:  # positional, as older callers did
        tracker(torch.nn.Identity(), (ids, None, None, cache), {})
    else:
        tracker(torch.nn.Identity(), (), {"input_ids": ids, keyword: cache})
    assert tracker.prefill is False
    tracker(torch.nn.Identity(), (), {"input_ids": ids, "attention_mask": torch.ones(1, 1)})
    assert tracker.prefill is True
    # no cache object at all, but the mask covers 4 earlier positions: a decode step
    tracker(torch.nn.Identity(), (), {"input_ids": ids, "attention_mask": torch.ones(1, 5)})
    assert tracker.prefill is False


def test_capture_matches_generation_steps(tiny):
    prompt_ids = _ids(tiny)
    with capture_residuals(tiny.model, ["blocks.0.hook_resid_post", "blocks.3.hook_resid_pre"]) as rec:
        result = greedy_generate(tiny.model, tiny.tokenizer, prompt_ids, max_new_tokens=7)
    got = rec.stacked("blocks.0.hook_resid_post")
    assert got.shape == (len(PROMPTS), result.n_steps, tiny.d_model)
    # resid_pre of layer 3 is the output of layer 2: capture it both ways and compare
    with capture_residuals(tiny.model, ["blocks.2.hook_resid_post"]) as rec2:
        greedy_generate(tiny.model, tiny.tokenizer, prompt_ids, max_new_tokens=7)
    assert torch.equal(rec.stacked("blocks.3.hook_resid_pre"), rec2.stacked("blocks.2.hook_resid_post"))


def test_step_mask_marks_rows_that_stopped(tiny):
    prompt_ids = _ids(tiny)
    result = greedy_generate(tiny.model, tiny.tokenizer, prompt_ids, max_new_tokens=16)
    for row, tokens in enumerate(result.token_ids):
        live_steps = int(result.step_mask[row].sum())
        # step 0 plus every generated token that was fed back (the stop token never is)
        expected = min(len(tokens) + 1, result.n_steps) if result.stopped[row] else result.n_steps
        assert live_steps == expected


@pytest.mark.parametrize(
    ("name", "error"),
    [
        ("blocks.99.hook_resid_post", LayerOutOfRangeError),
        ("blocks.1.hook_mlp_out", HookError),
        ("resid_post", HookError),
    ],
)
def test_bad_hook_names(tiny, name, error):
    with pytest.raises(error) as info:
        resolve_hook(tiny.model, name)
    assert "valid" in str(info.value).lower() or "range" in str(info.value)


def test_bad_vectors_and_positions(tiny):
    with (
        pytest.raises(ConfigError, match="width"),
        add_to_residual(tiny.model, {"blocks.0.hook_resid_post": torch.ones(tiny.d_model + 1)}),
    ):
        pass
    with pytest.raises(ConfigError, match="Valid values"), capture_residuals(tiny.model, [], positions="middle"):
        pass
