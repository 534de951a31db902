"""lib.storage: a file saved under exactly its key, and files removed when the operation that wrote them fails."""

from __future__ import annotations

import pytest
from django.core.files.base import ContentFile
from django.core.files.storage import FileSystemStorage

from lib.storage import files_removed_on_failure, storage_overwrite


def test_storage_overwrite_replaces_the_file_under_the_same_key(tmp_path):
    storage = FileSystemStorage(location=tmp_path)
    storage_overwrite(storage=storage, key="runs/1/model.bin", content=ContentFile(b"first"))
    storage_overwrite(storage=storage, key="runs/1/model.bin", content=ContentFile(b"second"))
    assert storage.listdir("runs/1")[1] == ["model.bin"]
    with storage.open("runs/1/model.bin") as handle:
        assert handle.read() == b"second"


def test_storage_overwrite_refuses_a_save_the_storage_renamed(tmp_path):
    class Stubborn(FileSystemStorage):
        def delete(self, name):  # as if another writer put the name back between the delete and the save
            pass

    storage = Stubborn(location=tmp_path)
    storage.save("a.txt", ContentFile(b"theirs"))
    with pytest.raises(RuntimeError, match="storage renamed a.txt to a_"):
        storage_overwrite(storage=storage, key="a.txt", content=ContentFile(b"ours"))


def test_files_written_by_a_failed_operation_are_removed(tmp_path):
    storage = FileSystemStorage(location=tmp_path)
    with pytest.raises(ValueError), files_removed_on_failure() as written:
        written.add(storage, storage.save("a.pdf", ContentFile(b"%PDF")))
        raise ValueError("the row could not be written")
    assert not storage.exists("a.pdf")
