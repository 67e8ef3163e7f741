"""Deployment-match check: does an exported control vector do in llama.cpp what the profile does in corrsteer?

The same held-out items run four ways, greedy, with the same prompt token ids (corrsteer's chat template) and the
same new-token budget: corrsteer unsteered and steered with ``positions="all"`` (llama.cpp adds a control vector at
every position, prompt included), and llama.cpp (llama-cpp-python on the embedded Q4_1 GGUF) without and with the
exported vector. The unsteered agreement between the two runtimes is the floor: quantised weights and a different
kernel already disagree on some items before any steering, so the steered agreement is judged against it.
"""

from __future__ import annotations

import ctypes
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from corrsteer_core.config import GenerateConfig
from corrsteer_core.errors import ConfigError
from corrsteer_core.export_formats import gguf_directions
from corrsteer_core.generation import encode_prompts
from corrsteer_core.progress import Progress, report
from corrsteer_core.steer import Outcome, judge, run_items

__all__ = ["DeploymentCheck", "LlamaCppRunner", "compare_runs"]


class LlamaCppRunner:
    """Greedy generation in llama.cpp on a GGUF file, with a control vector applied or cleared."""

    def __init__(self, gguf_path: Path, n_ctx: int = 2048, threads: int = 2) -> None:
        try:
            from llama_cpp import Llama
        except ImportError as exc:
            raise ConfigError("check-export needs llama-cpp-python: pip install 'corrsteer[export]'") from exc
        self.llm = _without_repacking(
            lambda: Llama(model_path=str(gguf_path), n_ctx=n_ctx, n_threads=threads, verbose=False, seed=0)
        )

    @property
    def n_layer(self) -> int:
        import llama_cpp

        return int(llama_cpp.llama_model_n_layer(self.llm.model))

    def set_vector(self, directions: Mapping[int, torch.Tensor] | None) -> None:
        """Apply ``directions`` (llama.cpp layer -> vector), or clear the control vector when None/empty."""
        import llama_cpp

        n_embd, n_layer = self.llm.n_embd(), self.n_layer
        if not directions:
            rc = llama_cpp.llama_set_adapter_cvec(self.llm.ctx, None, 0, n_embd, -1, -1)
        else:
            if max(directions) >= n_layer or min(directions) < 1:
                raise ConfigError(
                    f"control vector layers {sorted(directions)} outside llama.cpp's 1..{n_layer - 1}"
                )
            buf = torch.zeros(n_layer * n_embd, dtype=torch.float32)  # the buffer starts at layer 1
            for il, vec in directions.items():
                if vec.numel() != n_embd:
                    raise ConfigError(f"direction.{il} has {vec.numel()} values; the model's width is {n_embd}")
                buf[(il - 1) * n_embd : il * n_embd] = vec.to(torch.float32)
            data = (ctypes.c_float * buf.numel())(*buf.tolist())
            rc = llama_cpp.llama_set_adapter_cvec(self.llm.ctx, data, buf.numel(), n_embd, 1, n_layer - 1)
        if rc != 0:
            raise ConfigError(f"llama.cpp refused the control vector (code {rc})")
        self.llm.reset()

    def generate(self, ids: Sequence[int], max_new_tokens: int) -> list[int]:
        self.llm.reset()  # no prefix reuse: the KV cache may hold states computed under another vector
        out: list[int] = []
        eos = self.llm.token_eos()
        for token in self.llm.generate(list(ids), top_k=1, top_p=1.0, min_p=0.0, temp=0.0, repeat_penalty=1.0):
            if token == eos or len(out) >= max_new_tokens:
                break
            out.append(int(token))
        return out


def _without_repacking(make: Callable[[], Any]) -> Any:
    """Build a ``Llama`` with llama.cpp's extra (repacking) weight buffers switched off.

    With them on, ggml's AMX matmul kernel crashes this machine's CPUs (gdb: SIGSEGV in
    ``ggml_backend_amx_mul_mat`` on the first decode of the embedded Q4_1 GGUF). ``Llama()`` does not expose
    ``use_extra_bufts``, so the default model parameters it starts from are amended while it is built.
    """
    import llama_cpp.llama_cpp as lib

    default = lib.llama_model_default_params

    def params() -> Any:
        value = default()
        value.use_extra_bufts = False
        return value

    lib.llama_model_default_params = params
    try:
        return make()
    finally:
        lib.llama_model_default_params = default


@dataclass(frozen=True)
class DeploymentCheck:
    n: int
    rows: list[dict[str, Any]]

    def summary(self) -> dict[str, Any]:
        rows, n = self.rows, max(self.n, 1)

        def frac(key: str) -> float:
            return sum(bool(r[key]) for r in rows) / n

        def flips(prefix: str) -> dict[str, int]:
            pos = sum(not r[f"{prefix}_base_correct"] and r[f"{prefix}_steered_correct"] for r in rows)
            neg = sum(r[f"{prefix}_base_correct"] and not r[f"{prefix}_steered_correct"] for r in rows)
            return {"pos": pos, "neg": neg}

        return {
            "n": self.n,
            "corrsteer": {
                "base_accuracy": frac("cs_base_correct"),
                "steered_accuracy": frac("cs_steered_correct"),
                **flips("cs"),
            },
            "llama_cpp": {
                "base_accuracy": frac("lc_base_correct"),
                "steered_accuracy": frac("lc_steered_correct"),
                **flips("lc"),
            },
            "verdict_agreement": {
                "unsteered": frac("base_verdict_agree"),
                "steered": frac("steered_verdict_agree"),
            },
            "text_agreement": {"unsteered": frac("base_text_agree"), "steered": frac("steered_text_agree")},
            "flip_agreement": frac("flip_agree"),
        }


def compare_runs(
    cs_base: Sequence[Outcome],
    cs_steered: Sequence[Outcome],
    lc_base: Sequence[Outcome],
    lc_steered: Sequence[Outcome],
) -> DeploymentCheck:
    """Item-by-item comparison of the four runs (same items, same order)."""
    if not (len(cs_base) == len(cs_steered) == len(lc_base) == len(lc_steered)):
        raise ConfigError("the four runs must hold the same items")
    rows = []
    for a, b, c, d in zip(cs_base, cs_steered, lc_base, lc_steered, strict=True):
        rows.append(
            {
                "item_id": a.item_id,
                "cs_base_correct": a.correct,
                "cs_steered_correct": b.correct,
                "lc_base_correct": c.correct,
                "lc_steered_correct": d.correct,
                "base_verdict_agree": a.correct == c.correct,
                "steered_verdict_agree": b.correct == d.correct,
                "base_text_agree": a.generation.strip() == c.generation.strip(),
                "steered_text_agree": b.generation.strip() == d.generation.strip(),
                "flip_agree": (b.correct != a.correct) == (d.correct != c.correct),
            }
        )
    return DeploymentCheck(len(rows), rows)


def run_check(
    loaded: Any,
    saes: Any,
    profile: Any,
    task: Any,
    items: Sequence[Any],
    gguf_path: Path,
    *,
    batch_size: int = 8,
    progress: Progress | None = None,
) -> DeploymentCheck:
    """Run the items four ways (see the module docstring) and compare them; ``progress`` hears each of them."""
    if not items:
        raise ConfigError("nothing to check: the item list is empty")
    directions = gguf_directions(profile, saes)
    cfg = GenerateConfig(batch_size=batch_size, constrained=False)
    max_new = cfg.max_new_tokens or task.max_new_tokens
    cs_base = run_items(loaded, task, items, cfg=cfg, progress=progress, stage="corrsteer unsteered")
    vectors = profile.vectors(saes)
    cs_steered = run_items(
        loaded,
        task,
        items,
        vectors=vectors,
        positions="all",
        cfg=cfg,
        progress=progress,
        stage="corrsteer steered",
    )
    chat = loaded.use_chat_template
    ids = encode_prompts(loaded.tokenizer, [item.prompt for item in items], chat)
    runner = LlamaCppRunner(gguf_path)
    lc: dict[str, list[Outcome]] = {}
    for label, vec in (("base", None), ("steered", directions)):
        runner.set_vector(vec)
        stage = f"llama.cpp {'unsteered' if vec is None else 'steered'}"
        texts = []
        for done, prompt_ids in enumerate(ids):
            report(progress, stage, done, len(ids))
            texts.append(loaded.tokenizer.decode(runner.generate(prompt_ids, max_new), skip_special_tokens=True))
        report(progress, stage, len(ids), len(ids))
        lc[label] = [judge(task, item, text) for item, text in zip(items, texts, strict=True)]
    runner.set_vector(None)
    return compare_runs(cs_base, cs_steered, lc["base"], lc["steered"])
