"""Every session-state key the app uses, in one place, with the few helpers that change several at once.

Pages read and write ``st.session_state`` only through these names, so a reader can see at a glance what a
session remembers: the preset, the task and run it is looking at, the selection, the profile being edited and
the results computed for it, and the keys of the widgets whose values the pages read.
"""

from __future__ import annotations

from typing import Any

import streamlit as st

from corrsteer_core.errors import ProfileError

# what the session is looking at ---------------------------------------------------------------------------
PRESET = "preset"  # str: the preset chosen in the sidebar (a widget key)
EXPERIMENT = "experiment"  # corrsteer_core.experiment.Experiment: the task and split of the run on screen
RUN_ID = "run_id"  # str: the collection run on screen
SELECTION = "selection"  # corrsteer_core.variants.SelectionResult of the current run
FOCUS = "focus_feature"  # tuple[int, int]: (layer, feature) opened on the Features page

# the profile being edited on the Steer page ---------------------------------------------------------------
BASE_PROFILE = "base_profile"  # SteeringProfile: the settings table starts from this one
WORKING_PROFILE = "working_profile"  # SteeringProfile: base + the user's edits (what is steered and exported)
EDITOR_VERSION = "steer_editor_version"  # int: bumped to give the settings table a fresh widget
GLOBAL_SCALE = "steer_global_scale"  # float widget: global scale slider

# results for the working profile --------------------------------------------------------------------------
TRY_RESULT = "try_result"  # dict: the last baseline-vs-steered generation
EVALUATION = "evaluation"  # tuple[str, EvaluationResult]: (profile content hash, result)
SWEEP = "sweep"  # tuple[str, DataFrame]: (profile content hash, scale sweep)
CONTROLS = "controls"  # tuple[str, ControlReport]
VALIDATION = "validation"  # DataFrame: each layer steered alone on the validation split
TESTED = "tested"  # dict[str, str]: result key (EVALUATION, SWEEP, CONTROLS) -> the profile it tested, in words

# background work ----------------------------------------------------------------------------------------------
JOB = "job"  # app.ui.jobs.Job: the one long computation this session runs
NOTICES = "notices"  # list[tuple[str, str]]: (level, message) left by finished jobs, shown once

KEEP_PREFIX = "keep_"  # widget keys starting with this survive page switches (see widgets.keep_widget_state)

# widget keys whose values the pages read (buttons keep their keys inline: they hold no state) ----------------
# ``keep_*`` keys survive page switches (see widgets.keep_widget_state); the others belong to one page visit.
RUN_BATCH = "keep_run_batch"
RUN_CONSTRAINED = "keep_run_constrained"
RUN_BUDGET = "keep_run_budget"
RUN_K = "keep_run_k"
RUN_LAM = "keep_run_lam"
RUN_LIMIT = "keep_run_limit"
RUN_MAX_NEW = "keep_run_max_new"
RUN_MIN_CLASS = "keep_run_min_class"
RUN_N_TEST = "keep_run_n_test"
RUN_N_TRAIN = "keep_run_n_train"
RUN_N_VAL = "keep_run_n_val"
RUN_OPTIONS = "keep_run_options"
RUN_POOLING = "keep_run_pooling"
RUN_SEED = "keep_run_seed"
RUN_SELECT_HALF = "keep_run_select_half"
RUN_SELECTOR = "keep_run_selector"
RUN_SOURCE = "keep_run_source"
RUN_SPAN = "keep_run_span"
RUN_STRATA = "keep_run_strata"
RUN_TASK = "keep_run_task"
RUN_TASK_SOURCE = "keep_run_task_source"
RUN_VARIANT = "keep_run_variant"
RUN_PICK = "run_pick"
RUN_UP_ANSWER = "run_up_answer"
RUN_UP_CHOICES = "run_up_choices"
RUN_UP_MAX_NEW = "run_up_max_new"
RUN_UP_META = "run_up_meta"
RUN_UP_NAME = "run_up_name"
RUN_UP_POOLING = "run_up_pooling"
RUN_UP_PROMPT = "run_up_prompt"
RUN_UP_SCORER = "run_up_scorer"
RUN_UP_SCORER_OPTIONS = "run_up_scorer_options"
RUN_UP_TEMPLATE = "run_up_template"
RUN_UP_USE_TEMPLATE = "run_up_use_template"
RUN_UPLOAD = "run_upload"
CORR_HEATMAP = "corr_heatmap"
CORR_OPEN = "corr_open"
CORR_PICK = "corr_pick"
FEATURES_ANY_FEATURE = "features_any_feature"
FEATURES_ANY_LAYER = "features_any_layer"
FEATURES_FOUND = "features_found"
FEATURES_SEARCH = "features_search"
STEER_LIVE = "keep_steer_live"
STEER_MAX_NEW = "keep_steer_max_new"
STEER_MODE = "keep_steer_mode"
STEER_PROMPT = "keep_steer_prompt"
STEER_SCALES = "keep_steer_scales"
STEER_ITEM = "steer_item"
PROFILES_CMP_A = "profiles_cmp_a"
PROFILES_CMP_B = "profiles_cmp_b"
PROFILES_CMP_ONLY = "profiles_cmp_only"
PROFILES_NAME = "profiles_name"
PROFILES_PICK = "profiles_pick"
PROFILES_UPLOAD = "profiles_upload"

_RUN_KEYS = (
    RUN_ID,
    SELECTION,
    FOCUS,
    BASE_PROFILE,
    WORKING_PROFILE,
    TRY_RESULT,
    EVALUATION,
    SWEEP,
    CONTROLS,
    VALIDATION,
    TESTED,
)


def get(key: str, default: Any = None) -> Any:
    return st.session_state.get(key, default)


def put(key: str, value: Any) -> None:
    st.session_state[key] = value


def drop(*keys: str) -> None:
    for key in keys:
        st.session_state.pop(key, None)


def notify(level: str, message: str) -> None:
    """Leave a message ("success", "info", "warning", "error") to be shown once on the next run."""
    st.session_state.setdefault(NOTICES, []).append((level, message))


def take_notices() -> list[tuple[str, str]]:
    return st.session_state.pop(NOTICES, [])


def editor_key() -> str:
    return f"steer_editor_{st.session_state.get(EDITOR_VERSION, 0)}"


def set_profile(profile: Any) -> None:
    """Make ``profile`` the one the Steer page edits, discarding pending table edits and the scale slider.

    The last try-it generation is kept: the Steer page regenerates it for the new settings.
    """
    st.session_state[BASE_PROFILE] = profile
    st.session_state[WORKING_PROFILE] = profile
    st.session_state[EDITOR_VERSION] = st.session_state.get(EDITOR_VERSION, 0) + 1
    st.session_state.pop(GLOBAL_SCALE, None)


def add_to_profile(setting: Any) -> None:
    """Steer ``setting`` (a LayerSetting, e.g. from ``variants.feature_setting``) in the profile being edited:
    it replaces that layer's feature or adds the layer. Without a profile yet there is nothing to add to."""
    base = st.session_state.get(BASE_PROFILE)
    if base is None:
        raise ProfileError("there is no profile to add to yet: run a selection or import a profile first")
    set_profile(base.with_setting(setting))


def remove_from_profile(layer: int) -> None:
    """Stop steering ``layer`` in the profile being edited (its setting is removed)."""
    base = st.session_state.get(BASE_PROFILE)
    if base is None:
        raise ProfileError("there is no profile to edit yet")
    set_profile(base.without_layer(layer))


def set_run(run_id: str, selection: Any, experiment: Any) -> None:
    """Show a run: its selection, its task, and its selected profile ready to steer."""
    reset_run()
    st.session_state[RUN_ID] = run_id
    st.session_state[SELECTION] = selection
    st.session_state[EXPERIMENT] = experiment
    set_profile(selection.profile)


def reset_run() -> None:
    """Forget everything tied to the current run (a preset change or a new run)."""
    drop(*_RUN_KEYS, EXPERIMENT)
