"""The offline training corpus for the embedded SAEs: project-written prompts and the model's own chat answers.

Why this corpus: CorrSteer reads activations at *generation* positions of chat turns, so the SAEs should see
that distribution. With no network the only text we can get is what we write and what the model writes. We
write ~1,000 distinct user requests (see :mod:`corrsteer_core.embedded.corpus_prompts`) and let the model answer
them greedily under its chat template, exactly as it will when steered. The fixed chat preamble shared
by every prompt is dropped (its activations would be duplicated ~1,000 times); the remaining prompt tokens and
all answer tokens are kept. Token ids are cached so activations can be rebuilt identically after an interrupt.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

import torch

from corrsteer_core import storage
from corrsteer_core.config import _check_positive, _DictMixin
from corrsteer_core.embedded.corpus_prompts import corpus_prompts
from corrsteer_core.generation import encode_prompts, greedy_generate
from corrsteer_core.hooks import capture_residuals
from corrsteer_core.limits import MAX_BATCH_SIZE, check_at_most, check_new_tokens
from corrsteer_core.loading import LoadedModel

__all__ = [
    "Corpus",
    "CorpusBatch",
    "CorpusConfig",
    "build_corpus",
    "corpus_activations",
    "corpus_batches",
    "corpus_prompts",
]


@dataclass(frozen=True)
class CorpusConfig(_DictMixin):
    n_prompts: int = 1200
    max_new_tokens: int = 96
    batch_size: int = 32
    seed: int = 0

    def __post_init__(self) -> None:
        for name in ("n_prompts", "max_new_tokens", "batch_size"):
            _check_positive(name, getattr(self, name))
        check_new_tokens(self.max_new_tokens)
        check_at_most("batch_size", self.batch_size, MAX_BATCH_SIZE)


@dataclass
class Corpus:
    sequences: list[list[int]]  # prompt (chat template applied) + greedy answer
    start: int  # first position kept in every sequence (after the shared chat preamble)

    @property
    def n_tokens(self) -> int:
        return sum(max(0, len(s) - self.start) for s in self.sequences)

    def save(self, name: str) -> None:
        flat = torch.tensor([t for s in self.sequences for t in s], dtype=torch.int32)
        lengths = torch.tensor([len(s) for s in self.sequences], dtype=torch.int32)
        storage.atomic_save_tensors(
            storage.cache_path("corpus", name + ".safetensors"),
            {"tokens": flat, "lengths": lengths},
            metadata={"start": str(self.start)},
        )

    @classmethod
    def load(cls, name: str) -> Corpus | None:
        from safetensors import safe_open

        path = storage.cache_path("corpus", name + ".safetensors")
        if not path.is_file():
            return None
        tensors = storage.load_tensors(path)
        with safe_open(str(path), framework="pt") as handle:
            start = int((handle.metadata() or {}).get("start", "1"))
        flat, sequences, offset = tensors["tokens"].tolist(), [], 0
        for length in tensors["lengths"].tolist():
            sequences.append(flat[offset : offset + length])
            offset += length
        return cls(sequences=sequences, start=start)


def _common_prefix(seqs: list[list[int]]) -> int:
    first, n = seqs[0], 0
    while n < len(first) and all(len(s) > n and s[n] == first[n] for s in seqs):
        n += 1
    return n


def build_corpus(
    loaded: LoadedModel, cfg: CorpusConfig, progress: Callable[[int, int], None] | None = None
) -> Corpus:
    """Generate (or reload from cache) the corpus for this model and config."""
    # keyed by the model, not the preset: presets that differ only in their SAEs share one corpus
    suffix = f"{cfg.n_prompts}-{cfg.max_new_tokens}-{cfg.seed}"
    name = f"{loaded.preset.model.cache_key}-{suffix}"
    for key in (name, f"{loaded.preset.name}-{suffix}"):  # the second: caches written before the key moved
        cached = Corpus.load(key)
        if cached is not None:
            return cached
    prompts = encode_prompts(loaded.tokenizer, corpus_prompts(cfg.n_prompts, cfg.seed), loaded.use_chat_template)
    # similar lengths per batch: less padding; the order is still deterministic
    order = sorted(range(len(prompts)), key=lambda i: (len(prompts[i]), i))
    sequences: list[list[int]] = [[] for _ in prompts]
    for start in range(0, len(order), cfg.batch_size):
        chunk = order[start : start + cfg.batch_size]
        result = greedy_generate(
            loaded.model, loaded.tokenizer, [prompts[i] for i in chunk], max_new_tokens=cfg.max_new_tokens
        )
        for i, tokens in zip(chunk, result.token_ids, strict=True):
            sequences[i] = prompts[i] + tokens
        if progress is not None:
            progress(min(start + cfg.batch_size, len(order)), len(order))
    corpus = Corpus(sequences=sequences, start=max(1, _common_prefix(prompts)))
    corpus.save(name)
    return corpus


@dataclass
class CorpusBatch:
    rows: list[int]  # indices of the batch's sequences in the corpus
    ids: torch.Tensor  # (B, T) token ids, right padded
    keep: torch.Tensor  # (B, T) bool: positions kept (after the preamble, not padding)
    resid: dict[str, torch.Tensor]  # hook name -> (B, T, d_model) residuals in the model dtype, on the CPU


@torch.inference_mode()
def corpus_batches(
    loaded: LoadedModel,
    corpus: Corpus,
    hook_names: list[str],
    *,
    batch_size: int = 16,
    rows: list[int] | None = None,
) -> Iterator[CorpusBatch]:
    """Teacher-forced residuals at ``hook_names``, one batch of sequences at a time (similar lengths together)."""
    seqs = corpus.sequences
    wanted = list(range(len(seqs))) if rows is None else list(rows)
    order = sorted(wanted, key=lambda i: (len(seqs[i]), i))
    pad = int(loaded.tokenizer.pad_token_id or 0)
    for start in range(0, len(order), batch_size):
        chunk = order[start : start + batch_size]
        width = max(len(seqs[i]) for i in chunk)
        ids = torch.full((len(chunk), width), pad, dtype=torch.long)
        attention = torch.zeros((len(chunk), width), dtype=torch.long)
        keep = torch.zeros((len(chunk), width), dtype=torch.bool)
        for j, i in enumerate(chunk):  # right padding: positions are plain aranges
            ids[j, : len(seqs[i])] = torch.tensor(seqs[i])
            attention[j, : len(seqs[i])] = 1
            keep[j, corpus.start : len(seqs[i])] = True
        with capture_residuals(loaded.model, hook_names, positions="all") as rec:
            loaded.model(
                input_ids=ids.to(loaded.device), attention_mask=attention.to(loaded.device), logits_to_keep=1
            )
        resid = {hook: rec.stacked(hook).cpu() for hook in hook_names}
        yield CorpusBatch(rows=chunk, ids=ids, keep=keep, resid=resid)


def corpus_activations(
    loaded: LoadedModel,
    corpus: Corpus,
    hook_names: dict[int, str],
    *,
    batch_size: int = 16,
    progress: Callable[[int, int], None] | None = None,
) -> dict[int, torch.Tensor]:
    """Teacher-forced residuals (N, d_model) in the model dtype at each layer's hook, kept positions only."""
    chunks: dict[int, list[torch.Tensor]] = {layer: [] for layer in hook_names}
    done, total = 0, len(corpus.sequences)
    for batch in corpus_batches(loaded, corpus, list(hook_names.values()), batch_size=batch_size):
        for layer, hook in hook_names.items():
            chunks[layer].append(batch.resid[hook][batch.keep])
        done += len(batch.rows)
        if progress is not None:
            progress(done, total)
    return {layer: torch.cat(parts) for layer, parts in chunks.items()}
