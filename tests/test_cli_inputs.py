"""Bad command-line input ends in one line and exit 2, before the model loads or any selection runs; imported
profiles are read safely; evaluate reads only the data its user names."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from corrsteer_core import loading
from corrsteer_core.cli import main, parse_layers
from corrsteer_core.errors import ConfigError
from tests import test_cli
from tests.helpers import TINY_WIDTH

# the same command-line setting as test_cli: the tiny preset, a private cache, the vowels task file
cli_env = test_cli.cli_env
_vowels = test_cli._vowels


@pytest.fixture()
def no_model(monkeypatch):
    """Fail the test if a command gets as far as loading the model."""

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("the model was loaded before the bad argument was refused")

    monkeypatch.setattr(loading, "load_model", refuse)


def one_line_error(capsys) -> str:
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1 and "Traceback" not in err, err
    return err[len("error: ") :].rstrip("\n")


def select(spec, data: Path, *extra: str) -> int:
    return main(["select", "--preset", spec.name, *_vowels(data), "--n-train", "24", "--n-val", "6", *extra])


def test_parse_layers_checks_the_range_before_building_it():
    assert parse_layers("2-5", 30) == (2, 3, 4, 5)
    with pytest.raises(ConfigError, match=r"valid layers are 0\.\.29"):
        parse_layers("0-1000000000", 30)  # refused at once: no billion-element list
    with pytest.raises(ConfigError, match="runs backwards"):
        parse_layers("5-2", 30)
    with pytest.raises(ConfigError, match="outside"):
        parse_layers("-1", 30)


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--layers", "0-99999"], "layers '0-99999' are outside the model's layers: valid layers are 0..3"),
        (
            ["--layers", "3-1"],
            "layer range '3-1' is empty: it runs backwards; write the lower layer first, e.g. '1-3'",
        ),
        (["--max-new-tokens", "100000"], "max_new_tokens is 100,000; at most 4,096 is allowed"),
        (["--batch-size", "100000"], "batch_size is 100,000; at most 1,024 is allowed"),
        (["--screen-top", "0", "--variant", "O"], "screen_top must be > 0, got 0"),
    ],
)
def test_select_refuses_bad_numbers_before_loading(cli_env, capsys, no_model, extra, message):
    spec, data, tmp = cli_env
    assert select(spec, data, *extra) == 2
    assert message in one_line_error(capsys)
    assert not (tmp / "cache" / "runs").exists()


def test_out_naming_a_folder_is_refused_before_the_selection(cli_env, capsys, no_model):
    spec, data, tmp = cli_env
    assert select(spec, data, "--out", str(tmp)) == 2
    assert (
        one_line_error(capsys)
        == f"--out {str(tmp)!r} is a folder; give a file path in it, e.g. {tmp}/profile.json"
    )


@pytest.mark.skipif(torch.cuda.device_count() > 8, reason="needs a machine without cuda:9")
def test_a_missing_gpu_is_refused_before_the_model_is_converted(cli_env, capsys, no_model):
    spec, data, _ = cli_env
    device = "cuda:9" if torch.cuda.is_available() else "cuda"
    assert select(spec, data, "--device", device) == 2
    assert f"device {device!r} is not available" in one_line_error(capsys)


def test_generate_bounds_new_tokens(cli_env, capsys, no_model):
    assert main(["generate", "whatever", "--prompt", "hi", "--max-new-tokens", "1000000"]) == 2
    assert one_line_error(capsys).startswith("--max-new-tokens is 1,000,000; at most 4,096 is allowed")


def test_custom_without_answer_column(cli_env, capsys, no_model):
    spec, data, _ = cli_env
    assert main(["select", "--preset", spec.name, "--custom", str(data), "--prompt-column", "prompt"]) == 2
    assert "answer column (--answer-column) must be a non-empty text" in one_line_error(capsys)


def _profile(spec, **changes: object) -> dict:
    layer = {"layer": 1, "feature": 3, "coefficient": 0.5, "hook_name": "blocks.1.hook_resid_post"}
    return {"version": 1, "preset": spec.name, "model_id": "tiny-llama", "d_model": TINY_WIDTH, "layers": [layer],
            **changes}  # fmt: skip


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (
            lambda p: json.dumps({**p, "provenance": "x"}).encode(),
            "provenance cannot be read: it must be a mapping",
        ),
        (lambda p: b'{"version": 1, "provenance": ' + b"[" * 50_000 + b"]" * 50_000 + b"}", "nested deeper"),
        (lambda p: json.dumps({**p, "name": "caf\u00e9"}, ensure_ascii=False).encode("latin-1"), "not UTF-8"),
        (lambda p: json.dumps({**p, "provenance": {"run_id": "../../etc"}}).encode(), "run_id may hold only"),
        (lambda p: json.dumps({**p, "preset": 5}).encode(), "preset must be a non-empty string, got 5"),
    ],
    ids=["provenance-x", "deep", "latin-1", "run-id-path", "preset-number"],
)
def test_show_reads_bad_profiles_into_one_line(cli_env, capsys, tmp_path, content, message):
    path = tmp_path / "bad.json"
    path.write_bytes(content(_profile(cli_env[0])))
    assert main(["show", str(path)]) == 2
    assert message in one_line_error(capsys)


def test_show_reads_a_profile_with_a_byte_order_mark(cli_env, capsys, tmp_path):
    path = tmp_path / "bom.json"
    path.write_bytes(b"\xef\xbb\xbf" + json.dumps(_profile(cli_env[0], name="with-bom")).encode())
    assert main(["show", str(path)]) == 0
    assert capsys.readouterr().out.startswith("with-bom: preset tiny-test")


def _foreign(spec, tmp: Path, task_spec: dict) -> Path:
    split = {"task_spec": task_spec, "split_spec": {"n_train": 10, "n_val": 5, "n_test": 5}}
    path = tmp / "foreign.json"
    path.write_text(json.dumps(_profile(spec, provenance={"run_id": "elsewhere-0123456789", "split": split})))
    return path


@pytest.mark.parametrize(
    ("task_spec", "shown"),
    [
        ({"name": "x", "custom": {"path": "FILE", "prompt_column": "prompt", "answer_column": "answer"}}, "FILE"),
        ({"name": "mmlu", "source": "some-org/some-dataset"}, "some-org/some-dataset"),
        ({"name": "mmlu"}, "benchmark 'mmlu'"),
    ],
    ids=["local-file", "hub-dataset", "default-benchmark"],
)
def test_evaluate_does_not_follow_a_foreign_profiles_data(cli_env, capsys, no_model, task_spec, shown):
    spec, data, tmp = cli_env
    secret = tmp / "private.csv"
    secret.write_text(data.read_text())
    if "custom" in task_spec:
        task_spec["custom"]["path"] = str(secret)
    path = _foreign(spec, tmp, task_spec)
    assert main(["evaluate", str(path)]) == 2
    message = one_line_error(capsys)
    assert message.startswith("this profile records a task that reads outside data (")
    assert shown.replace("FILE", str(secret)) in message and "pass the task yourself" in message


def test_evaluate_reads_the_data_its_user_names(cli_env, capsys):
    spec, data, tmp = cli_env
    path = _foreign(spec, tmp, {"name": "x", "custom": {"path": str(data), "prompt_column": "prompt",
                                                          "answer_column": "answer"}})  # fmt: skip
    named = _vowels(data)[:-2]  # evaluate takes the task's own reply length
    assert main(["--json", "evaluate", str(path), *named, "--n-test", "5", "--n-val", "5"]) == 0
    assert json.loads(capsys.readouterr().out)["summary"]["n"] == 5


def test_evaluate_follows_a_generated_task(cli_env, capsys):
    spec, _, tmp = cli_env
    path = _foreign(spec, tmp, {"name": "arithmetic", "options": {"n": 30}})
    assert main(["--json", "evaluate", str(path), "--batch-size", "8"]) == 0
    assert json.loads(capsys.readouterr().out)["summary"]["n"] == 5


def test_export_formats_and_check_export_from_the_cli(cli_env, capsys, no_model):
    tmp = cli_env[2]
    with pytest.raises(SystemExit):
        main(["export", "nothing", "--format", "onnx", "--out", str(tmp / "x.gguf")])
    capsys.readouterr()
    assert main(["export", "nothing", "--format", "gguf", "--out", str(tmp / "x.pt")]) == 2
    assert "must end in .gguf" in one_line_error(capsys)
    assert main(["export", "nothing", "--format", "lm-eval", "--out", str(tmp / "x.gguf")]) == 2
    assert "must end in .pt" in one_line_error(capsys)
    assert main(["check-export", "nothing", "--n", "0"]) == 2
    assert "--n must be at least 1" in one_line_error(capsys)
