"""Reading the bytes of a profile file safely, before anything is built from them.

A profile arrives as JSON (possibly with a UTF-8 byte-order mark some editors write) or as a corrsteer safetensors
export carrying the profile JSON in its metadata. Either is parsed without executing anything (safetensors holds
only tensors), without a RecursionError on absurd nesting, and with a message naming what is wrong.
"""

from __future__ import annotations

from typing import Any

from corrsteer_core.errors import CacheCorruptError, ProfileError
from corrsteer_core.limits import loads_json

__all__ = ["read_profile_data"]

_BOM = b"\xef\xbb\xbf"


def read_profile_data(raw: bytes) -> Any:
    """The parsed JSON of a profile file's bytes (ProfileError when they hold none)."""
    return _metadata_profile(raw) if _is_safetensors(raw) else _json_profile(raw)


def _is_safetensors(raw: bytes) -> bool:
    """A safetensors file: an 8-byte header length, then that many bytes of JSON header."""
    return len(raw) > 8 and raw[8:9] == b"{" and 8 + int.from_bytes(raw[:8], "little") <= len(raw)


def _json_profile(raw: bytes) -> Any:
    text = raw[len(_BOM) :] if raw.startswith(_BOM) else raw  # some editors write a UTF-8 byte-order mark
    try:
        return loads_json(text.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise ProfileError(
            f"profile is not UTF-8 text (byte 0x{text[exc.start]:02x} at offset {exc.start}); save it as UTF-8"
        ) from exc
    except ValueError as exc:
        if text.lstrip()[:1] == b"{":
            raise ProfileError(f"profile is not valid JSON: {exc}") from exc
        raise ProfileError("file is neither a profile JSON nor a corrsteer safetensors export") from exc


def _metadata_profile(raw: bytes) -> Any:
    """The profile inside a corrsteer safetensors export, parsed (its tensors are validated, never executed)."""
    from safetensors import SafetensorError
    from safetensors.torch import load as load_bytes

    try:
        load_bytes(raw)  # validates the file; weights_only by construction
        header_len = int.from_bytes(raw[:8], "little")
        header = loads_json(raw[8 : 8 + header_len])
    except (SafetensorError, ValueError, CacheCorruptError) as exc:
        raise ProfileError("file is neither a profile JSON nor a corrsteer safetensors export") from exc
    meta = header.get("__metadata__") if isinstance(header, dict) else None
    if not isinstance(meta, dict) or not isinstance(meta.get("corrsteer_profile"), str):
        raise ProfileError("this safetensors file has no corrsteer profile in its metadata")
    try:
        return loads_json(meta["corrsteer_profile"])
    except ValueError as exc:
        raise ProfileError(f"the profile in this safetensors file is not valid JSON: {exc}") from exc
