"""Model artefacts in Django storage (local files or S3), and local copies for loading them."""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

from django.conf import settings
from django.core.files import File
from django.core.files.storage import Storage, default_storage

from lib.storage import storage_overwrite


def artefact_upload(*, local_dir: Path, location: str, storage: Storage = default_storage) -> str:
    """Copy every file of a save_pretrained folder to storage under `location`."""
    location = location.strip("/")
    for path in sorted(p for p in local_dir.rglob("*") if p.is_file()):
        with path.open("rb") as handle:  # a retried job rewrites its own artefact
            storage_overwrite(storage=storage, key=f"{location}/{path.relative_to(local_dir).as_posix()}",
                              content=File(handle))
    return location


def _list_files(storage: Storage, location: str) -> list[str]:
    dirs, files = storage.listdir(location)
    found = [f"{location}/{name}" for name in files]
    for sub in dirs:
        found += _list_files(storage, f"{location}/{sub}")
    return found


def artefact_local_dir(*, location: str, storage: Storage = default_storage) -> Path:
    """A local folder holding the artefact, ready for from_pretrained."""
    try:
        local = Path(storage.path(location))
        if local.is_dir():
            return local  # local file storage: use it in place
    except NotImplementedError:
        pass  # a remote store such as S3 has no local path
    target = Path(settings.DOCLOOP_MODEL_CACHE) / hashlib.sha256(location.encode()).hexdigest()[:16]
    if (target / ".complete").exists():
        return target
    partial = target.with_suffix(".partial")
    shutil.rmtree(partial, ignore_errors=True)
    for key in _list_files(storage, location):
        dest = partial / key[len(location) + 1:]
        dest.parent.mkdir(parents=True, exist_ok=True)
        with storage.open(key, "rb") as src, dest.open("wb") as out:
            shutil.copyfileobj(src, out)
    (partial / ".complete").touch()
    shutil.rmtree(target, ignore_errors=True)
    partial.rename(target)
    return target


def artefact_delete(*, location: str, storage: Storage = default_storage) -> None:
    """Remove every file under `location` (an upload that will not become a version)."""
    location = location.strip("/")
    try:
        keys = _list_files(storage, location)
    except FileNotFoundError:
        return
    for key in keys:
        storage.delete(key)
