"""The scorer registry: every judge by name, with its options checked up front."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

from corrsteer_core.errors import ConfigError, valid_choices
from corrsteer_core.tasks.answer_scorers import (
    ContainsScorer,
    ExactScorer,
    LetterScorer,
    NumberScorer,
    NumericOnlyScorer,
    RegexScorer,
)
from corrsteer_core.tasks.base import Scorer
from corrsteer_core.tasks.language_scorers import LanguageScorer
from corrsteer_core.tasks.refusal_scorers import RefusalPairScorer, RefusalScorer, XSTestScorer

__all__ = ["SCORER_NAMES", "get_scorer", "scorer_options"]

_FACTORIES: dict[str, Callable[..., Scorer]] = {
    "exact": ExactScorer,
    "contains": ContainsScorer,
    "regex": RegexScorer,
    "letter": LetterScorer,
    "number": NumberScorer,
    "numeric_only": NumericOnlyScorer,
    "refusal": RefusalScorer,
    "xstest": XSTestScorer,
    "refusal_pair": RefusalPairScorer,
    "language": LanguageScorer,
}
SCORER_NAMES: tuple[str, ...] = tuple(_FACTORIES)


def scorer_options(name: str) -> tuple[str, ...]:
    """The keyword options scorer ``name`` accepts."""
    factory = _factory(name)
    return tuple(p for p in inspect.signature(factory).parameters if p != "name" and not p.startswith("_"))


def get_scorer(name: str, **options: Any) -> Scorer:
    """A scorer by name: exact, contains, regex (pattern=...), letter, number (strategy=last|result),
    numeric_only (strict=...), refusal, xstest, refusal_pair (label_key=..., judge=harmbench|xstest|any),
    language (min_cues=...)."""
    factory = _factory(name)
    valid = scorer_options(name)
    unknown = sorted(set(options) - set(valid))
    if unknown:
        raise ConfigError(
            f"scorer {name!r} has no option(s) {', '.join(unknown)}; valid options are {valid_choices(valid)}"
        )
    return factory(**options)


def _factory(name: str) -> Callable[..., Scorer]:
    try:
        return _FACTORIES[name]
    except KeyError:
        raise ConfigError(f"unknown scorer {name!r}; valid scorers are {valid_choices(SCORER_NAMES)}") from None
