"""Features: what each selected (or clicked) feature means: its dashboard (label, trust score, top contexts on the
prepare corpus), Neuronpedia when available, local evidence from the run always; and a search over every
feature of every layer, whose hits can be added to the profile being steered."""

from __future__ import annotations

from typing import Any

import pandas as pd
import streamlit as st

from app.ui import dashboards, figures, resources, state, widgets
from app.ui.profile_builder import add_candidate
from app.ui.text import highlight_tokens_html, md, token_label
from corrsteer_core.explain import OFFLINE_MESSAGE, FeatureLookup
from corrsteer_core.limits import MAX_FEATURE_QUERY_CHARS
from corrsteer_core.presets import get_preset

Pair = tuple[int, int]


def _label(pair: Pair) -> str:
    return f"layer {pair[0]} · feature {pair[1]}"


def _explanation_text(lookup: FeatureLookup | None) -> str:
    if lookup is None:
        return "—"  # no Neuronpedia SAE: the caption above the table says so
    if lookup.ok and lookup.explanation is not None:
        return lookup.explanation.description or "(no explanation)"
    return OFFLINE_MESSAGE if lookup.status == "offline" else lookup.message


def _score_text(view: Any) -> str:
    return (
        f"F1 {view.f1:.2f} (precision {view.precision:.2f}, recall {view.recall:.2f}, "
        f"{view.support} held-out firings)"
    )


def _contexts(view: Any, n: int) -> None:
    vmax = view.max_activation or None
    for ctx in view.contexts[:n]:
        st.markdown(highlight_tokens_html(ctx.tokens, ctx.values, vmax), unsafe_allow_html=True)


def _at_a_glance(preset: str, pairs: list[Pair]) -> None:
    """Label, trust score and the two strongest contexts of every selected feature."""
    missing = []
    for pair in pairs:
        view = dashboards.feature_view(preset, *pair)
        if view is None:
            missing.append(pair)
            continue
        st.markdown(f"**{_label(pair)}** · label {md(view.label or '(none)')} · {_score_text(view)}")
        _contexts(view, 2)
    if missing:
        st.caption(
            "No dashboards for " + ", ".join(_label(p) for p in missing) + ": run `corrsteer prepare` to compute "
            "them (it computes only what is missing or out of date)."
        )


def _overview(preset: str, selection: Any, pairs: list[Pair], lookups: dict[Pair, FeatureLookup]) -> None:
    candidates = selection.candidates_frame().set_index(["layer", "feature"])
    rows = []
    for pair in pairs:
        cand = candidates.loc[pair] if pair in candidates.index else None
        view = dashboards.feature_view(preset, *pair)
        rows.append(
            {
                "layer": pair[0],
                "feature": pair[1],
                "r": None if cand is None else float(cand["r"]),
                "firing (correct)": None if cand is None else float(cand["firing_rate_correct"]),
                "firing (incorrect)": None if cand is None else float(cand["firing_rate_incorrect"]),
                "label": view.label if view is not None else "—",
                "label F1": view.f1 if view is not None else None,
                "explanation": _explanation_text(lookups.get(pair)),
            }
        )
    pct = st.column_config.NumberColumn(format="percent")
    st.dataframe(
        pd.DataFrame(rows),
        hide_index=True,
        column_config={
            "firing (correct)": pct,
            "firing (incorrect)": pct,
            "label F1": st.column_config.NumberColumn(format="%.2f", help="how well the label predicts firing"),
        },
    )


def _search(preset: str, run_id: str) -> None:
    query = st.text_input(
        "Search every feature of every layer by label or token",
        key=state.FEATURES_SEARCH,
        max_chars=MAX_FEATURE_QUERY_CHARS,
        placeholder='e.g. French, " est", refuse',
        help="Matches label tokens first, then the tokens where a feature peaks and the tokens it promotes.",
    )
    if not query:
        return
    found = dashboards.search(preset, query)
    if not found:
        st.caption("No feature's label or top tokens contain that text (or no dashboards yet: corrsteer prepare).")
        return
    frame = pd.DataFrame(
        [(m.layer, m.feature, m.label, m.f1, m.density, m.matched) for m in found],
        columns=["layer", "feature", "label", "label F1", "density", "matched on"],
    )
    st.dataframe(frame, hide_index=True, column_config={"density": st.column_config.NumberColumn(format="%.3%")})
    pairs = [(m.layer, m.feature) for m in found]
    pick = st.selectbox("Found feature", pairs, format_func=_label, key=state.FEATURES_FOUND)
    left, right = st.columns(2)
    if left.button("Open", key="features_found_open"):
        state.put(state.FOCUS, (int(pick[0]), int(pick[1])))
        st.rerun()
    right.button("Add to the profile", key="features_found_add", on_click=add_candidate, args=pick)


def _dashboard(preset: str, pair: Pair) -> None:
    st.markdown("##### What makes it fire (prepare corpus)")
    view = dashboards.feature_view(preset, *pair)
    if view is None:
        st.caption("No dashboard for this feature's SAE yet: run `corrsteer prepare`.")
        return
    c = st.columns(3)
    c[0].metric("Label", view.label or "(none)")
    c[1].metric("Label F1 (held-out text)", f"{view.f1:.2f}", help=_score_text(view))
    c[2].metric("Density", f"{view.density:.3%}")
    if not view.contexts:
        st.caption("The feature never fired on the prepare corpus.")
    _contexts(view, len(view.contexts))
    left, right = st.columns(2)
    for column, rows, name in ((left, view.promoted, "promoted"), (right, view.suppressed, "suppressed")):
        frame = pd.DataFrame([(token_label(t), v) for t, v in rows], columns=[name, "logit"])
        column.dataframe(frame, hide_index=True)
    counts = pd.DataFrame(
        {"activation ≥": [f"{e:.3g}" for e in view.hist_edges[:-1]], "tokens": list(view.hist_counts)}
    )
    nonzero = counts[counts["tokens"] > 0]
    if not nonzero.empty:
        st.bar_chart(nonzero, x="activation ≥", y="tokens", height=180)


def _neuronpedia(lookup: FeatureLookup | None) -> None:
    st.markdown("##### Neuronpedia")
    if lookup is None:
        st.caption("This preset's SAEs are not on Neuronpedia (e.g. the embedded SAEs): see the local evidence.")
    elif lookup.status == "offline":
        st.info(f"Neuronpedia explanation {OFFLINE_MESSAGE}.")
    elif not lookup.ok or lookup.explanation is None:
        st.warning(md(lookup.message))
    else:
        exp = lookup.explanation
        st.text(exp.description or "(no explanation)")
        for other in exp.other_explanations:
            st.text(f"also: {other}")
        if exp.density is not None:
            st.caption(f"density {exp.density:.3%}")
        st.link_button("Open on Neuronpedia", exp.url, icon=":material/open_in_new:")
        if exp.top_positive_tokens:
            tokens = pd.DataFrame(exp.top_positive_tokens, columns=["promoted token", "logit"])
            st.dataframe(tokens, hide_index=True)


def _class_evidence(run_id: str, pair: Pair) -> None:
    st.markdown("##### Correct versus incorrect")
    ev = resources.class_evidence_for(run_id, *pair)
    c = st.columns(3)
    c[0].metric("Firing rate (correct)", f"{ev.firing_rate_correct:.1%}")
    c[0].metric("Firing rate (incorrect)", f"{ev.firing_rate_incorrect:.1%}")
    c[1].metric("Mean pooled (correct)", f"{ev.mean_correct:.3g}")
    c[1].metric("Mean pooled (incorrect)", f"{ev.mean_incorrect:.3g}")
    c[2].metric("Pearson r", f"{ev.r:+.3f}")
    st.plotly_chart(figures.class_histogram(ev.bin_edges, ev.counts_correct, ev.counts_incorrect))


def _logit_effects(preset: str, pair: Pair) -> None:
    st.markdown("##### What its direction does to the next token")
    promoted, suppressed = resources.logit_evidence(preset, *pair)
    left, right = st.columns(2)
    for column, rows, name in ((left, promoted, "promoted"), (right, suppressed, "suppressed")):
        frame = pd.DataFrame([(token_label(t), v) for t, v in rows], columns=[name, "logit"])
        column.dataframe(frame, hide_index=True)


def _top_generations(preset: str, run_id: str, pair: Pair) -> None:
    st.markdown("##### Top activating generations")
    examples = resources.token_evidence(preset, run_id, *pair)
    if not examples:
        st.caption("The feature did not fire on any sample of this run.")
        return
    vmax = max((max(ex.values, default=0.0) for ex in examples), default=1.0)
    for ex in examples:
        mark = "correct" if ex.record.correct else "incorrect"
        st.caption(f"{mark} · pooled activation {ex.pooled:.3g} · target: {md(repr(ex.record.target[:80]))}")
        st.text(ex.record.prompt[-300:])
        st.markdown(highlight_tokens_html(ex.tokens, ex.values, vmax), unsafe_allow_html=True)


def _any_feature(preset: str, run_id: str) -> None:
    with st.expander("Open any feature of this run"):
        a, b, c = st.columns(3)
        layer = a.selectbox("Layer", resources.collection(run_id).layers, key=state.FEATURES_ANY_LAYER)
        top = resources.saes(preset).d_sae(layer) - 1
        feature = b.number_input("Feature", min_value=0, max_value=top, key=state.FEATURES_ANY_FEATURE)
        c.markdown("&nbsp;")
        if c.button("Open", key="features_any_open"):
            state.put(state.FOCUS, (int(layer), int(feature)))
            st.rerun()
        c.button("Add to the profile", key="features_any_add", on_click=_add_any)


def _add_any() -> None:
    """Callback: the widgets' values now (callback arguments would be the previous run's)."""
    add_candidate(
        int(st.session_state[state.FEATURES_ANY_LAYER]), int(st.session_state[state.FEATURES_ANY_FEATURE])
    )


st.title("Features")
run_id, selection = widgets.require_run()
preset: str = st.session_state[state.PRESET]
selected_pairs = [(s.layer, s.feature) for s in selection.profile.layers]
stored = state.get(state.FOCUS)
focus: Pair | None = (int(stored[0]), int(stored[1])) if stored is not None else None
options = selected_pairs + ([focus] if focus is not None and focus not in selected_pairs else [])
with widgets.show_errors(stop=True), st.spinner("Looking up explanations…"):
    lookups = resources.lookup_explanations(preset, options)
if get_preset(preset).sae.neuronpedia_model is None:
    st.caption("Explanations come from local evidence: this preset's SAEs have no Neuronpedia pages.")
st.subheader("Selected features")
with widgets.show_errors():
    _overview(preset, selection, selected_pairs, lookups)
    _at_a_glance(preset, selected_pairs)

st.subheader("Find a feature")
with widgets.show_errors():
    _search(preset, run_id)

st.subheader("Feature detail")
current = focus if focus is not None and focus in options else options[0]
choice: Pair = st.selectbox("Feature", options, index=options.index(current), format_func=_label)
state.put(state.FOCUS, choice)
steered = {(s.layer, s.feature) for s in getattr(state.get(state.BASE_PROFILE), "layers", ())}
if choice in steered:
    st.caption(f"The profile steers {_label(choice)}.")
else:
    st.button(
        f"Add {_label(choice)} to the profile",
        key="features_add",
        on_click=add_candidate,
        args=choice,
        icon=":material/add:",
        help="It replaces that layer's feature in the profile on the Steer page, or adds the layer.",
    )
with widgets.show_errors():
    _any_feature(preset, run_id)
    _dashboard(preset, choice)
    _neuronpedia(lookups.get(choice))
    _class_evidence(run_id, choice)
    if dashboards.feature_view(preset, *choice) is None:  # the dashboard shows them otherwise
        _logit_effects(preset, choice)
    _top_generations(preset, run_id, choice)
