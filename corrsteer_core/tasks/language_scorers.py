"""An offline judge of which language a short reply is written in (English, French or Spanish).

Small models asked to "reply in French" drift into English, Spanish or a mix; the judge counts cue words that
belong to one language only (function words and a few words the replies use: "capitale", "país") and names the
language with the most cues. Words two of the languages share are not cues ("la", "de", "en", "que" in French
and Spanish; "capital", "on", "y"), so a Spanish reply is not taken for French. Too few cues, or a tie, gives
``"unknown"``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from corrsteer_core.errors import ConfigError, valid_choices
from corrsteer_core.tasks.base import Score, TaskItem
from corrsteer_core.tasks.text import is_degenerate, stripped_span

__all__ = ["LANGUAGES", "LanguageScorer", "detect_language", "language_cues"]


def _cues(words: str) -> frozenset[str]:
    return frozenset(words.split())


_CUES: dict[str, frozenset[str]] = {
    "en": _cues(
        "the is of and to in it that with by this are was its has for which known located city country also "
        "be an from at"
    ),
    "fr": _cues(
        "le les des du est et une qui dans sont au aux pour avec pas je il elle cette ce son sa ses nous vous "
        "très être été où mais ville pays capitale située situé sur par c'est française français"
    ),
    "es": _cues("el los las es del una este esta está con por para país ciudad su sus muy como pero"),
}
LANGUAGES: tuple[str, ...] = tuple(_CUES)
_WORD = re.compile(r"[^\W\d_]+(?:'[^\W\d_]+)?")


def language_cues(text: str) -> dict[str, int]:
    """How many cue words of each language ``text`` contains (case and apostrophe style folded)."""
    words = _WORD.findall(text.lower().replace("’", "'"))
    counts = dict.fromkeys(LANGUAGES, 0)
    for word in words:
        for language, cues in _CUES.items():
            if word in cues:
                counts[language] += 1
    return counts


def detect_language(text: str, *, min_cues: int = 2) -> str:
    """``"en"``, ``"fr"`` or ``"es"``: the language with the most cue words, if it has at least ``min_cues``
    and strictly more than any other; else ``"unknown"``."""
    counts = language_cues(text)
    ranked = sorted(counts.items(), key=lambda kv: kv[1], reverse=True)
    (best, top), (_, second) = ranked[0], ranked[1]
    if top < min_cues or top == second:
        return "unknown"
    return best


@dataclass(frozen=True)
class LanguageScorer:
    """Correct = the reply is written in the language named by the item's target (``en``, ``fr`` or ``es``).

    Empty or collapsed replies are wrong whatever was asked, as in the refusal judges.
    """

    min_cues: int = 2
    name: str = "language"

    def __post_init__(self) -> None:
        if not isinstance(self.min_cues, int) or self.min_cues < 1:
            raise ConfigError(f"min_cues must be a positive integer, got {self.min_cues!r}")

    def __call__(self, generation: str, item: TaskItem) -> Score:
        wanted = item.target.strip().lower()
        if wanted not in LANGUAGES:
            raise ConfigError(
                f"item {item.id!r} has target {item.target!r}; the language scorer needs one of "
                f"{valid_choices(LANGUAGES)}"
            )
        if is_degenerate(generation):
            return Score(False, "incoherent", stripped_span(generation))
        found = detect_language(generation, min_cues=self.min_cues)
        return Score(found == wanted, found, stripped_span(generation))
