"""Short automatic labels: the tokens most over-represented at a feature's strongest activations.

For each feature, the peak tokens of its top contexts are counted; a token's weight is its share of those
contexts times the log of how over-represented it is there against its frequency in the corpus
(``share * log(share / p_corpus)``, the term it adds to the KL divergence). The label is the best token plus up
to ``max_tokens - 1`` more that peak in at least two contexts and weigh at least a third of the best. The label
is a prediction ("fires on these tokens") that :class:`~corrsteer_core.explain.feature_stats.LabelScorer`
checks on held-out text, so its trustworthiness is measured, not assumed.
"""

from __future__ import annotations

import math
from collections import Counter

import torch

__all__ = ["choose_labels", "format_label", "token_frequencies"]


def token_frequencies(sequences: list[list[int]], start: int, vocab_size: int) -> torch.Tensor:
    """(V,) float64 relative frequency of each token id over the kept positions (add-one smoothed)."""
    counts = torch.ones(vocab_size, dtype=torch.float64)
    for seq in sequences:
        if len(seq) > start:
            counts += torch.bincount(torch.tensor(seq[start:]), minlength=vocab_size)[:vocab_size].double()
    return counts / counts.sum()


def _label_one(peaks: list[int], freq: torch.Tensor, max_tokens: int) -> list[int]:
    fired = [t for t in peaks if t >= 0]
    if not fired:
        return []
    counts = Counter(fired)
    weights = {}
    for token, count in counts.items():
        share = count / len(fired)
        weights[token] = share * math.log(max(share / float(freq[token]), 1.0 + 1e-9))
    ranked = sorted(weights, key=lambda t: (-weights[t], -counts[t], t))
    chosen = [ranked[0]]
    for token in ranked[1:]:
        if len(chosen) >= max_tokens:
            break
        if counts[token] >= 2 and weights[token] >= weights[ranked[0]] / 3:
            chosen.append(token)
    return chosen


def choose_labels(peak_tokens: torch.Tensor, freq: torch.Tensor, max_tokens: int = 3) -> torch.Tensor:
    """peak_tokens (F, k) ids (-1: no context) -> (F, max_tokens) label token ids, -1 padded."""
    out = torch.full((peak_tokens.shape[0], max_tokens), -1, dtype=torch.int32)
    for f, row in enumerate(peak_tokens.tolist()):
        chosen = _label_one(row, freq, max_tokens)
        if chosen:
            out[f, : len(chosen)] = torch.tensor(chosen, dtype=torch.int32)
    return out


def format_label(tokens: list[str]) -> str:
    """'" est" | " les"': each token quoted so that spaces and punctuation stay visible; '' for no label."""
    shown = []
    for token in tokens:
        text = token.replace("\n", "\\n").replace("\t", "\\t")
        shown.append(f'"{text}"')
    return " | ".join(shown)
