"""Answer judges on hand-made edge cases; spans must point at the answer inside the generation."""

from __future__ import annotations

import pytest

from corrsteer_core.errors import ConfigError
from corrsteer_core.tasks import Score, TaskItem, get_scorer
from corrsteer_core.tasks.answer_scorers import extract_letter, extract_number


def item(target: str, *, choices: tuple[str, ...] = (), aliases: tuple[str, ...] = ()) -> TaskItem:
    return TaskItem(id="t-0", prompt="p", target=target, choices=choices, aliases=aliases)


def answer_at(generation: str, score: Score) -> str:
    assert score.span is not None, score
    return generation[score.span[0] : score.span[1]]


ABCD = ("A", "B", "C", "D")


@pytest.mark.parametrize(
    ("generation", "expected"),
    [
        ("B", "B"),
        (" B.", "B"),
        ("The answer is B", "B"),
        ("(B)", "B"),
        ("B) 42", "B"),
        ("Answer: C", "C"),
        ("answer is: (D)", "D"),
        ("A good choice would be B", "B"),  # "A" as an article is not an answer
        ("I think it is C.", "C"),  # nor "I" as a pronoun
        ("I'm going with D", "D"),
        ("A. Paris", "A"),
        ("b", "B"),
        ("E", None),  # not among the choices
        ("The", None),
        ("", None),
    ],
)
def test_letter_extraction(generation: str, expected: str | None) -> None:
    score = get_scorer("letter")(generation, item("B", choices=ABCD))
    assert score.answer == expected
    assert score.correct == (expected == "B")
    if expected is not None:
        assert answer_at(generation, score).upper() == expected


def test_letter_uses_item_choices() -> None:
    ten = tuple("ABCDEFGHIJ")
    assert extract_letter(" J", ten) == ("J", (1, 2))
    assert extract_letter(" J", ABCD) is None
    assert extract_letter("I.", ten) == ("I", (0, 1))


@pytest.mark.parametrize(
    ("generation", "target", "answer", "correct"),
    [
        ("#### 1,234", "1234", "1234", True),
        ("She pays 3 + 4 = 7 dollars.\n#### 7", "7", "7", True),
        ("We get 12 apples, then 5 more: 17", "17", "17", True),
        ("1,234 apples and 5 pears", "1234", "5", False),  # the last number, not the first
        ("The temperature is -12 degrees", "-12", "-12", True),
        ("5-3 is two", "2", "3", False),  # a minus after a digit is subtraction, not a sign
        ("It costs $18.00 in total", "18", "18.00", True),
        ("about 0.5", "0.5", "0.5", True),
        ("no digits here", "3", None, False),
        ("#### 2,000,000", "2000000", "2000000", True),
    ],
)
def test_number_scorer(generation: str, target: str, answer: str | None, correct: bool) -> None:
    score = get_scorer("number")(generation, item(target))
    assert (score.answer, score.correct) == (answer, correct)
    if answer is not None:
        assert answer_at(generation, score).replace(",", "").lstrip("$") == answer


@pytest.mark.parametrize(
    ("generation", "answer"),
    [
        ("12 * 8 = 104\n\nThis is a simple example of 2 numbers.", "104"),
        ("20 - 56 is 20 - 56 = 1.", "1"),  # restated expressions are skipped
        ("The answer is 141.", "141"),
        ("To calculate 7 * 8, multiply 7 by itself, which is 72. So 7 * 8 equals", "72"),
        ("To add 59 and 63, we need to combine", "63"),  # no stated result: the last number
        ("#### 9 and then = 4", "9"),
    ],
)
def test_number_result_strategy(generation: str, answer: str) -> None:
    found = extract_number(generation, "result")
    assert found is not None and found[0] == answer


def test_number_rejects_unknown_strategy() -> None:
    with pytest.raises(ConfigError, match="valid strategies are last, result"):
        get_scorer("number", strategy="first")


def test_exact_ignores_case_punctuation_accents_and_articles() -> None:
    exact = get_scorer("exact")
    assert exact("  the Bogota. ", item("Bogotá")).correct
    assert exact("Washington", item("Washington, D.C.", aliases=("Washington",))).correct
    assert not exact("Bogotá is the capital", item("Bogotá")).correct
    assert exact("  x  ", item("x")).span == (2, 3)


def test_contains_whole_words_with_span() -> None:
    contains = get_scorer("contains")
    generation = "The capital of Côte d'Ivoire is Yamoussoukro."
    score = contains(generation, item("Yamoussoukro", aliases=("Abidjan",)))
    assert score.correct and answer_at(generation, score) == "Yamoussoukro"
    assert contains("It is Kiev, of course", item("Kyiv", aliases=("Kiev",))).answer == "Kiev"
    assert not contains("The capital of Tunisia is Tunisiana", item("Tunis")).correct  # word boundaries
    assert not contains("Kuwait", item("Kuwait City")).correct
    generation = "The capital of Brazil is Brasilia."
    assert answer_at(generation, contains(generation, item("Brasília"))) == "Brasilia"


def test_regex_scorer_groups_and_modes() -> None:
    assert get_scorer("regex", pattern=r"#(\d+)")("see #42 here", item("42")) == Score(True, "42", (5, 7))
    named = get_scorer("regex", pattern=r"final: (?P<answer>\w+)")
    assert named("Final: Paris!", item("paris")).correct
    assert not named("final: Rome", item("Paris")).correct
    assert get_scorer("regex", pattern=r"^\d+$", mode="match")("12", item("x")).correct
    assert get_scorer("regex", pattern=r"x")("nothing", item("x")) == Score(False, None, None)


def test_regex_scorer_errors_name_the_problem() -> None:
    with pytest.raises(ConfigError, match="needs pattern"):
        get_scorer("regex")
    with pytest.raises(ConfigError, match="invalid regex"):
        get_scorer("regex", pattern="(")


@pytest.mark.parametrize(
    ("generation", "lenient", "strict"),
    [
        ("42", True, True),
        (" 42.", True, True),
        ("40 + 2 = 42", True, False),
        ("The answer is 42.", False, False),
        ("42\n\nThis is a simple sum.", False, False),
        ("forty-two", False, False),
        ("42 42 42 42 42 42 42 42", False, False),  # collapsed repetition is not compliance
        ("= = = = = = = =", False, False),
    ],
)
def test_numeric_only_format_judge(generation: str, lenient: bool, strict: bool) -> None:
    assert get_scorer("numeric_only")(generation, item("42")).correct is lenient
    assert get_scorer("numeric_only", strict=True)(generation, item("42")).correct is strict


def test_get_scorer_lists_valid_choices() -> None:
    with pytest.raises(ConfigError, match="valid scorers are exact, contains, regex, letter, number"):
        get_scorer("llm_judge")
    with pytest.raises(ConfigError, match="valid options are strategy"):
        get_scorer("number", pattern="x")


def test_article_only_targets_still_match():
    """An option letter "A" (or the word "a") must not normalise to nothing and become unmatchable."""
    from corrsteer_core.tasks import TaskItem, get_scorer

    item = TaskItem(id="x", prompt="p", target="A")
    assert get_scorer("exact")("A", item).correct
    assert get_scorer("exact")(" a. ", item).correct
    assert not get_scorer("exact")("B", item).correct
    found = get_scorer("contains")("I pick a here", item)
    assert found.correct and found.span == (7, 8)
    assert get_scorer("regex", pattern=r"answer: (\w+)")("answer: A", item).correct
    # articles are still ignored for ordinary answers
    assert get_scorer("exact")("The Hague", TaskItem(id="y", prompt="p", target="Hague")).correct
