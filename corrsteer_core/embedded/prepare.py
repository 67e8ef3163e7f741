"""``corrsteer prepare``: make the embedded default ready offline.

Steps: convert the GGUF model once; generate (or reload) the training corpus; capture each missing layer's
residuals at its SAE hook site; train a TopK SAE per layer and save it atomically in sae-lens format with its
quality report; then compute the feature dashboards of every layer (top contexts, labels and their scores:
:mod:`corrsteer_core.explain.dashboards`), skipping layers whose dashboards match their SAE.
Resumable layer by layer: finished layers are skipped, so an interrupted run continues where it
stopped, and every step is deterministic given the seeds.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch

from corrsteer_core import storage
from corrsteer_core.config import PresetSpec, _DictMixin
from corrsteer_core.embedded.corpus import CorpusConfig, build_corpus, corpus_activations
from corrsteer_core.embedded.sae_training import SAETrainConfig, save_sae, train_topk_sae
from corrsteer_core.errors import ConfigError, valid_choices
from corrsteer_core.explain import dashboard_store
from corrsteer_core.explain.dashboards import DashboardConfig, build_dashboards, build_layer_from_residuals
from corrsteer_core.loading import load_model
from corrsteer_core.presets import DEFAULT_PRESET, get_preset
from corrsteer_core.progress import Progress, report
from corrsteer_core.saes import embedded_sae_dir, load_saes, missing_embedded_layers, sae_fingerprint

__all__ = ["PrepareConfig", "format_report", "prepare_embedded", "read_prepare_report"]


@dataclass(frozen=True)
class PrepareConfig(_DictMixin):
    corpus: CorpusConfig = field(default_factory=CorpusConfig)
    train: SAETrainConfig = field(default_factory=SAETrainConfig)
    layers: tuple[int, ...] | None = None  # None: every layer of the preset
    force: bool = False  # retrain layers that are already done
    activation_memory_gb: float = 6.0  # residuals held at once; more layers per corpus pass when larger
    dashboards: DashboardConfig | None = field(default_factory=DashboardConfig)  # None: skip the dashboards

    def __post_init__(self) -> None:
        if self.activation_memory_gb <= 0:
            raise ConfigError(f"activation_memory_gb must be > 0, got {self.activation_memory_gb}")


def _layer_groups(layers: list[int], n_tokens: int, d_model: int, budget_gb: float) -> list[list[int]]:
    per_layer = n_tokens * d_model * 2  # bf16 residuals
    size = max(1, int(budget_gb * 1e9 // max(per_layer, 1)))
    return [layers[i : i + size] for i in range(0, len(layers), size)]


def read_prepare_report(preset: PresetSpec) -> list[dict[str, Any]]:
    """Per-layer quality rows of the trained embedded SAEs found on disk (layers not trained are absent)."""
    rows = []
    for layer in preset.layers:
        path = embedded_sae_dir(preset, layer) / "quality.json"
        if path.is_file():
            rows.append({"layer": layer, **storage.read_json(path)})
    return rows


def format_report(rows: list[dict[str, Any]]) -> str:
    lines = [f"{'layer':>5} {'FVU':>6} {'L0':>6} {'dead':>6} {'tokens':>8} {'sec':>6}"]
    for r in rows:
        lines.append(
            f"{r['layer']:>5} {r['fvu']:>6.3f} {r['mean_l0']:>6.1f} {r['dead_fraction']:>6.1%} "
            f"{r['n_train_tokens']:>8} {r['seconds']:>6.1f}"
        )
    if rows:
        fvus = [r["fvu"] for r in rows]
        deads = [r["dead_fraction"] for r in rows]
        lines.append(
            f"range: FVU {min(fvus):.3f}-{max(fvus):.3f}, dead {min(deads):.1%}-{max(deads):.1%} "
            f"over {len(rows)} layers"
        )
    return "\n".join(lines)


def prepare_embedded(
    preset: str | PresetSpec = DEFAULT_PRESET,
    cfg: PrepareConfig | None = None,
    *,
    progress: Progress | None = None,
    log: Callable[[str], None] = print,
) -> list[dict[str, Any]]:
    """Convert the embedded model and train its missing SAEs; returns the per-layer quality rows."""
    preset = get_preset(preset)
    cfg = cfg or PrepareConfig()
    if preset.model.source != "embedded" or preset.sae.source != "embedded":
        raise ConfigError(
            f"prepare builds embedded presets only; {preset.name!r} loads from {preset.model.source}/"
            f"{preset.sae.source}. Embedded presets: " + valid_choices(p.name for p in _embedded_presets())
        )
    for layer in cfg.layers or ():
        preset.model.check_layer(layer)
    train_cfg = dataclasses.replace(cfg.train, d_sae=int(preset.sae.d_sae or 0), k=int(preset.sae.k or 0))
    started = time.perf_counter()
    loaded = load_model(preset)
    wanted = list(cfg.layers) if cfg.layers is not None else list(preset.layers)
    todo = wanted if cfg.force else missing_embedded_layers(preset, tuple(wanted))
    log(f"model ready ({preset.name}); layers to train: {todo if todo else 'none, all done'}")
    corpus = None
    if todo:
        corpus = build_corpus(loaded, cfg.corpus, progress=lambda d, t: report(progress, "corpus", d, t))
        log(f"corpus: {len(corpus.sequences)} sequences, {corpus.n_tokens} tokens")
        for group in _layer_groups(todo, corpus.n_tokens, loaded.d_model, cfg.activation_memory_gb):
            hooks = {layer: preset.sae.hook_name(layer) for layer in group}
            acts = corpus_activations(
                loaded, corpus, hooks, progress=lambda d, t: report(progress, "activations", d, t)
            )
            for layer in group:
                residuals = acts.pop(layer)
                _train_layer(preset, layer, hooks[layer], residuals, train_cfg, progress, log)
                if cfg.dashboards is not None:  # while its residuals are in memory: no second corpus pass
                    fresh = load_saes(loaded, [layer])
                    build_layer_from_residuals(loaded, fresh, corpus, layer, residuals, cfg.dashboards)
                    log(f"layer {layer:>2}: dashboards done")
                del residuals
    if cfg.dashboards is not None:
        saes = load_saes(loaded, wanted)
        if cfg.force or dashboard_store.stale_layers(saes, wanted):  # never generate a corpus for nothing
            corpus = corpus or build_corpus(loaded, cfg.corpus)
            build_dashboards(loaded, saes, corpus, cfg.dashboards, force=cfg.force, progress=progress, log=log)
        else:
            log("dashboards: all layers up to date")
    rows = read_prepare_report(preset)
    storage.atomic_write_json(
        embedded_sae_dir(preset) / "report.json",
        {"preset": preset.name, "train": train_cfg.to_dict(), "corpus": cfg.corpus.to_dict(), "layers": rows},
    )
    log(format_report([r for r in rows if r["layer"] in wanted]))
    log(f"prepare finished in {time.perf_counter() - started:.0f} s")
    return rows


def _train_layer(
    preset: PresetSpec,
    layer: int,
    hook_name: str,
    acts: torch.Tensor,
    cfg: SAETrainConfig,
    progress: Progress | None,
    log: Callable[[str], None],
) -> None:
    sae, quality = train_topk_sae(
        acts,
        cfg,
        hook_name=hook_name,
        model_name=preset.model.hf_id,
        progress=lambda d, t: report(progress, f"layer {layer}", d, t),
    )
    folder = embedded_sae_dir(preset, layer)
    save_sae(sae, quality, folder)
    # the fingerprint of the weights as saved: profiles made with these SAEs carry it
    info = storage.read_json(folder / "quality.json")
    info["fingerprint"] = sae_fingerprint(load_saes(preset, [layer]).saes[layer])
    storage.atomic_write_json(folder / "quality.json", info)
    log(
        f"layer {layer:>2}: FVU {quality.fvu:.3f}  L0 {quality.mean_l0:.1f}  dead {quality.dead_fraction:.1%}  "
        f"({quality.seconds:.0f} s)"
    )


def _embedded_presets() -> list[PresetSpec]:
    from corrsteer_core.presets import list_presets

    return [p for p in list_presets() if p.model.source == "embedded"]
