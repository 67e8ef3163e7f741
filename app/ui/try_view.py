"""The Steer page's "Try it": one prompt (free, or a test item) unsteered and steered, side by side.

Both replies are shown plainly, the words that differ marked on each side; a degenerate (empty or repetitive)
reply is flagged under it; a test item's prompt is shown above. Generation happens on request (the Generate
button) unless the user asks for it after every change; a single reply is streamed as it is produced. Sampling
(temperature, top-p, seed, number of samples) sits beside max new tokens.
"""

from __future__ import annotations

from typing import Any

import streamlit as st

from app.ui import state, widgets, work
from app.ui.text import diff_html, md
from corrsteer_core.generation import Sampling
from corrsteer_core.limits import MAX_SAMPLES, MAX_TEMPERATURE
from corrsteer_core.profile import SteeringProfile
from corrsteer_core.tasks.text import is_degenerate

__all__ = ["try_section"]

TEMPERATURE = "keep_steer_temperature"
TOP_P = "keep_steer_top_p"
SEED = "keep_steer_seed"
SAMPLES = "keep_steer_samples"


def _sampling_inputs() -> Sampling:
    widgets.defaults({TEMPERATURE: 0.0, TOP_P: 1.0, SEED: 0, SAMPLES: 1})
    c = st.columns(4)
    temperature = c[0].number_input(
        "Temperature", min_value=0.0, max_value=MAX_TEMPERATURE, step=0.1, key=TEMPERATURE, help="0 = greedy"
    )
    top_p = c[1].number_input("Top-p", min_value=0.01, max_value=1.0, step=0.05, key=TOP_P)
    seed = c[2].number_input("Seed", min_value=0, step=1, key=SEED, help="The same seed gives the same replies")
    n = c[3].number_input("Samples", min_value=1, max_value=MAX_SAMPLES, step=1, key=SAMPLES)
    with widgets.show_errors(stop=True):
        return Sampling(temperature=float(temperature), top_p=float(top_p), seed=int(seed), n_samples=int(n))


def _inputs(ctx: Any) -> tuple[str, int, Any | None, Sampling | None]:
    """(prompt, max new tokens, test item or None, sampling or None for a test item) chosen by the user."""
    widgets.defaults(
        {state.STEER_MODE: "Free prompt", state.STEER_PROMPT: "What is the capital of France?",
         state.STEER_MAX_NEW: 48, state.STEER_LIVE: False}
    )  # fmt: skip
    modes = ["Free prompt", "Test item"] if ctx.splits is not None else ["Free prompt"]
    if st.session_state[state.STEER_MODE] not in modes:
        st.session_state[state.STEER_MODE] = modes[0]
    mode = st.radio("Input", modes, key=state.STEER_MODE, horizontal=True, label_visibility="collapsed")
    if mode == "Free prompt" or ctx.splits is None:
        prompt = st.text_area("Prompt", key=state.STEER_PROMPT, height=90)
        max_new = st.number_input("Max new tokens", min_value=1, max_value=512, key=state.STEER_MAX_NEW)
        return prompt, int(max_new), None, _sampling_inputs()
    by_id = {it.id: it for it in (list(ctx.splits.test) or list(ctx.splits.validation))}
    picked = st.selectbox(
        "Test item", list(by_id), key=state.STEER_ITEM, format_func=lambda i: f"{i}: {by_id[i].prompt[:90]!r}"
    )
    st.caption("Test items are generated greedily with the run's settings, as the evaluation does.")
    return by_id[picked].prompt, 0, by_id[picked], None


def try_section(ctx: Any, working: SteeringProfile) -> None:
    st.subheader("Try it")
    prompt, max_new, item, sampling = _inputs(ctx)
    live = st.checkbox(
        "Regenerate after every change of the settings",
        key=state.STEER_LIVE,
        help="Off: press Generate when ready (each generation costs a full reply, unsteered and steered).",
    )
    previous = state.get(state.TRY_RESULT)
    outdated = previous is not None and previous["hash"] != working.content_hash() and previous["prompt"] == prompt
    clicked = st.button("Generate", type="primary", key="steer_generate", icon=":material/bolt:")
    if clicked or (live and outdated):
        with widgets.show_errors():
            if item is not None:
                with st.spinner("Generating unsteered and steered…"):
                    result = work.try_item(ctx.loaded, ctx.saes, working, ctx.task, item, ctx.gen)
            elif sampling is not None and sampling.n_samples == 1:
                result = _streamed(ctx, working, prompt, max_new, sampling, previous)
            else:
                with st.spinner("Generating unsteered and steered…"):
                    result = work.try_prompt(ctx.loaded, ctx.saes, working, prompt, max_new, previous, sampling)
            state.put(state.TRY_RESULT, result)
    show_try(state.get(state.TRY_RESULT), working)


def _streamed(
    ctx: Any, working: SteeringProfile, prompt: str, max_new: int, sampling: Sampling, previous: Any
) -> dict[str, Any]:
    """Stream the unsteered then the steered reply into a placeholder, replaced by the marked comparison."""
    box = st.empty()
    with box.container():
        left, right = st.columns(2)
        left.markdown("**Unsteered** · generating…")
        base = work.reusable_base(previous, prompt, max_new, sampling)
        if base is None:
            stream = work.ReplyStream(ctx.loaded, prompt, max_new_tokens=max_new, sampling=sampling)
            left.write_stream(stream.inert_pieces())
            base = stream.text
        else:
            left.text(base)
        right.markdown("**Steered** · generating…")
        vectors = work.profile_vectors(ctx.loaded, ctx.saes, working)
        stream = work.ReplyStream(
            ctx.loaded,
            prompt,
            vectors=vectors,
            positions=working.positions,
            max_new_tokens=max_new,
            sampling=sampling,
        )
        right.write_stream(stream.inert_pieces())
    box.empty()
    return work.try_result(working, prompt, max_new, sampling, [base], [stream.text])


def _reply(column: Any, title: str, mine: str, other: str, side: str, correct: bool | None) -> None:
    verdict = "" if correct is None else (" ✓ correct" if correct else " ✗ wrong")
    column.markdown(f"**{title}**{verdict}")
    column.markdown(diff_html(other, mine, "after") if side == "after" else diff_html(mine, other, "before"),
                    unsafe_allow_html=True)  # fmt: skip
    if is_degenerate(mine):
        column.warning("Degenerate reply: empty or repetitive.", icon=":material/warning:")


def show_try(result: dict[str, Any] | None, working: SteeringProfile) -> None:
    if not result:
        return
    if result["hash"] != working.content_hash():
        st.caption("Generated with an earlier version of the settings: press Generate to update.")
    st.markdown("**Prompt**")
    st.text(result["prompt"])
    bases, steereds = (
        result.get("base_samples") or [result["base"]],
        result.get("steered_samples") or [result["steered"]],
    )
    sampled = result.get("sampling")
    if sampled:
        st.caption(md(sampled))
    for k, (base, steered) in enumerate(zip(bases, steereds, strict=True)):
        if len(bases) > 1:
            st.markdown(f"Sample {k + 1} of {len(bases)}")
        left, right = st.columns(2)
        _reply(left, "Unsteered", base, steered, "before", result.get("base_correct"))
        _reply(right, "Steered", steered, base, "after", result.get("steered_correct"))
    st.caption("Words only in one reply are marked: red in the unsteered one, green in the steered one.")
    if "target" in result:
        st.caption(f"Target: {md(repr(result['target']))}")
    if bases == steereds:
        st.caption("Steering did not change this generation.")
