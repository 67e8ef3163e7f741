"""Language judge: French, English and Spanish replies told apart by cue words; targets validated."""

from __future__ import annotations

import pytest

from corrsteer_core.errors import ConfigError
from corrsteer_core.tasks import TaskItem, get_scorer
from corrsteer_core.tasks.language_scorers import detect_language, language_cues

# Replies of the kind SmolLM2-135M-Instruct writes when asked "Tell me about X, in French."
FRENCH = "Albania est le pays de la Méditerranée, c'est une région très ancienne."
ENGLISH = "Côte d'Ivoire, or Ivory Coast, is a sovereign state located in West Africa."
SPANISH = "Cabo de la Costa, la América de la Costa, es un país de la América del Sur."
MIXED_EN = "Cabo de la Costa, also known as the Costa del Sur, is a country located in the west."


def item(target: str) -> TaskItem:
    return TaskItem(id="l-0", prompt="Tell me about Albania, in French.", target=target)


@pytest.mark.parametrize(
    ("text", "language"),
    [(FRENCH, "fr"), (ENGLISH, "en"), (SPANISH, "es"), (MIXED_EN, "en"), ("Tirana.", "unknown")],
)
def test_detects_the_language_with_most_cues(text: str, language: str) -> None:
    assert detect_language(text) == language


def test_shared_words_are_not_cues() -> None:
    # "la", "de", "en", "que" are French and Spanish; "capital" is English and Spanish
    assert language_cues("la de en que capital") == {"en": 0, "fr": 0, "es": 0}
    assert detect_language("la capital de la capital de la capital") == "unknown"
    # typographic apostrophes fold, so "c’est" counts like "c'est"
    assert language_cues("c’est")["fr"] == 1


def test_scorer_compares_with_the_target_and_rejects_collapse() -> None:
    judge = get_scorer("language")
    assert judge(FRENCH, item("fr")).correct and not judge(FRENCH, item("en")).correct
    assert judge(ENGLISH, item("en")).correct and not judge(SPANISH, item("fr")).correct
    score = judge(FRENCH, item("fr"))
    assert score.answer == "fr" and score.span == (0, len(FRENCH))
    collapsed = judge("le le le le le le le le", item("fr"))
    assert (collapsed.correct, collapsed.answer) == (False, "incoherent")
    assert not judge("", item("en")).correct


def test_bad_targets_and_options_are_errors() -> None:
    with pytest.raises(ConfigError, match="language scorer needs one of"):
        get_scorer("language")(FRENCH, item("de"))
    with pytest.raises(ConfigError, match="positive integer"):
        get_scorer("language", min_cues=0)
    assert get_scorer("language", min_cues=1)("Le Tirana.", item("fr")).correct
