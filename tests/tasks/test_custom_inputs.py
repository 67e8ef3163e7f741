"""A user's task file in the wrong encoding, with rows too long for any model, or too big to hold, ends in one
clear error naming the fix; reading one writes nothing outside corrsteer's cache."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from corrsteer_core.errors import DataSourceError, TaskError
from corrsteer_core.limits import MAX_PROMPT_CHARS
from corrsteer_core.tasks import custom_task

ROWS = "prompt,answer\nhello,a\nh\u00e9llo there,b\nthird,c\n"


def read(path: Path, **kw: object):
    return custom_task(path, name="t", prompt_column="prompt", answer_column="answer", scorer="contains", **kw)


@pytest.mark.parametrize(
    ("encoding", "message"),
    [
        ("utf-16", "t.csv is UTF-16 text (a UTF-16 byte-order mark); save it as UTF-8"),
        ("utf-32", "t.csv is UTF-32 text (a UTF-32 byte-order mark); save it as UTF-8"),
        ("utf-16-le", "t.csv holds NUL bytes (line 1): it is UTF-16 or binary; save it as UTF-8"),
        (
            "latin-1",
            "t.csv is not UTF-8 text: byte 0xe9 on line 3 (byte 23) is not UTF-8 (Latin-1 or Windows-1252?)",
        ),
    ],
)
def test_files_not_in_utf8_say_how_to_fix_them(tmp_path: Path, encoding: str, message: str) -> None:
    path = tmp_path / "t.csv"
    path.write_bytes(ROWS.encode(encoding))
    with pytest.raises(DataSourceError) as info:
        read(path)
    assert str(info.value).startswith(message)
    assert "iconv -f <its encoding> -t UTF-8 t.csv > t-utf8.csv" in str(info.value)


@pytest.mark.parametrize("suffix", [".csv", ".jsonl"])
def test_a_utf8_byte_order_mark_is_read_as_nothing(tmp_path: Path, suffix: str) -> None:
    path = tmp_path / f"t{suffix}"
    text = (
        ROWS
        if suffix == ".csv"
        else '{"prompt": "hello", "answer": "a"}\n{"prompt": "h\u00e9llo", "answer": "b"}\n'
    )
    path.write_bytes(b"\xef\xbb\xbf" + text.encode())
    assert [i.prompt for i in read(path).items][:2] == [
        "hello",
        "h\u00e9llo there" if suffix == ".csv" else "h\u00e9llo",
    ]


def test_a_prompt_longer_than_any_context_is_refused_with_its_row(tmp_path: Path) -> None:
    path = tmp_path / "t.csv"
    long = "x" * (MAX_PROMPT_CHARS + 1)
    path.write_text(f"prompt,answer\nfine,a\nalso fine,b\n{long},c\n")
    with pytest.raises(TaskError) as info:
        read(path)
    assert str(info.value) == (
        "row 3: the prompt has 32,769 characters; at most 32,768 are accepted (about 8,192 tokens, the presets' "
        "whole context)"
    )


def test_a_template_cannot_pad_prompts(tmp_path: Path) -> None:
    path = tmp_path / "t.csv"
    path.write_text(ROWS)
    with pytest.raises(TaskError, match=r"write placeholders as plain \{column\}, without ':' or '!'"):
        custom_task(path, name="t", template="{prompt:>999999999}", answer_column="answer", scorer="contains")


def test_the_answer_column_is_required_by_the_library_too(tmp_path: Path) -> None:
    path = tmp_path / "t.csv"
    path.write_text(ROWS)
    no_column: str = None  # type: ignore[assignment]  # what a caller's empty form passes
    with pytest.raises(
        TaskError, match=r"name the column holding each row's answer \(answer_column=...\), got None"
    ):
        custom_task(path, name="t", prompt_column="prompt", answer_column=no_column, scorer="contains")


def test_too_many_rows_and_too_many_bytes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from corrsteer_core.tasks import custom, sources

    path = tmp_path / "t.csv"
    path.write_text(ROWS)
    monkeypatch.setattr(custom, "MAX_TASK_ROWS", 2)
    with pytest.raises(DataSourceError, match=r"the number of rows of t\.csv is 3; at most 2 is allowed"):
        read(path)
    monkeypatch.setattr(sources, "MAX_TASK_FILE_BYTES", 10)
    with pytest.raises(
        DataSourceError, match=rf"the size of t\.csv in bytes is {path.stat().st_size}; at most 10 is allowed"
    ):
        read(path)


def test_reading_a_task_file_writes_only_under_the_corrsteer_cache(tmp_path: Path) -> None:
    home, cache = tmp_path / "home", tmp_path / "cache"
    home.mkdir()
    (tmp_path / "t.csv").write_text(ROWS)
    (tmp_path / "t.jsonl").write_text('{"prompt": "hello", "answer": "a"}\n')
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "XDG_"))}
    env.update(HOME=str(home), CORRSTEER_CACHE=str(cache), HF_HUB_OFFLINE="1")
    env["PYTHONPATH"] = str(Path(__file__).resolve().parents[2])  # this checkout's corrsteer_core
    script = (
        "import sys\nfrom corrsteer_core.tasks import custom_task\n"
        "for p in sys.argv[1:]:\n"
        "    custom_task(p, name='t', prompt_column='prompt', answer_column='answer', scorer='contains')\n"
    )
    subprocess.run(
        [sys.executable, "-c", script, str(tmp_path / "t.csv"), str(tmp_path / "t.jsonl")],
        env=env,
        check=True,
        cwd=tmp_path,
        capture_output=True,
    )
    assert [str(p.relative_to(home)) for p in home.rglob("*")] == []  # no ~/.cache/huggingface/datasets
    assert any((cache / "datasets").rglob("*.arrow"))  # datasets' Arrow copies live in corrsteer's cache
