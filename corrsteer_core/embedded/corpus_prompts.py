"""The user requests the embedded SAEs' corpus is made of (written for corrsteer), deduplicated and seeded.

Mix, by share of the pool: open-ended requests over many topics (~45%), prompts of the built-in tasks and of
the reference benchmark formats (~40%: arithmetic, answer-format instructions, capitals, refusal pairs, multiple
choice, GSM8K-style word problems, HarmBench-style requests, SimpleQA-style questions), and everyday
how-to, coding and translation requests (~15%). Only prompts are used: the model writes every answer, and no
correctness label ever reaches the SAEs.
"""

from __future__ import annotations

import random
from collections.abc import Callable

__all__ = ["corpus_prompts"]

TOPICS = (
    "photosynthesis",
    "the water cycle",
    "black holes",
    "the French Revolution",
    "machine learning",
    "volcanoes",
    "the immune system",
    "compound interest",
    "climate change",
    "the Roman Empire",
    "electric cars",
    "DNA",
    "the stock market",
    "honey bees",
    "the internet",
    "vaccines",
    "earthquakes",
    "jazz music",
    "the moon landing",
    "recycling",
    "sleep",
    "coffee",
    "the Great Wall of China",
    "rainbows",
    "gravity",
    "democracy",
    "chess",
    "the printing press",
    "solar panels",
    "antibiotics",
    "the Amazon rainforest",
    "inflation",
    "Shakespeare",
    "the human heart",
    "tides",
    "bread baking",
    "bicycles",
    "the periodic table",
    "coral reefs",
    "friendship",
    "time management",
    "public speaking",
    "the Olympic Games",
    "meditation",
    "Python programming",
    "prime numbers",
    "the Renaissance",
    "glaciers",
    "electricity",
    "wolves",
    "the Silk Road",
    "nutrition",
    "robots",
    "deserts",
    "quantum mechanics",
    "penguins",
    "cryptocurrency",
    "the Industrial Revolution",
    "octopuses",
    "social media",
    "dinosaurs",
    "the Mona Lisa",
    "nuclear energy",
    "tea",
    "the speed of light",
    "elephants",
    "plate tectonics",
    "video games",
    "the Nile",
    "batteries",
    "football",
    "Greek philosophy",
    "tornadoes",
    "the human brain",
    "the Beatles",
    "origami",
    "submarines",
    "the Cold War",
    "mushrooms",
    "archaeology",
)
TEMPLATES = (
    "Explain {t} in simple terms.",
    "Give me three facts about {t}.",
    "Why is {t} important?",
    "Write a short poem about {t}.",
    "What are common misconceptions about {t}?",
    "Summarize the history of {t}.",
    "How would you teach {t} to a child?",
    "What is the most surprising thing about {t}?",
    "Write one sentence about {t}.",
    "List the pros and cons of {t}.",
    "Tell me a fun fact about {t}.",
    "Describe {t} to someone who has never heard of it.",
    "Write a short story that involves {t}.",
    "What questions do scientists still ask about {t}?",
    "Give me a quiz question about {t}.",
    "In two sentences, what is {t}?",
    "What would the world be like without {t}?",
    "Write a haiku about {t}.",
    "Compare {t} with something from everyday life.",
    "What should a beginner know about {t}?",
)
EVERYDAY = (
    "How do I boil an egg?",
    "How can I improve my handwriting?",
    "How do I change a flat tyre?",
    "How can I learn a new language quickly?",
    "How do I plant tomatoes?",
    "How do I write a cover letter?",
    "How can I save money on groceries?",
    "How do I tie a tie?",
    "How do I make a paper airplane?",
    "Write a Python function that reverses a string.",
    "Write a Python function to compute Fibonacci numbers.",
    "How do I sort a list in JavaScript?",
    "What does the SQL command SELECT do?",
    "What is a for loop?",
    "Translate 'good morning' into Spanish.",
    "Translate 'thank you very much' into French.",
    "Translate 'where is the station?' into German.",
    "Give me a synonym for happy.",
    "What rhymes with cat?",
    "Suggest a name for a grey cat.",
    "Plan a three-day trip to Rome.",
    "What should I cook tonight?",
    "How do I stay focused while studying?",
    "Write a polite email declining a meeting.",
    "What is the difference between weather and climate?",
    "How many legs does a spider have?",
)
MC_BANK = (
    ("Which planet is the largest?", ("Mars", "Jupiter", "Earth", "Venus")),
    ("What is the boiling point of water at sea level?", ("50 C", "90 C", "100 C", "120 C")),
    ("Which of these is a mammal?", ("Shark", "Dolphin", "Trout", "Eagle")),
    ("Which gas do plants absorb?", ("Oxygen", "Nitrogen", "Carbon dioxide", "Helium")),
    ("Who wrote Hamlet?", ("Dickens", "Shakespeare", "Austen", "Tolkien")),
    ("What is 9 x 7?", ("56", "63", "72", "81")),
    ("Which ocean is the largest?", ("Atlantic", "Indian", "Arctic", "Pacific")),
    ("What do bees make?", ("Milk", "Silk", "Honey", "Wax paper")),
)
NAMES = ("Tom", "Ana", "Li", "Sara", "Omar", "Maya", "Ben", "Ivy")
ITEMS = ("apples", "pencils", "stickers", "marbles", "cookies", "books")


def _mc(rng: random.Random) -> str:
    question, options = rng.choice(MC_BANK)
    shuffled = rng.sample(options, len(options))
    lines = [f"{'ABCD'[i]}. {o}" for i, o in enumerate(shuffled)]
    return (
        f"{question}\n" + "\n".join(lines) + "\nChoose one of the following options only: A, B, C, or D\nAnswer:"
    )


def _word_problem(rng: random.Random) -> str:
    name, item = rng.choice(NAMES), rng.choice(ITEMS)
    a, b, c = rng.randint(2, 9), rng.randint(2, 12), rng.randint(1, 9)
    problem = f"{name} has {a} boxes with {b} {item} each and gives away {c}. How many {item} are left?"
    return f"Q: {problem}\nA: Give your final numerical answer after ####\n"


def _task_prompts(seed: int) -> list[str]:
    """Prompts of the built-in tasks (text only; nothing about which answers are right)."""
    from corrsteer_core.tasks import get_task

    prompts: list[str] = []
    for name in ("arithmetic", "format", "capitals", "safety"):
        prompts.extend(item.prompt for item in get_task(name, seed=seed).items)
    return prompts


def corpus_prompts(n: int, seed: int = 0) -> list[str]:
    """``n`` distinct user requests, deterministic given ``seed`` (fewer only if the pool is smaller)."""
    rng = random.Random(seed)
    topical = [t.format(t=topic) for t in TEMPLATES for topic in TOPICS]
    makers: list[Callable[[], str]] = [
        lambda: _mc(rng),
        lambda: _word_problem(rng),
        lambda: f"Request: {rng.choice(EVERYDAY)}\nResponse:",
        lambda: (
            "Answer the question with a short, direct response. Be concise and factual.\n\n"
            f"Q: {rng.choice(MC_BANK)[0]}\nA:"
        ),
    ]
    formats = [rng.choice(makers)() for _ in range(max(1, n // 6))]
    tasks = _task_prompts(seed)
    rng.shuffle(topical)
    rng.shuffle(tasks)
    quota = {"topical": int(n * 0.45), "tasks": int(n * 0.30), "formats": int(n * 0.10)}
    pool = topical[: quota["topical"]] + tasks[: quota["tasks"]] + formats[: quota["formats"]] + list(EVERYDAY)
    pool += topical[quota["topical"] :] + tasks[quota["tasks"] :]  # top up if n is large
    unique = list(dict.fromkeys(pool))[:n]
    rng.shuffle(unique)
    return unique
