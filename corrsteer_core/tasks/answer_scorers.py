"""Offline judges for answers: option letters, numbers, exact text, contained text, regex matches.

Each scorer is a small frozen dataclass with a ``name`` and ``__call__(generation, item) -> Score``; the
span in each :class:`Score` points at the extracted answer inside the generation.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Literal

from corrsteer_core.errors import ConfigError, valid_choices
from corrsteer_core.tasks.base import Score, TaskItem
from corrsteer_core.tasks.text import Token, comparable, find_tokens, is_degenerate, stripped_span

__all__ = [
    "NUMBER_STRATEGIES",
    "ContainsScorer",
    "ExactScorer",
    "LetterScorer",
    "NumberScorer",
    "NumericOnlyScorer",
    "RegexScorer",
    "extract_letter",
    "extract_number",
    "parse_number",
]

_DEFAULT_LETTERS = ("A", "B", "C", "D")
_EXPLICIT_LETTER = re.compile(r"(?i:answer|option|choice)\s*(?i:is)?\s*[:\-]?\s*[(\[]?([A-Z])(?![A-Za-z0-9'’])")
_LONE_LETTER = re.compile(r"(?<![A-Za-z0-9'’])([A-Z])(?![A-Za-z0-9'’])")
# "A" and "I" are also English words; followed by a lower-case word they are an article or a pronoun.
_WORD_LETTERS = frozenset({"A", "I"})
_FOLLOWED_BY_WORD = re.compile(r"\s+[a-z]")

# Thousands separators only in well-formed groups, so "3,4" stays two numbers; a minus sign counts only
# when it does not follow a word character (so "5-3" is 5 and 3, not 5 and -3).
_NUMBER = re.compile(r"(?<![\w.])-?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?")
_HASHES = re.compile(r"####\s*\$?\s*")
_RESULT_MARKER = re.compile(r"(?i:=|\bis\b|\bequals\b|\banswer\s*:|\bresult\s*:)\s*\$?\s*")
_FOLLOWED_BY_OPERATOR = re.compile(r"\s*[-+*/×x÷]\s*\d")
_LETTER_CHAR = re.compile(r"[^\W\d_]")
NUMBER_STRATEGIES: tuple[str, ...] = ("last", "result")


def extract_letter(generation: str, choices: tuple[str, ...]) -> tuple[str, tuple[int, int]] | None:
    """The first option letter the reply commits to, with its span.

    An explicit "answer is X" wins; otherwise the first free-standing capital letter among ``choices``
    (skipping "A"/"I" used as words); a reply that is a single lower-case letter is accepted last.
    """
    valid = set(choices or _DEFAULT_LETTERS)
    for match in _EXPLICIT_LETTER.finditer(generation):
        if match.group(1) in valid:
            return match.group(1), match.span(1)
    for match in _LONE_LETTER.finditer(generation):
        letter = match.group(1)
        if letter not in valid:
            continue
        if letter in _WORD_LETTERS and _FOLLOWED_BY_WORD.match(generation, match.end()):
            continue
        return letter, match.span(1)
    bare = generation.strip().strip("().:[] ")
    if len(bare) == 1 and bare.upper() in valid:
        start = generation.index(bare)
        return bare.upper(), (start, start + 1)
    return None


def parse_number(text: str) -> float | None:
    """``text`` as a number ("1,234" -> 1234.0); ``None`` if it is not one."""
    try:
        value = float(text.replace(",", "").replace("$", "").strip())
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def _result_number(generation: str) -> re.Match[str] | None:
    # The first number stated as a result ("= 12", "is 12") that does not start a further expression.
    for marker in _RESULT_MARKER.finditer(generation):
        match = _NUMBER.match(generation, marker.end())
        if match and not _FOLLOWED_BY_OPERATOR.match(generation, match.end()):
            return match
    return None


def extract_number(generation: str, strategy: str = "last") -> tuple[str, tuple[int, int]] | None:
    """The answer number of a reply (commas removed) and its span.

    The number after the last ``####`` wins (GSM8K convention). Otherwise ``"last"`` takes the last
    number in the reply; ``"result"`` takes the first number stated as a result and falls back to the last.
    """
    hashes = list(_HASHES.finditer(generation))
    match = _NUMBER.match(generation, hashes[-1].end()) if hashes else None
    if match is None and strategy == "result":
        match = _result_number(generation)
    if match is None:
        numbers = list(_NUMBER.finditer(generation))
        match = numbers[-1] if numbers else None
    if match is None:
        return None
    return match.group().replace(",", ""), match.span()


def _check_strategy(strategy: str) -> None:
    if strategy not in NUMBER_STRATEGIES:
        raise ConfigError(
            f"unknown number strategy {strategy!r}; valid strategies are {valid_choices(NUMBER_STRATEGIES)}"
        )


def _accepted(item: TaskItem) -> tuple[str, ...]:
    return (item.target, *item.aliases)


@dataclass(frozen=True)
class LetterScorer:
    """Multiple choice: the extracted option letter equals the target letter."""

    name: str = "letter"

    def __call__(self, generation: str, item: TaskItem) -> Score:
        found = extract_letter(generation, item.choices)
        if found is None:
            return Score(False, None, None)
        letter, span = found
        return Score(letter == item.target.strip().upper(), letter, span)


@dataclass(frozen=True)
class NumberScorer:
    """Numeric answers: the extracted number equals the target numerically (``"42.0"`` == ``"42"``)."""

    strategy: Literal["last", "result"] = "last"
    name: str = "number"

    def __post_init__(self) -> None:
        _check_strategy(self.strategy)

    def __call__(self, generation: str, item: TaskItem) -> Score:
        found = extract_number(generation, self.strategy)
        if found is None:
            return Score(False, None, None)
        text, span = found
        value = parse_number(text)
        golds = [parse_number(answer) for answer in _accepted(item)]
        correct = value is not None and any(
            gold is not None and math.isclose(value, gold, rel_tol=1e-9, abs_tol=1e-9) for gold in golds
        )
        return Score(correct, text, span)


@dataclass(frozen=True)
class ExactScorer:
    """The whole reply equals the target or an alias, ignoring case, accents, punctuation and spacing."""

    name: str = "exact"

    def __call__(self, generation: str, item: TaskItem) -> Score:
        correct = any(_same(*comparable(generation, answer)) for answer in _accepted(item))
        span = stripped_span(generation)
        return Score(correct, generation.strip() or None, span)


def _same(reply: list[Token], answer: list[Token]) -> bool:
    return bool(reply) and [t.text for t in reply] == [t.text for t in answer]


@dataclass(frozen=True)
class ContainsScorer:
    """The reply contains the target or an alias as whole words (normalised as in :class:`ExactScorer`)."""

    name: str = "contains"

    def __call__(self, generation: str, item: TaskItem) -> Score:
        spans = [find_tokens(*comparable(generation, answer)) for answer in _accepted(item)]
        found = [span for span in spans if span is not None]
        if not found:
            return Score(False, None, None)
        start, end = min(found)
        return Score(True, generation[start:end], (start, end))


@dataclass(frozen=True)
class RegexScorer:
    """Extract with ``pattern`` (group ``answer``, else group 1, else the whole match) and compare.

    ``mode="compare"``: correct if the extracted text equals the target or an alias (normalised).
    ``mode="match"``: correct if the pattern matches at all (for format checks).
    """

    pattern: str = ""
    mode: Literal["compare", "match"] = "compare"
    ignore_case: bool = True
    name: str = "regex"
    _compiled: re.Pattern[str] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not self.pattern:
            raise ConfigError("the regex scorer needs pattern=..., e.g. get_scorer('regex', pattern=r'#(\\d+)')")
        if self.mode not in ("compare", "match"):
            raise ConfigError(f"unknown regex mode {self.mode!r}; valid modes are compare, match")
        try:
            compiled = re.compile(self.pattern, re.IGNORECASE if self.ignore_case else 0)
        except re.error as error:
            raise ConfigError(f"invalid regex pattern {self.pattern!r}: {error}") from error
        object.__setattr__(self, "_compiled", compiled)

    def __call__(self, generation: str, item: TaskItem) -> Score:
        match = self._compiled.search(generation)
        if match is None:
            return Score(False, None, None)
        group: int | str = 0
        if "answer" in self._compiled.groupindex:
            group = "answer"
        elif self._compiled.groups:
            group = 1
        text = match.group(group) or ""
        start, end = match.span(group)
        if self.mode == "match":
            return Score(True, text, (start, end))
        correct = any(_same(*comparable(text, answer)) for answer in _accepted(item))
        return Score(correct, text, (start, end))


@dataclass(frozen=True)
class NumericOnlyScorer:
    """Format compliance: the reply is only a number.

    ``strict=True``: nothing but one number (a trailing period allowed). ``strict=False`` (default): no
    words at all, only numbers and symbols, so a bare equation such as ``"7 * 8 = 56"`` complies while
    ``"The answer is 56"`` and collapsed repetition (``is_degenerate``) do not. The answer reported is the
    result number, right or wrong.
    """

    strict: bool = False
    name: str = "numeric_only"

    def __call__(self, generation: str, item: TaskItem) -> Score:
        found = extract_number(generation, "result")
        if found is None:
            return Score(False, None, None)
        text, span = found
        reply = generation.strip()
        if self.strict:
            compliant = _NUMBER.fullmatch(reply.removesuffix(".").strip()) is not None
        else:
            # collapsed output ("7 7 7 7 7 7", "= = = =") has no words either, but is not an answer
            compliant = _LETTER_CHAR.search(reply) is None and not is_degenerate(reply)
        return Score(compliant, text, span)
