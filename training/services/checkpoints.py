"""Per-epoch training checkpoints in storage (local files or S3), so a run whose worker died resumes.

The ML code writes `search-NNN.pt` (or `refit-NNN.pt`), `best-NNN.pt` and, last, `latest.json` into a local
folder after each epoch (training.ml.fit); these functions copy that folder to storage under
`checkpoints/run<pk>` in the same order (so `latest.json` never points at a file not yet there), copy it
back when a requeued run starts, and remove it once the run has ended.
"""

from __future__ import annotations

import json
from pathlib import Path

from django.core.files import File
from django.core.files.storage import Storage, default_storage

from lib.storage import storage_overwrite

LATEST = "latest.json"


def checkpoint_location(*, run_id: int) -> str:
    return f"checkpoints/run{run_id}"


def _listing(storage: Storage, location: str) -> list[str]:
    try:
        return storage.listdir(location)[1]
    except FileNotFoundError:
        return []


def checkpoint_upload(*, local_dir: Path, files: list[str], location: str,
                      storage: Storage = default_storage) -> None:
    """Copy `files` (in order, latest.json last) from local_dir to storage, then drop older files."""
    for name in files:
        with (local_dir / name).open("rb") as handle:
            storage_overwrite(storage=storage, key=f"{location}/{name}", content=File(handle))
    pointer = json.loads((local_dir / LATEST).read_text())
    keep = {LATEST, pointer["state"], pointer.get("best")}
    for name in _listing(storage, location):
        if name not in keep:
            storage.delete(f"{location}/{name}")


def checkpoint_download(*, location: str, local_dir: Path, storage: Storage = default_storage) -> dict | None:
    """Copy the last checkpoint from storage into local_dir; returns its {"epoch", "phase"} ("search" or
    "refit", training.ml.fit; an adaptation's, training.ml.adapt, also has "step"), or None when there is
    none."""
    key = f"{location}/{LATEST}"
    if not storage.exists(key):
        return None
    with storage.open(key, "rb") as handle:
        pointer = json.loads(handle.read())
    local_dir.mkdir(parents=True, exist_ok=True)
    for name in [pointer["state"], pointer.get("best")]:
        if not name:
            continue
        with storage.open(f"{location}/{name}", "rb") as src, (local_dir / name).open("wb") as out:
            while chunk := src.read(8 * 2**20):
                out.write(chunk)
    (local_dir / LATEST).write_text(json.dumps(pointer))  # last, as when it was written
    return {"epoch": int(pointer.get("epoch", 0)), "phase": pointer.get("phase", "search"),
            "step": int(pointer.get("step", 0))}


def checkpoint_delete(*, location: str, storage: Storage = default_storage) -> None:
    for name in _listing(storage, location):
        storage.delete(f"{location}/{name}")
