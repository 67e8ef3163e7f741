"""Feature dashboards on a prepared embedded cache: time, size on disk, explanation-score distribution.

Run with ``CORRSTEER_CACHE`` pointing at a prepared cache (SAEs and corpus present), inside the bench lock:
``flock /tmp/corrsteer-bench.lock python benchmarks/bench_dashboards.py --layers 0-29``.
Computes the missing dashboards (only those), then summarises every layer's labels and scores.
"""

from __future__ import annotations

import argparse
import json
import time

import torch

from corrsteer_core.cli.common import parse_layers
from corrsteer_core.embedded.corpus import CorpusConfig, build_corpus, corpus_activations
from corrsteer_core.explain import dashboard_store
from corrsteer_core.explain.dashboards import DashboardConfig, build_dashboards, build_layer_from_residuals
from corrsteer_core.loading import load_model
from corrsteer_core.presets import get_preset
from corrsteer_core.saes import load_saes


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--preset", default="smollm2-135m-it")
    parser.add_argument("--layers", default=None)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--good", type=float, default=0.5, help="F1 at or above which a label counts as good")
    parser.add_argument("--profile", default=None, help="also print the labels of this saved profile's features")
    parser.add_argument("--summary-only", action="store_true", help="compute nothing, only read what is there")
    parser.add_argument(
        "--from-residuals",
        action="store_true",
        help="as prepare does for layers it trains: capture residuals once, then build each layer from them "
        "(recomputes every layer; the capture is timed apart, prepare does it anyway for training)",
    )
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    preset = get_preset(args.preset)
    layers = list(parse_layers(args.layers, preset.model.n_layers) or preset.layers)
    built: list[int] = []
    seconds, n_seq, n_tok = 0.0, 0, 0
    if not args.summary_only:
        loaded = load_model(preset)
        saes = load_saes(loaded, layers)
        corpus = build_corpus(loaded, CorpusConfig())  # the prepare corpus, reloaded from the cache
        n_seq, n_tok = len(corpus.sequences), corpus.n_tokens
        started = time.perf_counter()
        if args.from_residuals:
            hooks = {layer: saes.hook_names[layer] for layer in layers}
            acts = corpus_activations(loaded, corpus, hooks)
            print(
                f"capture of {len(layers)} layers (shared with training in prepare): "
                f"{time.perf_counter() - started:.0f} s"
            )
            started = time.perf_counter()
            for layer in layers:
                build_layer_from_residuals(loaded, saes, corpus, layer, acts.pop(layer))
                built.append(layer)
        else:
            built = build_dashboards(loaded, saes, corpus, DashboardConfig(), layers=layers)
        seconds = time.perf_counter() - started
    folder = dashboard_store.dashboard_dir(preset)
    size = sum(p.stat().st_size for p in folder.iterdir() if p.is_file())
    f1s, live = [], 0
    for layer in layers:
        board = dashboard_store.load_layer(preset, layer)
        assert board is not None
        alive = board.t["top_val"][:, 0] > 0
        live += int(alive.sum())
        f1s.append(board.t["f1"][alive])
    f1 = torch.cat(f1s)
    summary = {
        "layers": len(layers),
        "computed_layers": len(built),
        "seconds": round(seconds, 1),
        "threads": args.threads,
        "corpus_sequences": n_seq,
        "corpus_tokens": n_tok,
        "size_mb": round(size / 1e6, 1),
        "features_alive": live,
        "f1_median": round(float(f1.median()), 3),
        "f1_quartiles": [round(float(f1.quantile(q)), 3) for q in (0.25, 0.75, 0.9)],
        "f1_at_least_good": int((f1 >= args.good).sum()),
        "f1_at_least_0.8": int((f1 >= 0.8).sum()),
        "good_threshold": args.good,
    }
    print(json.dumps(summary, indent=2))
    if args.profile:
        _profile_labels(preset, args.profile)


def _profile_labels(preset, name: str) -> None:
    from corrsteer_core.profile_store import find_profile

    profile = find_profile(name)
    print("| layer | feature | r | label | F1 (P / R) | density | strongest context |")
    print("|---|---|---|---|---|---|---|")
    for s in profile.layers:
        board = dashboard_store.load_layer(preset, s.layer)
        if board is None:
            print(f"| {s.layer} | {s.feature} | | (no dashboard) | | | |")
            continue
        v = board.feature(s.feature)
        context = "".join(v.contexts[0].tokens).replace("\n", "⏎").replace("|", "\\|") if v.contexts else ""
        r = f"{s.r:+.2f}" if s.r is not None else ""
        print(
            f"| {s.layer} | {s.feature} | {r} | {v.label.replace('|', '/')} | {v.f1:.2f} ({v.precision:.2f} / "
            f"{v.recall:.2f}) | {v.density:.2%} | {context} |"
        )


if __name__ == "__main__":
    main()
