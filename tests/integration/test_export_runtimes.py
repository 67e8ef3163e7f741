"""The exported vectors in the real runtimes: llama.cpp (llama-cpp-python on the embedded GGUF) and lm-eval."""

from __future__ import annotations

import pytest
import torch

from corrsteer_core.embedded.model import find_embedded_gguf
from corrsteer_core.generation import encode_prompts

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def runner(embedded_preset):
    pytest.importorskip("llama_cpp")
    from corrsteer_core.deploy_check import LlamaCppRunner

    return LlamaCppRunner(find_embedded_gguf(embedded_preset.model))


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
