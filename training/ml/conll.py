"""Reading CoNLL files: one `token TAG` per line, a blank line between sentences."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


class ConllError(ValueError):
    pass


@dataclass
class ConllDocument:
    sentences: list[list[tuple[str, str]]]

    @property
    def tokens(self) -> list[str]:
        return [token for sentence in self.sentences for token, _tag in sentence]

    @property
    def tags(self) -> list[str]:
        return [tag for sentence in self.sentences for _token, tag in sentence]


def conll_parse(text: str) -> ConllDocument:
    sentences: list[list[tuple[str, str]]] = []
    current: list[tuple[str, str]] = []
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("-DOCSTART-"):
            if current:
                sentences.append(current)
                current = []
            continue
        parts = line.split()
        if len(parts) < 2:
            raise ConllError(f"line {number}: expected 'token TAG', got {raw!r}")
        token, tag = "".join(parts[:-1]), parts[-1]
        if tag != "O" and not (tag[:2] in {"B-", "I-"} and len(tag) > 2):
            raise ConllError(f"line {number}: tag {tag!r} is not BIO (O, B-TYPE or I-TYPE)")
        current.append((token, tag))
    if current:
        sentences.append(current)
    if not sentences:
        raise ConllError("no tokens")
    return ConllDocument(sentences)


def conll_files(paths: list[Path]) -> list[Path]:
    """Expand folders to their *.conll files, sorted by name."""
    files: list[Path] = []
    for path in paths:
        if path.is_dir():
            files.extend(sorted(p for p in path.iterdir() if p.suffix == ".conll" and p.is_file()))
        else:
            files.append(path)
    return files
