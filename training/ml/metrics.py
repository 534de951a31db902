"""Span-level precision/recall/F1 (exact boundaries and type, as conlleval and seqeval count them)."""

from __future__ import annotations

from collections import Counter

from training.ml.bio import SpanTuple


def _prf(tp: int, n_pred: int, n_gold: int) -> dict:
    precision = tp / n_pred if n_pred else 0.0
    recall = tp / n_gold if n_gold else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"precision": precision, "recall": recall, "f1": f1, "support": n_gold}


def span_scores(gold: list[list[SpanTuple]], predicted: list[list[SpanTuple]]) -> dict:
    """Micro-averaged scores over documents, plus per-label scores."""
    if len(gold) != len(predicted):
        raise ValueError("gold and predicted must cover the same documents")
    tp, n_pred, n_gold = Counter(), Counter(), Counter()
    for gold_doc, pred_doc in zip(gold, predicted, strict=True):
        gold_set, pred_set = set(gold_doc), set(pred_doc)
        for span in gold_set:
            n_gold[span[2]] += 1
        for span in pred_set:
            n_pred[span[2]] += 1
            if span in gold_set:
                tp[span[2]] += 1
    overall = _prf(sum(tp.values()), sum(n_pred.values()), sum(n_gold.values()))
    labels = sorted(set(n_gold) | set(n_pred))
    overall["per_label"] = {label: _prf(tp[label], n_pred[label], n_gold[label]) for label in labels}
    return overall


def scores_from_counts(per_document: list[dict]) -> dict:
    """span_scores' micro precision, recall and F1 and its per-label scores, from per-document counts
    (span_counts_per_document's, or class_counts_per_document's)."""
    tp, n_pred, n_gold = Counter(), Counter(), Counter()
    for counts in per_document:
        for label, values in counts.items():
            tp[label] += values[0]
            n_pred[label] += values[1]
            n_gold[label] += values[2]
    overall = _prf(sum(tp.values()), sum(n_pred.values()), sum(n_gold.values()))
    overall["per_label"] = {label: _prf(tp[label], n_pred[label], n_gold[label])
                            for label in sorted(set(n_gold) | set(n_pred))}
    return overall


def class_scores(gold: list[str], predicted: list[str], labels: list[str]) -> dict:
    """Document-level classification scores: accuracy, macro-averaged precision/recall/F1 over `labels`
    (as scikit-learn's average="macro" with zero_division=0), per-class scores and the confusion matrix
    (rows: gold class, columns: predicted class, in the order of `labels`)."""
    if len(gold) != len(predicted):
        raise ValueError("gold and predicted must cover the same documents")
    index = {label: i for i, label in enumerate(labels)}
    matrix = [[0] * len(labels) for _ in labels]
    for g, p in zip(gold, predicted, strict=True):
        matrix[index[g]][index[p]] += 1
    per_label = {}
    for label, i in index.items():
        tp = matrix[i][i]
        n_pred = sum(row[i] for row in matrix)
        n_gold = sum(matrix[i])
        per_label[label] = _prf(tp, n_pred, n_gold)
    count = len(labels) or 1
    correct = sum(matrix[i][i] for i in range(len(labels)))
    return {
        "accuracy": correct / len(gold) if gold else 0.0,
        "precision": sum(s["precision"] for s in per_label.values()) / count,
        "recall": sum(s["recall"] for s in per_label.values()) / count,
        "f1": sum(s["f1"] for s in per_label.values()) / count,
        "per_label": per_label,
        "confusion_matrix": {"labels": list(labels), "matrix": matrix},
    }


def span_coverage(gold: list[list[SpanTuple]], predicted: list[list[SpanTuple]]) -> float:
    """Share of gold entities that some predicted entity overlaps at all (any type, any boundary): what
    the reviewers will at least see highlighted."""
    total = covered = 0
    for gold_doc, pred_doc in zip(gold, predicted, strict=True):
        for start, end, _label in gold_doc:
            total += 1
            covered += any(s < end and start < e for s, e, _l in pred_doc)
    return covered / total if total else 0.0


def entity_type_confusion(gold_tags: list[list[str]], predicted_tags: list[list[str]],
                          entity_types: list[str]) -> dict:
    """Word-level confusion of entity types (B-/I- dropped, "O" first): rows gold, columns predicted."""
    labels = ["O", *sorted(entity_types)]
    index = {label: i for i, label in enumerate(labels)}
    matrix = [[0] * len(labels) for _ in labels]
    for gold_doc, pred_doc in zip(gold_tags, predicted_tags, strict=True):
        for g, p in zip(gold_doc, pred_doc, strict=True):
            gi, pi = index.get(g.partition("-")[2] or "O"), index.get(p.partition("-")[2] or "O")
            if gi is not None and pi is not None:
                matrix[gi][pi] += 1
    return {"labels": labels, "matrix": matrix}


def macro_f1(per_label: dict) -> float:
    """The unweighted mean of the per-label F1s (seqeval's macro average)."""
    return sum(s["f1"] for s in per_label.values()) / len(per_label) if per_label else 0.0


def span_counts_per_document(gold: list[list[SpanTuple]], predicted: list[list[SpanTuple]]) -> list[dict]:
    """Per document and label: [true positives, predicted, gold] spans (what span_scores sums), for the
    gate's paired bootstrap over documents (training.ml.gate)."""
    documents = []
    for gold_doc, pred_doc in zip(gold, predicted, strict=True):
        gold_set, pred_set = set(gold_doc), set(pred_doc)
        counts: dict[str, list[int]] = {}
        for span in gold_set:
            counts.setdefault(span[2], [0, 0, 0])[2] += 1
        for span in pred_set:
            row = counts.setdefault(span[2], [0, 0, 0])
            row[1] += 1
            row[0] += span in gold_set
        documents.append(counts)
    return documents


BLOCK_WORDS = 250  # the passage the gate's bootstrap resamples when documents are few (training.ml.gate)
PASSAGE_WORDS = 125  # the finer cut scores keep: two make a BLOCK_WORDS passage, one alone on short text


def evidence_units(*, documents: int, words: int) -> int:
    """How much evidence an entity evaluation holds, as the evaluation floor counts it: its documents, or
    its passages of BLOCK_WORDS words where they are more (a few long documents: the gate then resamples
    passages, training.ml.gate.passages), so that five 5,000-word documents are not judged "too few"."""
    return max(documents, words // BLOCK_WORDS)


def passages_current(scores: dict) -> bool:
    """Whether scores' per-passage counts (if any) were cut as the gate cuts them now (PASSAGE_WORDS):
    counts kept before the cut changed must be measured again before a version is compared on them."""
    return scores.get("per_block") is None or scores.get("passage_words") == PASSAGE_WORDS


def span_counts_per_block(gold: list[list[SpanTuple]], predicted: list[list[SpanTuple]],
                          line_ends: list[list[bool]], *, block_words: int = PASSAGE_WORDS) -> list[dict]:
    """span_counts_per_document over passages instead of documents: each document cut at the first line end
    after every `block_words` words, a span counted in the passage where it starts. On a validation set of
    one or two long documents, these are the units a paired bootstrap can resample (training.ml.gate)."""
    blocks = []
    for gold_doc, pred_doc, ends in zip(gold, predicted, line_ends, strict=True):
        block_of, count = _passage_of_words(ends, block_words)
        per_block_gold = [[] for _ in range(count)]
        per_block_pred = [[] for _ in range(count)]
        for spans, target in ((gold_doc, per_block_gold), (pred_doc, per_block_pred)):
            for span in spans:
                target[min(block_of[span[0]], count - 1) if block_of else 0].append(span)
        blocks += span_counts_per_document(per_block_gold, per_block_pred)
    return blocks


def _passage_of_words(ends: list[bool], block_words: int) -> tuple[list[int], int]:
    """The passage of each word of a document (cut at the first line end after every `block_words` words)
    and how many passages it makes (at least one)."""
    block_of, block, size = [], 0, 0
    for end in ends:
        block_of.append(block)
        size += 1
        if end and size >= block_words:
            block, size = block + 1, 0
    return block_of, (block + 1 if size else block) or 1


def passages_per_document(line_ends: list[list[bool]], *, block_words: int = PASSAGE_WORDS) -> list[int]:
    """How many of span_counts_per_block's passages each document makes: where its flat list splits."""
    return [_passage_of_words(list(ends), block_words)[1] for ends in line_ends]


def class_counts_per_document(gold: list[str], predicted: list[str]) -> list[dict]:
    """Per document: {class: [true positives, predicted, gold]} of its one gold and one predicted class."""
    documents = []
    for g, p in zip(gold, predicted, strict=True):
        counts = {g: [int(g == p), int(g == p), 1]}
        if p != g:
            counts[p] = [0, 1, 0]
        documents.append(counts)
    return documents
