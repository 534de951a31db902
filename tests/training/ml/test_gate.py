"""The gate's rule (training.ml.gate): a paired bootstrap over documents."""

import random

import pytest

from training.ml.gate import f1_from_counts, floor_check, gate_compare, paired_bootstrap
from training.ml.metrics import class_counts_per_document, class_scores, span_counts_per_document, span_scores


def _corpus(documents: int, seed: int = 1):
    """Gold spans and a decent tagger's predictions: most spans right, some missed or mislabelled."""
    rng = random.Random(seed)
    gold, predicted = [], []
    for _ in range(documents):
        spans = [(i * 5, i * 5 + 2, rng.choice(["PESSOA", "LOCAL"])) for i in range(rng.randint(3, 8))]
        gold.append(spans)
        predicted.append([s if rng.random() < 0.8 else (s[0], s[1], "TEMPO") for s in spans])
    return gold, predicted


def test_counts_per_document_give_back_span_f1_and_class_f1():
    gold, predicted = _corpus(12)
    counts = span_counts_per_document(gold, predicted)
    assert f1_from_counts(counts) == pytest.approx(span_scores(gold, predicted)["f1"])
    labels = ["A", "B", "C"]
    g, p = ["A", "B", "C", "A", "B"], ["A", "A", "C", "B", "B"]
    assert f1_from_counts(class_counts_per_document(g, p), average="macro", labels=labels) == \
        pytest.approx(class_scores(g, p, labels)["f1"])


def test_an_update_that_changes_nothing_is_never_refused():
    gold, predicted = _corpus(3)
    counts = span_counts_per_document(gold, predicted)
    result = gate_compare(counts, counts, tolerance=0.0)
    assert result["delta"] == 0 and result["low"] == result["high"] == 0 and not result["worse"]


def test_a_real_regression_is_refused_and_noise_is_not():
    gold, predicted = _corpus(30)
    good = span_counts_per_document(gold, predicted)
    shuffled = [[(s, e, random.Random(i).choice(["PESSOA", "LOCAL", "TEMPO"])) for s, e, _l in doc]
                for i, doc in enumerate(gold)]  # the labels shuffled: about a third right
    bad = span_counts_per_document(gold, shuffled)
    assert gate_compare(good, bad)["worse"]
    nothing = span_counts_per_document(gold, [[] for _ in gold])  # predicts only O
    assert gate_compare(good, nothing)["worse"]
    # One document a little worse among thirty: within the noise.
    nearly = [list(doc) for doc in predicted]
    nearly[0] = nearly[0][1:]
    result = gate_compare(good, span_counts_per_document(gold, nearly))
    assert result["delta"] < 0 and not result["worse"]
    assert not gate_compare(bad, good)["worse"]  # better is never worse


def test_the_bootstrap_is_paired_and_seeded():
    gold, predicted = _corpus(10)
    a = span_counts_per_document(gold, predicted)
    b = span_counts_per_document(gold, [doc[:-1] for doc in predicted])
    first, again = paired_bootstrap(a, b, samples=200, seed=3), paired_bootstrap(a, b, samples=200, seed=3)
    assert (first == again).all() and (first <= 0).all()  # b drops a span in every document: never better
    with pytest.raises(ValueError):
        paired_bootstrap(a, b[:-1])
    with pytest.raises(ValueError):
        gate_compare(a, b, confidence=1.2)


def test_the_first_version_floor():
    gold, predicted = _corpus(4)
    assert floor_check(span_counts_per_document(gold, predicted))["passed"]
    assert not floor_check(span_counts_per_document(gold, [[] for _ in gold]))["passed"]
    assert not floor_check(span_counts_per_document(gold, predicted), min_f1=0.99)["passed"]


def test_on_too_few_documents_a_fall_beyond_the_tolerance_is_refused_by_the_observed_drop():
    # Three documents, the candidate loses two of its three right answers: F1 0.67 -> 0.33. The bootstrap's
    # interval reaches above zero (a draw of the one document both get right), so it alone would pass it.
    reference = [{"A": (1, 1, 1)}, {"A": (1, 1, 1)}, {"A": (0, 1, 1)}]
    candidate = [{"A": (1, 1, 1)}, {"A": (0, 1, 1)}, {"A": (0, 1, 1)}]
    alone = gate_compare(reference, candidate, tolerance=0.05)
    assert alone["high"] >= -0.05 and not alone["worse"]
    thin = gate_compare(reference, candidate, tolerance=0.05, min_documents=10)
    assert thin["worse"] and thin["thin"] and thin["rule"] == "observed drop"
    assert thin["delta"] == pytest.approx(1 / 3 - 2 / 3)
    # Nothing changed, or a fall within the tolerance: still never refused.
    assert not gate_compare(reference, reference, tolerance=0.05, min_documents=10)["worse"]
    assert not gate_compare(reference, candidate, tolerance=0.5, min_documents=10)["worse"]
    # Enough documents: the bootstrap alone decides.
    many = gate_compare(reference * 4, candidate * 4, tolerance=0.05, min_documents=10)
    assert not many["thin"] and many["rule"] == "bootstrap"
