"""Reading CoNLL files: one `token TAG` per line, a blank line between sentences."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from training.ml.bio import bio_to_spans


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


# Several documents in one file: `-DOCSTART-` opens each (what docloop's export writes) -------------------

SENTENCE_END = {".", "!", "?"}
MAX_SENTENCE = 120


def sentence_bounds(tokens: list[str], spans: Iterable[tuple] = ()) -> list[tuple[int, int]]:
    """Sentences as [start, end) token ranges, decided by the tokens (after ".", "!" or "?", and at most
    MAX_SENTENCE tokens) and never inside one of `spans` ((start, end, ...) entities): a cut that would fall
    inside an entity ("art . 896") waits for the entity's end. The same tokens and entities always split the
    same way, so a document exported, imported and exported again gives the same file."""
    inside = {i for start, end, *_rest in spans for i in range(start + 1, end)}
    bounds, start = [], 0
    for i, token in enumerate(tokens):
        if (token in SENTENCE_END or i + 1 - start >= MAX_SENTENCE) and i + 1 not in inside:
            bounds.append((start, i + 1))
            start = i + 1
    if start < len(tokens):
        bounds.append((start, len(tokens)))
    return bounds


def conll_write(documents: list[tuple[list[str], list[str]]]) -> str:
    """(tokens, tags) per document as CoNLL: a `-DOCSTART- O` line and a blank line open each document,
    one `token TAG` line per token, a blank line after each sentence. No sentence opens inside an entity:
    every entity's B- tag and its I- tags stay in one sentence."""
    out: list[str] = []
    for tokens, tags in documents:
        out.append("-DOCSTART- O")
        out.append("")
        for start, end in sentence_bounds(tokens, bio_to_spans(tags)):
            out.extend(f"{tokens[i]} {tags[i]}" for i in range(start, end))
            out.append("")
    return "\n".join(out) + ("\n" if out else "")


@dataclass
class ConllEntry:
    line: int  # the line that opened the document (1-based)
    tokens: list[str]
    tags: list[str]


def conll_parse_documents(text: str) -> list[ConllEntry]:
    """Read a CoNLL file of one or more documents (split at `-DOCSTART-` lines; a file without any is one
    document). Raises ConllError naming the line for anything that is not `token TAG` with a BIO tag."""
    entries: list[ConllEntry] = []
    current: ConllEntry | None = None
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if line.startswith("-DOCSTART-"):
            current = ConllEntry(number, [], [])
            entries.append(current)
            continue
        if not line:
            continue
        parts = line.split()
        if len(parts) != 2:
            raise ConllError(f"line {number}: expected 'token TAG' (two columns), got {raw!r}")
        token, tag = parts
        if tag != "O" and not (tag[:2] in {"B-", "I-"} and len(tag) > 2):
            raise ConllError(f"line {number}: tag {tag!r} is not BIO (O, B-TYPE or I-TYPE)")
        if current is None:
            current = ConllEntry(number, [], [])
            entries.append(current)
        current.tokens.append(token)
        current.tags.append(tag)
    entries = [e for e in entries if e.tokens]
    if not entries:
        raise ConllError("line 1: no tokens")
    return entries
