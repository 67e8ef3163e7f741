"""Collection cost and memory on the embedded default, measured side by side in one run.

1. Throughput: CorrSteer collection (generation + capture of every layer + SAE encoding + pooling + streaming
   statistics + checkpoints) versus plain batched greedy generation of the same prompts. Target: ratio >= 0.67
   (collection costs at most 1.5x generation). Alternating repeats, median ratio.
2. Memory: peak resident memory of a collection over N=100 and N=1000 samples, each in a fresh child process
   (ru_maxrss). Target: within 10% (statistics are O(layers x features), not O(N)).

    python benchmarks/bench_collection.py [--n 64] [--repeats 3] [--memory-n 100,1000]  (--repeats 0: memory only)
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time


@contextlib.contextmanager
def _fresh_run_cache():
    """Runs go to a temporary cache (nothing reopened or reused); the real one is restored afterwards."""
    before = os.environ.get("CORRSTEER_CACHE")
    with tempfile.TemporaryDirectory() as cache:
        os.environ["CORRSTEER_CACHE"] = cache
        try:
            yield
        finally:
            if before is None:
                del os.environ["CORRSTEER_CACHE"]
            else:
                os.environ["CORRSTEER_CACHE"] = before


def _setup(n: int, seed: int = 0, level: str = "medium"):
    from corrsteer_core.loading import load_model
    from corrsteer_core.saes import load_saes
    from corrsteer_core.tasks import get_task

    lm = load_model("smollm2-135m-it")
    saes = load_saes(lm)
    task = get_task("arithmetic", limit=n, seed=seed, level=level)
    return lm, saes, task


def throughput(n: int, repeats: int) -> dict:
    from corrsteer_core.collect import collect_activations
    from corrsteer_core.config import CollectConfig, GenerateConfig
    from corrsteer_core.steer import run_items

    lm, saes, task = _setup(n)
    items = list(task.items)
    ratios, plain_times, collect_times = [], [], []
    for rep in range(repeats):
        with _fresh_run_cache():
            start = time.perf_counter()
            run_items(lm, task, items, cfg=GenerateConfig(batch_size=16))
            plain = time.perf_counter() - start
            start = time.perf_counter()
            collect_activations(lm, saes, task, items, CollectConfig(batch_size=16, shuffle_seed=rep))
            collect = time.perf_counter() - start
        ratios.append(plain / collect)
        plain_times.append(plain)
        collect_times.append(collect)
    return {
        "n": n,
        "layers": len(saes.layers),
        "features": saes.d_sae(saes.layers[0]),
        "plain_s": statistics.median(plain_times),
        "collect_s": statistics.median(collect_times),
        "throughput_ratio": statistics.median(ratios),
    }


def _child_peak(n: int) -> dict:
    from corrsteer_core.collect import collect_activations
    from corrsteer_core.config import CollectConfig

    lm, saes, task = _setup(n, seed=1, level="hard")  # "hard" has enough distinct problems for N=1000
    with _fresh_run_cache():
        start = time.perf_counter()
        collect_activations(lm, saes, task, list(task.items), CollectConfig(batch_size=16))
        seconds = time.perf_counter() - start
    return {"n": n, "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, "seconds": seconds}


def memory(sizes: list[int]) -> list[dict]:
    rows = []
    for n in sizes:
        out = subprocess.run(
            [sys.executable, __file__, "--child", str(n)], capture_output=True, text=True, check=True
        )
        rows.append(json.loads(out.stdout.strip().splitlines()[-1]))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--memory-n", default="100,1000")
    parser.add_argument("--child", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(_child_peak(args.child)))
        return
    if args.repeats > 0:
        t = throughput(args.n, args.repeats)
        _print_throughput(t)
    rows = memory([int(x) for x in args.memory_n.split(",")])
    for row in rows:
        print(f"  N={row['n']:>5}: peak RSS {row['peak_rss_mb']:.0f} MB ({row['seconds']:.0f} s)")
    ratio = rows[-1]["peak_rss_mb"] / rows[0]["peak_rss_mb"]
    print(
        f"peak memory N={rows[-1]['n']} / N={rows[0]['n']} = {ratio:.3f} (target within 10%: "
        f"{'met' if abs(ratio - 1) <= 0.10 else 'NOT met'})"
    )


def _print_throughput(t: dict) -> None:
    print(f"throughput on {t['n']} arithmetic prompts, {t['layers']} layers x {t['features']} features:")
    print(f"  plain generation {t['plain_s']:.1f} s, collection {t['collect_s']:.1f} s")
    print(
        f"  collection throughput / plain generation = {t['throughput_ratio']:.2f} "
        f"(target >= 0.67: {'met' if t['throughput_ratio'] >= 0.67 else 'NOT met'})"
    )


if __name__ == "__main__":
    main()
