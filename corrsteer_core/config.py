"""Frozen, self-validating configuration dataclasses.

``*Spec`` says what to load, ``*Config`` holds tunables. Each validates itself in ``__post_init__`` (raising
:class:`ConfigError` with the valid choices) and round-trips through ``to_dict`` / ``from_dict``.
"""

from __future__ import annotations

import dataclasses
import math
import re
from dataclasses import dataclass, field
from typing import Any, Self

from corrsteer_core.errors import ConfigError, LayerOutOfRangeError, valid_choices
from corrsteer_core.limits import (
    MAX_BATCH_SIZE,
    MAX_COLLECT_BINS,
    MAX_MODEL_LAYERS,
    MAX_MODEL_WIDTH,
    MAX_STRATA,
    check_at_most,
    check_new_tokens,
)

__all__ = [
    "DTYPES",
    "MODEL_SOURCES",
    "POSITION_MODES",
    "SAE_SOURCES",
    "SITE_CONVENTIONS",
    "CollectConfig",
    "GenerateConfig",
    "ModelSpec",
    "OptimizeConfig",
    "PresetSpec",
    "SAESpec",
    "SelectConfig",
]

MODEL_SOURCES = ("embedded", "hub", "local")
SAE_SOURCES = ("embedded", "sae_lens", "local")
DTYPES = ("bfloat16", "float16", "float32")
POSITION_MODES = ("generation", "all", "prompt")
# "sae": read and steer at the SAE's own hook site (correct). "block_input": the reference code's convention
# (input of block L with the layer-L SAE), offered only for parity checks.
SITE_CONVENTIONS = ("sae", "block_input")
POOLINGS = ("max", "mean")
# how each layer's features are ranked (see ranking.py); "shuffled" is corr on the shuffled-label statistics
SELECTORS = ("corr", "mi", "fisher", "caa", "random")
ALL_SELECTORS = (*SELECTORS, "shuffled")
COEFFICIENT_MODES = ("correct_mean", "correct_active_mean")
# S: the single best feature; A: every layer's top feature; P: A pruned on validation; O: joint optimisation
VARIANTS = ("S", "A", "P", "O")


def _check_choice(name: str, value: object, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise ConfigError(f"{name}={value!r} is not valid. Valid values are: {valid_choices(choices)}")


def _check_positive(name: str, value: float, *, allow_zero: bool = False) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ConfigError(f"{name} must be a number, got {value!r}")
    if value < 0 or (value == 0 and not allow_zero):
        raise ConfigError(f"{name} must be {'>= 0' if allow_zero else '> 0'}, got {value!r}")


def _check_batch_size(value: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(f"batch_size must be a positive integer, got {value!r}")
    check_at_most("batch_size", value, MAX_BATCH_SIZE, why="every row of a batch holds its own KV cache")


class _DictMixin:
    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for f in dataclasses.fields(self):  # type: ignore[arg-type]
            value = getattr(self, f.name)
            if hasattr(value, "to_dict"):
                value = value.to_dict()
            elif isinstance(value, tuple):
                value = list(value)
            out[f.name] = value
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Self:
        names = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
        unknown = set(data) - names
        if unknown:
            raise ConfigError(
                f"{cls.__name__} got unknown keys {sorted(unknown)}. "
                f"Valid keys are: {valid_choices(sorted(names))}"
            )
        kwargs = {k: tuple(v) if isinstance(v, list) else v for k, v in data.items()}
        return cls(**kwargs)


def parse_scales(text: str, *, positive: bool = False, most: int = 12) -> list[float]:
    """'0, 0.5, 1' -> [0.0, 0.5, 1.0]: sorted, duplicates dropped; ConfigError naming the bad piece otherwise."""
    scales = []
    for piece in text.replace(";", ",").split(","):
        if not piece.strip():
            continue
        try:
            value = float(piece)
        except ValueError as exc:
            raise ConfigError(
                f"cannot read the scale {piece.strip()!r}: give numbers like '0, 0.5, 1, 1.5'"
            ) from exc
        if not math.isfinite(value) or (positive and value <= 0):
            kind = "positive numbers" if positive else "finite numbers"
            raise ConfigError(f"scale {piece.strip()!r} is not allowed here: give {kind}, e.g. '0.25, 0.5, 1'")
        scales.append(value)
    if not scales or len(scales) > most:
        raise ConfigError(f"give between 1 and {most} scales, e.g. '0, 0.5, 1, 1.5, 2'")
    return sorted(dict.fromkeys(scales))


@dataclass(frozen=True)
class ModelSpec(_DictMixin):
    """What language model to load and how."""

    source: str
    hf_id: str
    n_layers: int
    d_model: int
    dtype: str = "bfloat16"
    use_chat_template: bool = True
    package: str | None = None  # embedded: the Python package carrying the GGUF
    gguf_file: str | None = None
    path: str | None = None  # local: a transformers model folder
    revision: str | None = None

    def __post_init__(self) -> None:
        _check_choice("model.source", self.source, MODEL_SOURCES)
        _check_choice("model.dtype", self.dtype, DTYPES)
        _check_positive("model.n_layers", self.n_layers)
        _check_positive("model.d_model", self.d_model)
        check_at_most("model.n_layers", self.n_layers, MAX_MODEL_LAYERS)
        check_at_most("model.d_model", self.d_model, MAX_MODEL_WIDTH)
        if self.source == "embedded" and not (self.package and self.gguf_file):
            raise ConfigError("an embedded model needs both 'package' and 'gguf_file'")
        if self.source == "local" and not self.path:
            raise ConfigError("a local model needs 'path' (a transformers model folder)")

    @property
    def cache_key(self) -> str:
        """A file-name-safe key for what the model computes (presets sharing a model share caches)."""
        parts = [self.hf_id, self.gguf_file or self.path or self.revision or "", self.dtype]
        return re.sub(r"[^A-Za-z0-9._-]+", "_", "-".join(p for p in parts if p))

    def check_layer(self, layer: int) -> int:
        if isinstance(layer, bool) or not isinstance(layer, int) or not 0 <= layer < self.n_layers:
            raise LayerOutOfRangeError(
                f"layer {layer!r} is out of range for {self.hf_id}: valid layers are 0..{self.n_layers - 1}"
            )
        return layer


@dataclass(frozen=True)
class SAESpec(_DictMixin):
    """Which SAEs to load, one per layer, and where they read the residual stream."""

    source: str
    hook_template: str = "blocks.{layer}.hook_resid_post"
    release: str | None = None  # sae_lens: release name in sae-lens' pretrained registry
    id_template: str | None = None  # sae_lens: SAE id with {layer}
    path: str | None = None  # local: folder with layer_{L}/ sub-folders in sae-lens format
    layers: tuple[int, ...] | None = None  # None = every layer of the model
    d_sae: int | None = None
    k: int | None = None  # embedded TopK SAEs: active latents
    set_name: str | None = None  # embedded: name of the trained set under cache/saes/<preset>/
    neuronpedia_model: str | None = None
    neuronpedia_sae_template: str | None = None

    def __post_init__(self) -> None:
        _check_choice("sae.source", self.source, SAE_SOURCES)
        if "{layer}" not in self.hook_template:
            raise ConfigError(f"sae.hook_template must contain '{{layer}}', got {self.hook_template!r}")
        if self.source == "sae_lens" and not (self.release and self.id_template):
            raise ConfigError("sae_lens SAEs need 'release' and 'id_template' (with {layer})")
        if self.id_template is not None and "{layer}" not in self.id_template:
            raise ConfigError(f"sae.id_template must contain '{{layer}}', got {self.id_template!r}")
        if self.source == "local" and not self.path:
            raise ConfigError("local SAEs need 'path' (a folder with layer_<L>/ sub-folders)")
        if self.source == "embedded" and not (self.d_sae and self.k and self.set_name):
            raise ConfigError("embedded SAEs need 'd_sae', 'k' and 'set_name'")
        if self.layers is not None and len(set(self.layers)) != len(self.layers):
            raise ConfigError(f"sae.layers has duplicates: {self.layers}")

    def hook_name(self, layer: int) -> str:
        return self.hook_template.format(layer=layer)

    def sae_id(self, layer: int) -> str:
        if self.id_template is not None:
            return self.id_template.format(layer=layer)
        return f"layer_{layer}"

    def neuronpedia_ids(self, layer: int) -> tuple[str, str] | None:
        """(model id, SAE id) on Neuronpedia, or None where Neuronpedia has no such SAE."""
        if not (self.neuronpedia_model and self.neuronpedia_sae_template):
            return None
        return self.neuronpedia_model, self.neuronpedia_sae_template.format(layer=layer)


@dataclass(frozen=True)
class PresetSpec(_DictMixin):
    """A named model + SAE pairing."""

    name: str
    description: str
    model: ModelSpec
    sae: SAESpec

    def __post_init__(self) -> None:
        for layer in self.sae.layers or ():
            self.model.check_layer(layer)

    @property
    def layers(self) -> tuple[int, ...]:
        return self.sae.layers if self.sae.layers is not None else tuple(range(self.model.n_layers))

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Self:
        missing = {"name", "model", "sae"} - set(data)
        if missing:
            raise ConfigError(f"preset is missing {sorted(missing)}")
        return cls(
            name=data["name"],
            description=str(data.get("description", "")).strip(),
            model=ModelSpec.from_dict(dict(data["model"])),
            sae=SAESpec.from_dict(dict(data["sae"])),
        )


@dataclass(frozen=True)
class CollectConfig(_DictMixin):
    """How generation-time activations are collected on the selection split."""

    batch_size: int = 16
    max_new_tokens: int | None = None  # None: the task's own
    pooling: str | None = None  # None: the task's own ("max", or "mean" for long reasoning)
    answer_span_only: bool = False  # pool only over the tokens of the scorer's answer span
    constrained: bool = False  # multiple choice: restrict the first token to the option letters
    use_chat_template: bool | None = None  # None: the preset's own
    site: str = "sae"
    keep_top: int = 32  # per sample and layer, how many pooled features to keep for evidence views
    strata_key: str | None = None  # item metadata key for stratified statistics
    max_strata: int = 16
    n_bins: int = 24
    shuffle_seed: int = 0  # permutation seed of the shuffled-label control statistics

    def __post_init__(self) -> None:
        _check_batch_size(self.batch_size)
        check_new_tokens(self.max_new_tokens)
        if self.pooling is not None:
            _check_choice("pooling", self.pooling, POOLINGS)
        _check_choice("site", self.site, SITE_CONVENTIONS)
        _check_positive("keep_top", self.keep_top)
        _check_positive("max_strata", self.max_strata)
        check_at_most("max_strata", self.max_strata, MAX_STRATA)
        _check_positive("n_bins", self.n_bins, allow_zero=True)
        check_at_most("n_bins", self.n_bins, MAX_COLLECT_BINS)


@dataclass(frozen=True)
class GenerateConfig(_DictMixin):
    """How held-out items are generated (steered or not) for evaluation, validation and the optimiser."""

    batch_size: int = 16
    max_new_tokens: int | None = None  # None: the task's own
    constrained: bool = False
    use_chat_template: bool | None = None  # None: the preset's own

    def __post_init__(self) -> None:
        _check_batch_size(self.batch_size)
        check_new_tokens(self.max_new_tokens)

    @classmethod
    def matching(cls, collect: CollectConfig | None, batch_size: int | None = None) -> GenerateConfig:
        """Generation settings that match how a run collected its activations (defaults without one)."""
        collect = collect or CollectConfig()
        return cls(
            batch_size=batch_size or collect.batch_size,
            max_new_tokens=collect.max_new_tokens,
            constrained=collect.constrained,
            use_chat_template=collect.use_chat_template,
        )


@dataclass(frozen=True)
class OptimizeConfig(_DictMixin):
    """Variant O's search (see optimize.py): objective accuracy − lam · NEG / n, at most ``budget`` generations."""

    lam: float = 1.0
    scales: tuple[float, ...] = (0.1, 0.25, 0.5, 0.75, 1.0, 1.5)  # coordinate passes (0 = drop is always tried)
    forward_scales: tuple[float, ...] | None = None  # greedy forward steps; None: ``scales``
    screen_scales: tuple[float, ...] = (0.25, 0.5, 1.0)
    screen_top: int | None = None  # screen only the layers with the highest selection score; None: all
    global_scales: tuple[float, ...] = (0.5, 0.75, 1.25, 1.5)
    whole_scales: tuple[float, ...] = (0.25, 0.5)  # stage 0: every layer at these global scales; () skips it
    pool_size: int = 8
    max_layers: int = 6
    coordinate_passes: int = 1
    budget: int = 20_000  # generations (items x evaluated profiles)
    min_gain: float = 0.0  # an improvement must exceed this to be accepted

    def __post_init__(self) -> None:
        _check_positive("lam", self.lam, allow_zero=True)
        for name in ("pool_size", "max_layers", "budget"):
            _check_positive(name, getattr(self, name))
        if self.screen_top is not None:
            _check_positive("screen_top", self.screen_top)
        if any(s <= 0 for s in self.whole_scales):
            raise ConfigError(f"whole_scales must be positive scales (or empty), got {self.whole_scales}")
        for name in ("scales", "forward_scales", "screen_scales", "global_scales"):
            if getattr(self, name) is None and name == "forward_scales":
                continue
            if not getattr(self, name) or any(s <= 0 for s in getattr(self, name)):
                raise ConfigError(f"{name} must be a non-empty list of positive scales, got {getattr(self, name)}")


@dataclass(frozen=True)
class SelectConfig(_DictMixin):
    """Which features make the profile: the selector that ranks them, the variant that combines them, and (for
    variant O) the search that tunes them."""

    variant: str = "A"
    selector: str = "corr"
    k: int = 10  # candidates kept per layer (for the app's heatmap and the optimiser)
    coefficient_mode: str = "correct_mean"
    within_strata: bool = False
    min_firing: int = 0
    min_correct: int = 10
    min_incorrect: int = 10
    seed: int = 0  # the random control's draw
    layers: tuple[int, ...] | None = None  # restrict the layers that may be steered
    optimize: OptimizeConfig = field(default_factory=OptimizeConfig)  # variant O's search

    def __post_init__(self) -> None:
        _check_choice("variant", self.variant, VARIANTS)
        _check_choice("selector", self.selector, ALL_SELECTORS)
        _check_choice("coefficient_mode", self.coefficient_mode, COEFFICIENT_MODES)
        _check_positive("k", self.k)
        if not isinstance(self.optimize, OptimizeConfig):
            raise ConfigError(f"optimize must be an OptimizeConfig, got {type(self.optimize).__name__}")

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Self:
        data = dict(data)
        # profiles written before the search settings moved into ``optimize`` kept O's lam and budget here (an
        # ``optimize`` record of the same profile, where there is one, says what the search really used)
        legacy: dict[str, Any] = {k: data.pop(k) for k in ("lam", "budget") if k in data}
        optimize = data.pop("optimize", None)
        optimize = OptimizeConfig.from_dict({**legacy, **(optimize or {})}) if optimize or legacy else None
        made = super().from_dict(data)
        return dataclasses.replace(made, optimize=optimize) if optimize is not None else made
