"""Run folders under ``cache/runs/<run-id>/``: metadata, checkpointed statistics and per-batch records.

A run is identified by a hash of everything that determines its statistics (preset, SAE fingerprints, task,
items, collection settings), so asking for the same collection again reopens the finished run, or resumes an
interrupted one from its last finished batch. Each batch's records are written before the statistics checkpoint
that counts them, so a crash between the two only repeats that batch.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import shutil
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from corrsteer_core import storage
from corrsteer_core.errors import CacheCorruptError, CollectionError, ConfigError, LockedError, valid_choices
from corrsteer_core.metadata import RUN_ID_PATTERN, RunIdentity, RunMeta
from corrsteer_core.stats import CorrelationStats

__all__ = ["RUN_ID_PATTERN", "RunStore", "SampleRecord", "delete_run", "list_runs", "open_run", "run_id_for"]


@dataclass(frozen=True)
class SampleRecord:
    """One selection sample: what the model generated and how it was scored."""

    item_id: str
    prompt: str
    generation: str
    answer: str | None
    correct: bool
    target: str
    n_positions: int  # generation positions pooled
    stratum: str | None = None
    token_ids: tuple[int, ...] = ()  # the generated tokens, for exact re-analysis (evidence views)

    def to_dict(self) -> dict[str, Any]:
        return {**self.__dict__, "token_ids": list(self.token_ids)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SampleRecord:
        return cls(**{**data, "token_ids": tuple(data.get("token_ids", ()))})


def run_id_for(task_name: str, identity: RunIdentity) -> str:
    digest = hashlib.sha256(json.dumps(identity.to_dict(), sort_keys=True, default=str).encode()).hexdigest()[:10]
    safe = "".join(c if c.isalnum() or c in "-_" else "-" for c in task_name)[:40]
    return f"{safe}-{digest}"


def _runs_root() -> Path:
    return storage.cache_root() / "runs"


class RunStore:
    """Read/write access to one run folder."""

    def __init__(self, run_id: str) -> None:
        if not isinstance(run_id, str) or not RUN_ID_PATTERN.fullmatch(run_id):
            raise CollectionError(f"{run_id!r} is not a run id: run ids hold only letters, digits, '-' and '_'")
        self.run_id = run_id
        self.folder = _runs_root() / run_id

    @property
    def repair_advice(self) -> str:
        """What rebuilds a damaged run: its files depend on each other (the statistics count every batch), so
        no one file can be rebuilt alone; the whole run is collected again, to the same statistics."""
        return f"delete the run folder {self.folder} and run the same command again to collect it afresh"

    @contextlib.contextmanager
    def collecting(self) -> Iterator[None]:
        """Hold the run's lock while collecting: a second process asking for the same run is told at once that it
        is in progress, instead of doing all the work twice. A killed holder leaves no stale lock (flock)."""
        try:
            with storage.exclusive_lock(self.folder / "collecting.lock"):
                yield
        except LockedError as exc:
            raise LockedError(
                f"run {self.run_id} is being collected by {exc}; wait for it to finish, then run the same "
                "command again: the finished run reopens at once"
            ) from None

    # metadata ------------------------------------------------------------------------------------------
    @property
    def exists(self) -> bool:
        return (self.folder / "run.json").is_file()

    def read_meta(self) -> RunMeta:
        if not self.exists:
            raise CollectionError(
                f"run {self.run_id!r} does not exist. Runs: {valid_choices(r.run_id for r in list_runs())}"
            )
        return _read_meta(self.folder / "run.json")

    def write_meta(self, meta: RunMeta) -> None:
        fresh = dataclasses.replace(meta, run_id=self.run_id, updated=time.time())
        storage.atomic_write_json(self.folder / "run.json", fresh.to_dict())

    # checkpoint ----------------------------------------------------------------------------------------
    def save_checkpoint(
        self, stats: dict[str, CorrelationStats], extra: dict[str, torch.Tensor], n_batches: int
    ) -> None:
        """Statistics objects plus extra running tensors (e.g. residual norm sums), one atomic file."""
        tensors = {f"{name}.{k}": v for name, s in stats.items() for k, v in s.state_dict().items()}
        tensors.update({f"extra.{k}": v for k, v in extra.items()})
        storage.atomic_save_tensors(
            self.folder / "stats.safetensors", tensors, metadata={"n_batches": str(n_batches)}
        )

    def load_checkpoint(self) -> tuple[dict[str, CorrelationStats], dict[str, torch.Tensor], int] | None:
        path = self.folder / "stats.safetensors"
        if not path.is_file():
            return None
        from safetensors import safe_open

        tensors = storage.load_tensors(path, self.repair_advice)
        try:
            with safe_open(str(path), framework="pt") as handle:
                n_batches = int((handle.metadata() or {})["n_batches"])
        except (KeyError, ValueError) as exc:
            raise CacheCorruptError(f"{path} records no batch count; {self.repair_advice}") from exc
        grouped: dict[str, dict[str, torch.Tensor]] = {}
        for key, value in tensors.items():
            name, sub = key.split(".", 1)
            grouped.setdefault(name, {})[sub] = value
        extra = grouped.pop("extra", {})
        return {name: CorrelationStats.from_state_dict(d) for name, d in grouped.items()}, extra, n_batches

    # per-batch records -----------------------------------------------------------------------------------
    def save_batch(
        self, index: int, records: list[SampleRecord], top_idx: torch.Tensor, top_val: torch.Tensor
    ) -> None:
        """Records of one batch plus each sample's top pooled features per layer: (B, L, M) indices and values."""
        base = self.folder / "batches" / f"batch_{index:05d}"
        storage.atomic_save_tensors(
            base.with_suffix(".safetensors"),
            {"top_idx": top_idx.to(torch.int32), "top_val": top_val.to(torch.float16)},
        )
        storage.atomic_write_json(base.with_suffix(".json"), [r.to_dict() for r in records], indent=None)

    def load_batches(self, n_batches: int) -> tuple[list[SampleRecord], torch.Tensor, torch.Tensor]:
        records: list[SampleRecord] = []
        idx, val = [], []
        for index in range(n_batches):
            base = self.folder / "batches" / f"batch_{index:05d}"
            try:
                rows = storage.read_json(base.with_suffix(".json"), self.repair_advice)
                records.extend(SampleRecord.from_dict(d) for d in rows)
                tensors = storage.load_tensors(base.with_suffix(".safetensors"), self.repair_advice)
            except FileNotFoundError as exc:
                raise CollectionError(
                    f"run {self.run_id}: batch {index} is missing ({exc.filename}); {self.repair_advice}"
                ) from exc
            except (TypeError, AttributeError) as exc:  # valid JSON, but not a list of sample records
                raise CacheCorruptError(
                    f"run {self.run_id}: batch {index}'s records cannot be read ({exc}); {self.repair_advice}"
                ) from exc
            idx.append(tensors["top_idx"])
            val.append(tensors["top_val"])
        if not idx:
            return records, torch.zeros((0, 0, 0), dtype=torch.int32), torch.zeros((0, 0, 0), dtype=torch.float16)
        return records, torch.cat(idx), torch.cat(val)

    # artefacts written after collection (selections, evaluations) -------------------------------------------
    def write_artifact(self, name: str, data: Any) -> Path:
        return storage.atomic_write_json(self.folder / "artifacts" / f"{name}.json", data)

    def read_artifact(self, name: str) -> Any | None:
        path = self.folder / "artifacts" / f"{name}.json"
        return storage.read_json(path) if path.is_file() else None

    def list_artifacts(self) -> list[str]:
        folder = self.folder / "artifacts"
        return sorted(p.stem for p in folder.glob("*.json")) if folder.is_dir() else []

    def save_evaluation(self, key: str, record: dict[str, Any]) -> Path:
        """One evaluation of a profile made from this run (``key``: split + profile hash; reruns replace it)."""
        if not RUN_ID_PATTERN.fullmatch(key):
            raise CollectionError(f"evaluation key {key!r} may hold only letters, digits, '-' and '_'")
        return self.write_artifact(f"evaluation-{key}", {**record, "key": key, "saved": time.time()})

    def evaluations(self) -> list[dict[str, Any]]:
        """Saved evaluations, newest first (unreadable files are skipped)."""
        rows = []
        for name in self.list_artifacts():
            if name.startswith("evaluation-"):
                try:
                    rows.append(self.read_artifact(name))
                except Exception:  # one corrupt file must not hide the others
                    continue
        return sorted((r for r in rows if isinstance(r, dict)), key=lambda r: r.get("saved", 0), reverse=True)


def _read_meta(path: Path) -> RunMeta:
    advice = f"delete the run folder {path.parent} and run the same command again to collect it afresh"
    try:
        return RunMeta.from_dict(storage.read_json(path, advice))
    except (ConfigError, KeyError, TypeError, ValueError, AttributeError) as exc:
        raise CacheCorruptError(f"{path} cannot be read as run metadata ({exc}); {advice}") from exc


def list_runs() -> list[RunMeta]:
    """Metadata of every run on disk, newest first (unreadable folders are skipped)."""
    root = _runs_root()
    rows = []
    for meta_path in root.glob("*/run.json") if root.is_dir() else []:
        try:
            rows.append(_read_meta(meta_path))
        except Exception:  # a corrupt run must not hide the others
            continue
    return sorted(rows, key=lambda m: m.updated, reverse=True)


def open_run(run_id: str) -> RunStore:
    store = RunStore(run_id)
    store.read_meta()
    return store


def delete_run(run_id: str) -> None:
    store = open_run(run_id)
    shutil.rmtree(store.folder)
