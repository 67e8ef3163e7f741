"""Built-in tasks: deterministic given a seed, correct targets, the advertised shapes and judges."""

from __future__ import annotations

import random
from collections import Counter

import pytest

from corrsteer_core.errors import TaskError
from corrsteer_core.tasks import get_task
from corrsteer_core.tasks.builtin_arithmetic import LEVELS, generate_problems
from corrsteer_core.tasks.builtin_text import capitals_table
from corrsteer_core.tasks.text import find_tokens, tokenise

BUILTIN = ("arithmetic", "capitals", "safety", "format", "language")


@pytest.mark.parametrize("name", BUILTIN)
def test_same_seed_same_items_regardless_of_global_rngs(name: str) -> None:
    random.seed(1)
    first = get_task(name, seed=3, limit=120)
    random.seed(2)
    again = get_task(name, seed=3, limit=120)
    assert first.items == again.items and len(first) == 120
    assert get_task(name, seed=4, limit=120).items != first.items
    assert first.source == "builtin" and not list(filter(None, [i.id for i in first.items if not i.id]))


def test_arithmetic_targets_and_strata() -> None:
    task = get_task("arithmetic")
    assert len(task) == 600 and len({i.prompt for i in task.items}) == 600
    assert Counter(i.metadata["operation"] for i in task.items) == {"+": 200, "-": 200, "*": 200}
    for item in task.items:
        a, op, b = item.prompt.removeprefix("What is ").removesuffix("? Answer briefly.").split()
        assert int(item.target) == {"+": int(a) + int(b), "-": int(a) - int(b), "*": int(a) * int(b)}[op]
        assert int(item.target) > 0 and item.target not in (a, b)
    assert task.items[0].id == "arithmetic-0000" and task.strata_keys == ("operation",)
    assert task.scorer("34 + 43 = 77", task.items[0]).correct == (task.items[0].target == "77")
    assert (task.max_new_tokens, task.kind, task.pooling) == (32, "short_answer", "max")


def test_arithmetic_options() -> None:
    only_products = get_task("arithmetic", operations=["*"], n=50, level="easy")
    assert {i.metadata["operation"] for i in only_products.items} == {"*"}
    # A subset of operations draws the same products as the full mix does.
    mixed = generate_problems(150, seed=0, level="easy")
    assert [p for p in mixed if p.op == "*"] == generate_problems(50, seed=0, operations=["*"], level="easy")
    with pytest.raises(TaskError, match="valid levels are easy, medium, hard"):
        get_task("arithmetic", level="insane")
    with pytest.raises(TaskError, match="valid are \\+, -, \\*"):
        get_task("arithmetic", operations=["/"])
    with pytest.raises(TaskError, match="not enough distinct medium problems"):
        get_task("arithmetic", n=5000)
    assert set(LEVELS) == {"easy", "medium", "hard"}


def test_format_pairs_with_arithmetic() -> None:
    fmt, arithmetic = get_task("format", n=30), get_task("arithmetic", n=30)
    assert [i.target for i in fmt.items] == [i.target for i in arithmetic.items]
    assert fmt.items[0].prompt.endswith("? Reply with only the number.")
    item = fmt.items[0]
    equation = item.prompt.removeprefix("What is ").removesuffix("? Reply with only the number.") + " = 1"
    assert fmt.scorer(equation, item).correct  # no words: compliant, even with a wrong number
    assert not fmt.scorer(f"The answer is {item.target}.", item).correct
    assert fmt.extra_scorers[0].name == "number" and fmt.extra_scorers[0](f"= {item.target}", item).correct
    assert get_task("format", n=5, strict=True).scorer.strict  # type: ignore[attr-defined]


def test_capitals_table_and_items() -> None:
    assert len(capitals_table()) >= 190
    task = get_task("capitals")
    assert 180 <= len(task) <= len(capitals_table())
    by_country = {i.metadata["country"]: i for i in task.items}
    assert (
        by_country["France"].prompt == "What is the capital of France?" and by_country["France"].target == "Paris"
    )
    assert by_country["Netherlands"].prompt == "What is the capital of the Netherlands?"
    assert "Kiev" in by_country["Ukraine"].aliases
    # Where the capital is named in the question an echo would score, so those countries are left out.
    assert not {"Singapore", "Monaco", "Guinea-Bissau", "Djibouti"} & set(by_country)
    for item in task.items:
        question = tokenise(item.metadata["country"])
        assert all(find_tokens(question, tokenise(a)) is None for a in (item.target, *item.aliases))
    assert task.scorer("The capital of Ukraine is Kyiv.", by_country["Ukraine"]).correct
    assert (task.max_new_tokens, task.scorer.name) == (16, "contains")


def test_safety_pairs() -> None:
    task = get_task("safety")
    labels = Counter(i.metadata["label"] for i in task.items)
    assert labels["harmful"] >= 200 and labels["harmful"] == labels["harmless"]
    assert task.paired_key == "label" and task.scorer.name == "refusal_pair" and task.max_new_tokens == 32
    pairs: dict[str, list[str]] = {}
    for item in task.items:
        pairs.setdefault(item.metadata["pair_id"], []).append(item.metadata["label"])
        assert item.target == ("refuse" if item.metadata["label"] == "harmful" else "comply")
    assert all(sorted(v) == ["harmful", "harmless"] for v in pairs.values())
    categories = {i.metadata["category"] for i in task.items}
    assert {"weapons", "malware", "fraud", "stalking"} <= categories
    only = get_task("safety", categories=["malware"])
    assert {i.metadata["category"] for i in only.items} == {"malware"}
    with pytest.raises(TaskError, match="valid are"):
        get_task("safety", categories=["knitting"])


def test_language_pairs() -> None:
    task = get_task("language")
    assert task.paired_key == "language" and task.scorer.name == "language" and task.max_new_tokens == 32
    groups: dict[str, list[tuple[str, str]]] = {}
    for item in task.items:
        language = item.metadata["language"]
        assert item.target == {"French": "fr", "English": "en"}[language] and f"in {language}." in item.prompt
        groups.setdefault(item.metadata["pair_id"], []).append((language, item.metadata["phrasing"]))
    # every country: both phrasings in both languages, in one group so splits keep them together
    assert len(groups) == len(capitals_table())
    assert all(
        sorted(g) == [("English", "0"), ("English", "1"), ("French", "0"), ("French", "1")]
        for g in groups.values()
    )
    assert len({i.id for i in task.items}) == len(task.items)


def _stems(prompt: str) -> set[str]:
    # Five-letter stems so that "strangle"/"strangling" and "nerve"/"nerves" count as the same word.
    template = {"how", "can", "the", "way", "tell", "what", "best", "give", "step-by-step", "instructions"}
    template |= {"want", "i'm", "going", "tonight", "explain"}
    template |= {"for", "and", "with", "from", "her", "his", "own", "out", "get", "without", "into"}
    sound_alikes = {"phish": "fish"}
    words = prompt.lower().replace("?", " ").replace(".", " ").split()
    return {sound_alikes.get(word, word)[:5] for word in words if len(word) >= 3 and word not in template}


def test_safety_look_alikes_share_a_key_word() -> None:
    task = get_task("safety")
    by_pair: dict[str, dict[str, str]] = {}
    for item in task.items:
        by_pair.setdefault(item.metadata["pair_id"], {})[item.metadata["label"]] = item.prompt
    for prompts in by_pair.values():
        assert _stems(prompts["harmful"]) & _stems(prompts["harmless"]), prompts
