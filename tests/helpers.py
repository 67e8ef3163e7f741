"""Builders for tiny offline fixtures: a random small Llama with a character tokenizer, and random SAEs."""

from __future__ import annotations

import dataclasses
import string
from pathlib import Path
from typing import Any

import torch
import yaml

from corrsteer_core.config import ModelSpec, PresetSpec, SAESpec

TINY_LAYERS = 4
TINY_WIDTH = 32
TINY_FEATURES = 64
SPECIALS = ["<pad>", "<unk>", "<|im_start|>", "<|im_end|>"]
CHAT_TEMPLATE = (
    "{% for message in messages %}<|im_start|>{{ message['role'] }}\n{{ message['content'] }}<|im_end|>\n"
    "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


def build_tiny_tokenizer(folder: Path) -> object:
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    chars = sorted(set(string.printable) - set("\x0b\x0c\r\t"))
    vocab = {tok: i for i, tok in enumerate(SPECIALS + chars)}
    core = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    core.pre_tokenizer = pre_tokenizers.Split(Regex(r"[\s\S]"), behavior="isolated")
    core.decoder = decoders.Fuse()
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=core, eos_token="<|im_end|>", pad_token="<pad>", unk_token="<unk>"
    )
    tokenizer.add_special_tokens({"additional_special_tokens": ["<|im_start|>"]})
    tokenizer.chat_template = CHAT_TEMPLATE
    tokenizer.save_pretrained(folder)
    return tokenizer


def build_tiny_model(folder: Path, seed: int = 0) -> Path:
    """A random 4-layer Llama (width 32) saved as a normal transformers folder."""
    from transformers import LlamaConfig, LlamaForCausalLM

    folder.mkdir(parents=True, exist_ok=True)
    tokenizer = build_tiny_tokenizer(folder)
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=TINY_WIDTH,
        intermediate_size=64,
        num_hidden_layers=TINY_LAYERS,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=512,
        tie_word_embeddings=True,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=None,
        # large random weights: varied, prompt-dependent greedy output with some early stops
        initializer_range=0.3,
    )
    torch.manual_seed(seed)
    LlamaForCausalLM(config).save_pretrained(folder)
    return folder


def build_random_sae(d_in: int, d_sae: int, k: int, hook_name: str, seed: int) -> object:
    from sae_lens import TopKSAE, TopKSAEConfig
    from sae_lens.saes.sae import SAEMetadata

    torch.manual_seed(seed)
    cfg = TopKSAEConfig(
        d_in=d_in, d_sae=d_sae, k=k, metadata=SAEMetadata(hook_name=hook_name, model_name="tiny-llama")
    )
    sae = TopKSAE(cfg)
    with torch.no_grad():
        sae.W_dec.normal_()
        sae.W_dec /= sae.W_dec.norm(dim=-1, keepdim=True)
        sae.W_enc.copy_(sae.W_dec.T)
        sae.b_enc.zero_()
    return sae


def build_tiny_saes(folder: Path, layers: int = TINY_LAYERS, d_sae: int = TINY_FEATURES, k: int = 8) -> Path:
    for layer in range(layers):
        sae = build_random_sae(TINY_WIDTH, d_sae, k, f"blocks.{layer}.hook_resid_post", seed=100 + layer)
        sae.save_model(folder / f"layer_{layer}")
    return folder


def tiny_preset(model_dir: Path, sae_dir: Path, name: str = "tiny-test") -> PresetSpec:
    return PresetSpec(
        name=name,
        description="random 4-layer test model",
        model=ModelSpec(
            source="local",
            hf_id="tiny-llama",
            n_layers=TINY_LAYERS,
            d_model=TINY_WIDTH,
            dtype="float32",
            use_chat_template=True,
            path=str(model_dir),
        ),
        sae=SAESpec(source="local", path=str(sae_dir), d_sae=TINY_FEATURES),
    )


def write_preset_file(preset: PresetSpec, path: Path) -> Path:
    body = preset.to_dict()
    name = body.pop("name")
    path.write_text(yaml.safe_dump({name: body}), encoding="utf-8")
    return path


class VowelScorer:
    """Correct when the reply contains the item's target vowel (the tiny model gets ~1/3 right by chance)."""

    name = "contains-vowel"

    def __call__(self, generation: str, item: object) -> object:
        from corrsteer_core.tasks.base import Score

        target = item.target  # type: ignore[attr-defined]
        index = generation.find(target)
        span = (index, index + len(target)) if index >= 0 else None
        return Score(correct=index >= 0, answer=target if index >= 0 else None, span=span)


def toy_task(n: int = 48, seed: int = 0, max_new_tokens: int = 8) -> object:
    """A task the tiny random model solves sometimes: say something containing a given vowel."""
    import random

    from corrsteer_core.tasks.base import Task, TaskItem

    rng = random.Random(seed)
    words = ["hi", "yes", "ok", "go", "up", "so"]
    items = tuple(
        TaskItem(
            id=f"toy-{i:03d}",
            prompt=f"say {rng.choice(words)} please {i}",
            target=rng.choice("aeiou"),
            metadata={"group": rng.choice("xy")},
        )
        for i in range(n)
    )
    return Task(
        name="toy",
        description="toy vowel task",
        items=items,
        scorer=VowelScorer(),
        max_new_tokens=max_new_tokens,
        pooling="max",
        kind="short_answer",
        source="tests",
        strata_keys=("group",),
    )


def demo_profile(
    loaded: Any,
    saes: Any,
    layers: tuple[int, ...] = (1, 3),
    *,
    feature: int | None = None,
    coefficient: float | None = None,
    **changes: Any,
) -> Any:
    """A hand-made profile for ``loaded`` and ``saes`` steering ``layers``: feature 3 + L with coefficient
    2 + L at layer L unless ``feature`` / ``coefficient`` are given; ``changes`` replace profile fields."""
    from corrsteer_core.metadata import Provenance, TaskInfo
    from corrsteer_core.profile import LayerSetting, SteeringProfile

    settings = tuple(
        LayerSetting(
            layer=L,
            feature=3 + L if feature is None else feature,
            coefficient=2.0 + L if coefficient is None else coefficient,
            hook_name=saes.hook_names[L],
            sae_id=saes.sae_ids[L],
            fingerprint=saes.fingerprint(L),
            r=0.3,
        )
        for L in layers
    )
    base = SteeringProfile(
        preset=loaded.preset.name,
        model_id=loaded.preset.model.hf_id,
        d_model=loaded.d_model,
        layers=settings,
        name="demo",
        provenance=Provenance(task=TaskInfo(name="toy")),
    )
    return dataclasses.replace(base, **changes)
