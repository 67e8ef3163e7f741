"""The command line on the tiny preset: select, show, evaluate, sweep, export, generate, and its errors."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys

import pytest
import torch

from corrsteer_core.cli import main, parse_layers
from corrsteer_core.cli.common import scale_list
from corrsteer_core.errors import ConfigError
from corrsteer_core.profile import load_profile
from corrsteer_core.runs import RunStore
from tests.helpers import write_preset_file


@pytest.fixture()
def cli_env(tiny_spec, tmp_path, monkeypatch):
    monkeypatch.setenv("CORRSTEER_PRESETS", str(write_preset_file(tiny_spec, tmp_path / "presets.yaml")))
    monkeypatch.setenv("CORRSTEER_CACHE", str(tmp_path / "cache"))
    rows = ["prompt,answer"] + [f"say hi please {i},{'aeiou'[i % 5]}" for i in range(40)]
    data = tmp_path / "vowels.csv"
    data.write_text("\n".join(rows) + "\n", encoding="utf-8")
    return tiny_spec, data, tmp_path


def _json(capsys) -> dict:
    return json.loads(capsys.readouterr().out)


def test_parse_layers():
    assert parse_layers("0-2,5", 30) == (0, 1, 2, 5) and parse_layers("all", 30) is None
    with pytest.raises(ConfigError):
        parse_layers("1-x", 30)


def _vowels(data) -> list[str]:
    return [
        "--custom",
        str(data),
        "--prompt-column",
        "prompt",
        "--answer-column",
        "answer",
        "--scorer",
        "regex",
        "--scorer-option",
        "pattern=(?P<answer>[aeiou])",
        "--max-new-tokens",
        "8",
    ]


def test_select_show_evaluate_sweep_export(cli_env, capsys):
    spec, data, tmp = cli_env
    task_args = _vowels(data)
    split = ["--n-train", "24", "--n-val", "6", "--n-test", "10"]
    assert main(["--json", "select", "--preset", spec.name, *task_args, *split, "--name", "vowels"]) == 0
    out = _json(capsys)
    assert out["n_selection"] == 24 and out["layers"]
    profile = load_profile(out["profile_path"])
    assert profile.provenance.split is not None
    assert profile.provenance.split.sizes == {"train": 24, "validation": 6, "test": 10}

    assert main(["show", "vowels"]) == 0
    assert "vowels" in capsys.readouterr().out
    assert main(["--json", "evaluate", "vowels"]) == 0
    summary = _json(capsys)["summary"]
    assert summary["n"] == 10 and summary["pos"] + summary["neg"] <= summary["changed"]
    saved = RunStore(str(profile.provenance.run_id)).evaluations()  # kept with the run (the app lists them)
    assert [(r["split"], r["summary"]) for r in saved] == [("test", summary)]
    assert main(["--json", "sweep", "vowels", "--scales", "0,1"]) == 0
    sweep = _json(capsys)
    assert [row["scale"] for row in sweep] == [0.0, 1.0] and sweep[0]["changed"] == 0
    assert sweep[1]["steered_accuracy"] == pytest.approx(summary["steered_accuracy"])
    out_json, out_st = tmp / "p.json", tmp / "p.safetensors"
    assert main(["export", "vowels", "--out", str(out_json), "--scale", "0.5"]) == 0
    assert load_profile(out_json).global_scale == 0.5
    assert main(["export", "vowels", "--out", str(out_st)]) == 0
    assert load_profile(out_st) == profile
    assert capsys.readouterr().out.count("wrote ") == 2
    assert main(["--json", "generate", "vowels", "--prompt", "say hi", "--max-new-tokens", "6"]) == 0
    assert set(_json(capsys)) == {"prompt", "unsteered", "steered"}


def test_optimiser_options_and_bad_scale_lists(cli_env, capsys):
    assert scale_list("0.25, 0.5,1") == (0.25, 0.5, 1.0)
    for bad in ("0,1", "a,b", "", "-1"):
        with pytest.raises(argparse.ArgumentTypeError):
            scale_list(bad)
    spec, data, _ = cli_env
    base = ["--json", "select", "--preset", spec.name, *_vowels(data), "--variant", "O"]
    with pytest.raises(SystemExit) as exited:
        main([*base, "--screen-scales", "0,1"])
    assert exited.value.code == 2 and "positive numbers" in capsys.readouterr().err
    split = ["--n-train", "24", "--n-val", "6", "--n-test", "10"]
    assert (
        main([*base, *split, "--screen-scales", "0.5", "--budget", "60", "--lam", "1.5", "--whole-scales", "none"])
        == 0
    )
    optimised_profile = load_profile(_json(capsys)["profile_path"])
    assert optimised_profile.name.endswith("-O-corr")  # named once for O, not "...-O-corr-O"
    optimised = optimised_profile.provenance
    assert optimised.select is not None and optimised.validation is not None
    search = optimised.select.optimize
    assert search.screen_scales == (0.5,) and search.lam == 1.5 and search.budget == 60
    assert optimised.validation.generations <= 60 and search.whole_scales == ()
    assert main([*base, *split, "--budget", "60", "--whole-scales", "0.3"]) == 0
    again = load_profile(_json(capsys)["profile_path"]).provenance.select
    assert again is not None and again.optimize.whole_scales == (0.3,)


def test_errors_exit_2_with_one_line(cli_env, capsys):
    assert main(["select", "--task", "no-such-task", "--preset", cli_env[0].name]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "Traceback" not in err
    assert main(["evaluate", "not-a-profile"]) == 2
    assert "no profile file" in capsys.readouterr().err
    assert main(["prepare", "--preset", "gemma-2-2b-it"]) == 2
    assert "embedded" in capsys.readouterr().err


def test_console_script_lists_presets():
    out = subprocess.run(
        [sys.executable, "-m", "corrsteer_core.cli", "--json", "presets"],
        capture_output=True,
        text=True,
        check=True,
    )
    names = [row["name"] for row in json.loads(out.stdout)]
    assert names[0] == "smollm2-135m-it"


def test_export_gguf_and_lm_eval_carry_the_evaluated_card(cli_env, capsys):
    import gguf

    from corrsteer_core.export_formats import card_path, read_card

    spec, data, tmp = cli_env
    split = ["--n-train", "24", "--n-val", "6", "--n-test", "10"]
    base = ["--json", "select", "--preset", spec.name, *_vowels(data), *split]
    assert main([*base, "--layers", "0", "--name", "v0"]) == 0
    capsys.readouterr()  # llama.cpp cannot steer block 0: the export says so in one line
    assert main(["export", "v0", "--format", "gguf", "--out", str(tmp / "v0.gguf")]) == 2
    assert "block 0" in capsys.readouterr().err
    assert main([*base, "--layers", "1-3", "--name", "v2"]) == 0
    layers = [s.layer for s in load_profile(_json(capsys)["profile_path"]).enabled]
    assert main(["--json", "evaluate", "v2"]) == 0
    summary = _json(capsys)["summary"]
    assert main(["export", "v2", "--format", "gguf", "--out", str(tmp / "v.gguf")]) == 0
    assert main(["export", "v2", "--format", "lm-eval", "--out", str(tmp / "v.pt")]) == 0
    card = read_card(card_path(tmp / "v.gguf").read_text())
    assert (card["pos"], card["neg"], card["n"], card["split"]) == (summary["pos"], summary["neg"], 10, "test")
    assert card["controls_verdict"] is None  # no controls run on this profile yet
    capsys.readouterr()
    assert main(["--json", "controls", "v2", "--controls", "random-directions"]) == 0
    verdict = _json(capsys)["verdict"]
    assert main(["export", "v2", "--format", "gguf", "--out", str(tmp / "v.gguf")]) == 0
    assert read_card(card_path(tmp / "v.gguf").read_text())["controls_verdict"] == verdict
    assert main(["export", "v2", "--scale", "0.5", "--format", "gguf", "--out", str(tmp / "h.gguf")]) == 0
    assert read_card(card_path(tmp / "h.gguf").read_text())["controls_verdict"] is None  # another profile
    reader = gguf.GGUFReader(str(tmp / "v.gguf"))
    assert sorted(t.name for t in reader.tensors) == sorted(f"direction.{L}" for L in set(layers))
    assert set(torch.load(tmp / "v.pt", weights_only=True)) == {f"layers.{L}" for L in set(layers)}
    assert main(["check-export", "v2"]) == 2  # the tiny preset has no GGUF model for llama.cpp
    assert "no GGUF model" in capsys.readouterr().err
