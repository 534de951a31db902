"""The gate's statistical rule, shared by full runs and feedback updates: a paired bootstrap over documents.

Both versions are scored on the same evaluation documents; each document contributes counts per label
(true positives, predicted, gold: `metrics.span_counts_per_document` / `class_counts_per_document`). A
bootstrap sample draws documents with replacement and recomputes both versions' F1 on the same draw, so
the spread of the difference reflects how much the documents alone move it. The candidate is "worse" only
when even the optimistic end of that spread (the `confidence` quantile of the difference) is below
`-tolerance`: an update that changes nothing (every difference is 0) is never refused, and a real fall on
enough documents always is. Plain Python and numpy, no Django.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

DocumentCounts = dict[str, Sequence[int]]  # label -> (true positives, predicted, gold) in one document


def _matrix(documents: Sequence[DocumentCounts], labels: list[str]) -> np.ndarray:
    """(documents, labels, 3) counts."""
    index = {label: i for i, label in enumerate(labels)}
    matrix = np.zeros((len(documents), len(labels), 3), dtype=np.float64)
    for d, counts in enumerate(documents):
        for label, values in counts.items():
            matrix[d, index[label]] = values[:3]
    return matrix


def _f1(totals: np.ndarray, average: str) -> np.ndarray:
    """F1 from summed counts: totals (..., labels, 3); micro sums the labels first, macro averages them."""
    if average == "micro":
        totals = totals.sum(axis=-2, keepdims=True)
    tp, predicted, gold = totals[..., 0], totals[..., 1], totals[..., 2]
    with np.errstate(divide="ignore", invalid="ignore"):
        f1 = np.where(predicted + gold > 0, 2 * tp / (predicted + gold), 0.0)  # = 2PR/(P+R)
    return f1.mean(axis=-1)


def f1_from_counts(documents: Sequence[DocumentCounts], *, average: str = "micro",
                   labels: Sequence[str] | None = None) -> float:
    """The F1 of the documents' counts together (micro: span F1 as span_scores; macro: mean per label)."""
    labels = sorted(set(labels or ()) | {label for counts in documents for label in counts})
    if not labels:
        return 0.0
    return float(_f1(_matrix(documents, labels).sum(axis=0), average))


def paired_bootstrap(reference: Sequence[DocumentCounts], candidate: Sequence[DocumentCounts], *,
                     average: str = "micro", labels: Sequence[str] | None = None, samples: int = 1000,
                     seed: int = 0) -> np.ndarray:
    """The candidate's F1 minus the reference's on `samples` draws of the documents with replacement,
    the same draw for both (paired). `reference[i]` and `candidate[i]` are the same document."""
    if len(reference) != len(candidate):
        raise ValueError("reference and candidate must be scored on the same documents")
    if not reference:
        raise ValueError("no documents to compare on")
    labels = sorted(set(labels or ()) | {label for counts in [*reference, *candidate] for label in counts})
    if not labels:
        return np.zeros(samples)
    n = len(reference)
    ref, cand = _matrix(reference, labels).reshape(n, -1), _matrix(candidate, labels).reshape(n, -1)
    rng = np.random.default_rng(seed)
    weights = np.stack([np.bincount(rng.integers(0, n, n), minlength=n)
                        for _ in range(samples)]).astype(np.float64)
    shape = (samples, len(labels), 3)
    return _f1((weights @ cand).reshape(shape), average) - _f1((weights @ ref).reshape(shape), average)


def gate_compare(reference: Sequence[DocumentCounts], candidate: Sequence[DocumentCounts], *,
                 average: str = "micro", labels: Sequence[str] | None = None, tolerance: float = 0.01,
                 confidence: float = 0.95, samples: int = 1000, seed: int = 0,
                 min_documents: int = 0) -> dict:
    """The rule: is the candidate worse than the reference on these documents, beyond noise?

    On fewer than `min_documents` documents the bootstrap's interval is too wide to catch even a large fall
    (0.67 -> 0.27 on three documents passes it), so there the observed drop decides as well: the candidate
    is also worse when its F1 fell by more than `tolerance` (`thin`). A change of nothing still never is.

    Returns both F1s, the observed difference, the bootstrap interval of the difference (`low`, `high`: the
    1 - confidence and confidence quantiles) and `worse`: high < -tolerance, i.e. with `confidence` the
    candidate's F1 is lower by more than `tolerance`."""
    if not 0.5 <= confidence < 1:
        raise ValueError("confidence must be in [0.5, 1)")
    if tolerance < 0:
        raise ValueError("tolerance must not be negative")
    labels = sorted(set(labels or ()) | {label for counts in [*reference, *candidate] for label in counts})
    before = f1_from_counts(reference, average=average, labels=labels)
    after = f1_from_counts(candidate, average=average, labels=labels)
    deltas = paired_bootstrap(reference, candidate, average=average, labels=labels, samples=samples,
                              seed=seed)
    low, high = (float(x) for x in np.quantile(deltas, [1 - confidence, confidence]))
    thin = len(reference) < min_documents
    beyond_noise = high < -tolerance
    fell = after - before < -tolerance
    return {"reference_f1": before, "candidate_f1": after, "delta": after - before, "low": low, "high": high,
            "worse": bool(beyond_noise or (thin and fell)), "thin": thin, "min_documents": min_documents,
            "rule": "observed drop" if thin and fell and not beyond_noise else "bootstrap",
            "documents": len(reference), "samples": samples, "confidence": confidence, "tolerance": tolerance,
            "average": average}


def passages(blocks: Sequence[DocumentCounts], *, min_units: int, fine_words: int,
             coarse_words: int) -> tuple[list[DocumentCounts], int]:
    """The units a bootstrap over passages resamples, from the fine passages (`fine_words` words each) scores
    keep: consecutive ones summed into passages of about `coarse_words` words where they still make
    `min_units` units, else the fine ones as they are, so that one document of a couple of thousand words
    is judged by the bootstrap rather than by its observed drop alone. Returns (units, words per unit)."""
    group = max(1, coarse_words // fine_words)
    if group == 1 or len(blocks) < group * min_units:
        return list(blocks), fine_words
    merged: list[DocumentCounts] = []
    for start in range(0, len(blocks), group):
        summed: dict[str, list[int]] = {}
        for counts in blocks[start:start + group]:
            for label, values in counts.items():
                row = summed.setdefault(label, [0, 0, 0])
                for i in range(3):
                    row[i] += values[i]
        merged.append(summed)
    return merged, fine_words * group


def floor_check(candidate: Sequence[DocumentCounts], *, average: str = "micro",
                labels: Sequence[str] | None = None, min_f1: float = 0.0) -> dict:
    """A task's first version: is its F1 on the evaluation documents above `min_f1` (by default: does it
    find anything at all)?"""
    f1 = f1_from_counts(candidate, average=average, labels=labels)
    return {"candidate_f1": f1, "min_f1": min_f1, "passed": f1 > min_f1, "documents": len(candidate)}
