"""The exported vectors in the real runtimes: llama.cpp (llama-cpp-python on the embedded GGUF) and lm-eval."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import torch

from corrsteer_core.embedded.model import find_embedded_gguf
from corrsteer_core.generation import encode_prompts
from tests.helpers import demo_profile

pytestmark = pytest.mark.slow


_PROBE = (
    "import sys; from corrsteer_core.deploy_check import LlamaCppRunner; "
    "r = LlamaCppRunner(sys.argv[1], n_ctx=64); assert r.generate(r.llm.tokenize(b'Hi'), 2)"
)


@pytest.fixture(scope="module")
def runner(embedded_preset):
    pytest.importorskip("llama_cpp")
    from corrsteer_core.deploy_check import LlamaCppRunner

    gguf_path = find_embedded_gguf(embedded_preset.model)
    # a broken llama.cpp build crashes the interpreter (seen: segfault in llama_decode); probe it in a child first
    probe = subprocess.run([sys.executable, "-c", _PROBE, str(gguf_path)], capture_output=True, timeout=300)
    if probe.returncode != 0:
        pytest.fail(f"this llama-cpp-python build cannot decode (exit {probe.returncode}); rebuild it from source")
    return LlamaCppRunner(gguf_path)


def test_llama_cpp_control_vector_zero_keeps_and_strong_changes_output(runner, embedded):
    ids = encode_prompts(embedded.tokenizer, ["Name a colour of the sky."], embedded.use_chat_template)[0]
    runner.set_vector(None)
    plain = runner.generate(ids, 16)
    assert plain
    width = runner.llm.n_embd()
    runner.set_vector({il: torch.zeros(width) for il in (3, 12)})
    assert runner.generate(ids, 16) == plain
    gen = torch.Generator().manual_seed(0)
    strong = {il: torch.randn(width, generator=gen) * 40.0 for il in (3, 12)}
    runner.set_vector(strong)
    assert runner.generate(ids, 16) != plain
    runner.set_vector(None)
    assert runner.generate(ids, 16) == plain


def test_lm_eval_steered_model_runs_the_exported_file_on_a_tiny_local_task(embedded, embedded_saes, tmp_path):
    lm_eval = pytest.importorskip("lm_eval")
    from lm_eval.tasks import TaskManager

    from corrsteer_core.embedded.model import embedded_model_dir
    from corrsteer_core.export_formats import write_lm_eval

    profile = demo_profile(embedded, embedded_saes, (3, 12), feature=1, coefficient=8.0, name="t")
    steer = write_lm_eval(profile, embedded_saes, tmp_path / "steer.pt")
    rows = [{"q": f"Is {a} bigger than {b}?", "label": int(a <= b)} for a, b in ((3, 2), (1, 5), (9, 4), (2, 8))]
    (tmp_path / "items.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    (tmp_path / "tiny.yaml").write_text(
        "task: corrsteer_tiny\ndataset_path: json\n"
        f"dataset_kwargs:\n  data_files:\n    test: {tmp_path / 'items.jsonl'}\n"
        'test_split: test\noutput_type: multiple_choice\ndoc_to_text: "{{q}} Answer:"\n'
        'doc_to_choice: [" yes", " no"]\ndoc_to_target: label\nmetric_list:\n  - metric: acc\n',
        encoding="utf-8",
    )
    folder = str(embedded_model_dir(embedded.preset))

    def run(model: str, args: dict) -> list:
        out = lm_eval.simple_evaluate(
            model=model,
            model_args={"pretrained": folder, "device": "cpu", **args},
            tasks=["corrsteer_tiny"],
            task_manager=TaskManager(include_path=str(tmp_path)),
            log_samples=True,
            batch_size=1,
        )
        assert 0.0 <= out["results"]["corrsteer_tiny"]["acc,none"] <= 1.0
        return [s["filtered_resps"] for s in out["samples"]["corrsteer_tiny"]]

    steered = run("steered", {"steer_path": str(steer)})
    plain = run("hf", {})
    assert len(steered) == len(plain) == 4 and steered != plain
