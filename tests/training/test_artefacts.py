"""Artefacts in storage: local files are used in place; a remote store (S3) is copied to a local cache.

InMemoryStorage stands in for S3: like S3Storage it has no local path, so the copy-down path runs.
"""

from django.core.files.storage import FileSystemStorage, InMemoryStorage

from training.artefacts import artefact_local_dir, artefact_upload


def _folder(tmp_path):
    folder = tmp_path / "saved"
    (folder / "sub").mkdir(parents=True, exist_ok=True)
    (folder / "config.json").write_text('{"a": 1}')
    (folder / "sub" / "tokenizer.json").write_text("{}")
    return folder


def test_a_remote_artefact_is_copied_down_once_with_every_file(tmp_path, settings):
    settings.DOCLOOP_MODEL_CACHE = tmp_path / "cache"
    storage = InMemoryStorage()
    location = artefact_upload(local_dir=_folder(tmp_path), location="models/x/v1", storage=storage)
    local = artefact_local_dir(location=location, storage=storage)
    assert (local / "config.json").read_text() == '{"a": 1}'
    assert (local / "sub" / "tokenizer.json").exists()
    assert artefact_local_dir(location=location, storage=storage) == local  # cached


def test_uploading_again_replaces_the_files_instead_of_renaming(tmp_path):
    storage = FileSystemStorage(location=tmp_path / "media")
    artefact_upload(local_dir=_folder(tmp_path), location="models/x/v1", storage=storage)
    artefact_upload(local_dir=_folder(tmp_path), location="models/x/v1", storage=storage)
    assert sorted(storage.listdir("models/x/v1")[1]) == ["config.json"]
    assert artefact_local_dir(location="models/x/v1", storage=storage) == tmp_path / "media" / "models/x/v1"
