"""The gate's rule (training.ml.gate): a paired bootstrap over documents."""

import random

import pytest

from training.ml.gate import f1_from_counts, floor_check, gate_compare, paired_bootstrap
from training.ml.metrics import (
    PASSAGE_WORDS,
    class_counts_per_document,
    class_scores,
    span_counts_per_document,
    span_scores,
)


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


def test_passages_cut_a_document_at_line_ends_and_count_each_span_once():
    from training.ml.metrics import span_counts_per_block

    # One document of 12 sentences of 50 words: passages of at least 250 words end at the 5th and 10th line end.
    ends = [i % 50 == 49 for i in range(600)]
    gold = [[(i * 20, i * 20 + 2, "PESSOA") for i in range(30)]]
    predicted = [[s for k, s in enumerate(gold[0]) if k % 3]]
    blocks = span_counts_per_block(gold, predicted, [ends], block_words=250)
    assert len(blocks) == 3
    assert [b["PESSOA"][2] for b in blocks] == [13, 12, 5]  # spans starting in words 0-249, 250-499, 500-599
    assert f1_from_counts(blocks) == pytest.approx(f1_from_counts(span_counts_per_document(gold, predicted)))
    assert span_counts_per_block([[]], [[]], [[False] * 10]) == [{}]  # a short document is one passage
    # Scores keep the finer cut (PASSAGE_WORDS, 125): 150-word passages here, at every third line end.
    assert len(span_counts_per_block(gold, predicted, [ends])) == 4


def test_fine_passages_are_summed_in_pairs_only_where_the_pairs_still_make_enough_units():
    from training.ml.gate import passages

    fine = [{"PESSOA": [1, 2, 3]}] * 25
    merged, words = passages(fine, min_units=10, fine_words=125, coarse_words=250)
    assert (len(merged), words) == (13, 250) and merged[0] == {"PESSOA": [2, 4, 6]}
    assert merged[-1] == {"PESSOA": [1, 2, 3]}  # the odd one out stays alone
    assert f1_from_counts(merged) == pytest.approx(f1_from_counts(fine))
    kept, words = passages(fine[:19], min_units=10, fine_words=125, coarse_words=250)
    assert (len(kept), words) == (19, 125)  # pairs would make 10 units of 19 passages: too few to halve


def _one_long_document(rng: random.Random, keep: float):
    """A validation document of 16 passages (4,000 words); the tagger finds each entity with probability `keep`."""
    gold = [(i * 10, i * 10 + 2, "PESSOA") for i in range(400)]
    return gold, [s for s in gold if rng.random() < keep]


def test_on_one_long_document_the_gate_resamples_passages(settings):
    from training.ml.metrics import span_counts_per_block, span_counts_per_document
    from training.models import ModelVersion
    from training.services.gates import gate_judge

    settings.DOCLOOP_EVAL_MIN_DOCUMENTS, settings.DOCLOOP_GATE_TOLERANCE = 10, 0.01
    ends = [i % 25 == 24 for i in range(4000)]

    def scores(keep: float, seed: int) -> dict:
        gold, predicted = _one_long_document(random.Random(seed), keep)
        return {"per_label": {"PESSOA": {}}, "per_document": span_counts_per_document([gold], [predicted]),
                "per_block": span_counts_per_block([gold], [predicted], [ends]), "passage_words": PASSAGE_WORDS}

    parent = ModelVersion(number=3)
    reference = scores(0.80, 1)
    # Another draw of the same tagger: its F1 moves by noise alone, more than the tolerance on one document.
    noisy = scores(0.80, 4)
    status, reason, figures = gate_judge(task="token_classification", candidate=noisy, reference=reference,
                                         reference_version=parent, evaluation_set=None)
    assert figures["units"] == "passages" and figures["samples_of"] == 16 and figures["documents"] == 1
    assert figures["delta"] < -0.01 and status == "passed", (figures, reason)
    # A real fall: it finds half as many entities.
    status, reason, figures = gate_judge(task="token_classification", candidate=scores(0.4, 3), reference=reference,
                                         reference_version=parent, evaluation_set=None)
    assert status == "rejected" and "16 passages of about 250 words" in reason
    # Scores kept before passages existed: the one document decides, as before, and refuses the same noise.
    old = {k: v for k, v in noisy.items() if k != "per_block"}
    status, _reason, figures = gate_judge(task="token_classification", candidate=old, reference=reference,
                                          reference_version=parent, evaluation_set=None)
    assert figures["units"] == "documents" and status == "rejected"


def _short_document_scores(words: int):
    from training.ml.metrics import span_counts_per_block, span_counts_per_document

    ends = [i % 25 == 24 for i in range(words)]
    gold = [(i * 10, i * 10 + 2, "PESSOA") for i in range(words // 10)]

    def scores(predicted) -> dict:
        return {"per_label": {"PESSOA": {}}, "per_document": span_counts_per_document([gold], [predicted]),
                "per_block": span_counts_per_block([gold], [predicted], [ends]), "passage_words": PASSAGE_WORDS}

    return gold, scores


def test_on_a_short_document_of_few_passages_the_reason_names_the_rule_that_refused(settings):
    """Fewer passages than DOCLOOP_EVAL_MIN_DOCUMENTS: the observed drop decides (the bootstrap's interval is
    too wide), and the reason says so rather than quoting an interval that does not lie below the tolerance."""
    from training.models import ModelVersion
    from training.services.gates import gate_judge

    settings.DOCLOOP_EVAL_MIN_DOCUMENTS, settings.DOCLOOP_GATE_TOLERANCE = 10, 0.01
    gold, scores = _short_document_scores(900)  # 900 words: 8 passages of 125 words
    reference = scores(gold[:80])
    status, reason, figures = gate_judge(task="token_classification", candidate=scores(gold[:72]),
                                         reference=reference, reference_version=ModelVersion(number=2),
                                         evaluation_set=None)
    assert (figures["units"], figures["samples_of"], figures["rule"]) == ("passages", 8, "observed drop")
    assert status == "rejected" and "On fewer than 10 passages of about 125 words (they make 8)" in reason
    status, _reason, _figures = gate_judge(task="token_classification", candidate=scores(gold[:80]),
                                           reference=reference, reference_version=ModelVersion(number=2),
                                           evaluation_set=None)
    assert status == "passed"  # a change of nothing never is refused


def test_on_one_document_of_a_couple_of_thousand_words_the_bootstrap_decides_on_shorter_passages(settings):
    """1,750 words make 7 passages of 250 words, too few for the bootstrap; cut at 125 words they make 14, and
    the bootstrap decides: a drop it cannot tell from noise is published, a destructive update refused."""
    from training.models import ModelVersion
    from training.services.gates import gate_judge

    settings.DOCLOOP_EVAL_MIN_DOCUMENTS, settings.DOCLOOP_GATE_TOLERANCE = 10, 0.01
    gold, scores = _short_document_scores(1750)
    reference = scores(gold[:150])
    rng = random.Random(5)
    noisy = scores([s for s in gold[:150] if rng.random() > 0.05] + gold[150:155])  # loses 7, gains 5
    status, reason, figures = gate_judge(task="token_classification", candidate=noisy, reference=reference,
                                         reference_version=ModelVersion(number=2), evaluation_set=None)
    assert (figures["units"], figures["samples_of"], figures["passage_words"]) == ("passages", 14, 125)
    assert figures["rule"] == "bootstrap" and figures["delta"] < -0.01 and status == "passed", (figures, reason)
    shuffled = scores([(start + 3, end + 3, label) for start, end, label in gold[:150]])  # every span misplaced
    status, reason, figures = gate_judge(task="token_classification", candidate=shuffled, reference=reference,
                                         reference_version=ModelVersion(number=2), evaluation_set=None)
    assert status == "rejected" and "14 passages of about 125 words" in reason and figures["high"] < -0.5


def test_counts_cut_before_the_passages_changed_are_not_compared_with_new_ones(settings):
    """A parent scored when passages were 250 words, a child scored now: the passages are not the same units,
    so the gate does not pair them (it falls back to documents), and the stored scores count as stale (a
    cached score is measured again, feedback measures its parent again)."""
    from training.ml.metrics import passages_current, span_counts_per_block
    from training.models import ModelVersion
    from training.services.gates import gate_judge

    settings.DOCLOOP_EVAL_MIN_DOCUMENTS, settings.DOCLOOP_GATE_TOLERANCE = 10, 0.01
    gold, scores = _short_document_scores(5000)
    ends = [i % 25 == 24 for i in range(5000)]
    old = {**scores(gold[:400]), "per_block": span_counts_per_block([gold], [gold[:400]], [ends], block_words=250)}
    del old["passage_words"]
    new = scores(gold[:400])
    assert len(old["per_block"]) == 20 and len(new["per_block"]) == 40
    assert not passages_current(old) and passages_current(new) and passages_current({"per_document": []})
    # Same length by chance is not enough either: the cut must be known to be the same.
    same_length = {**old, "per_block": new["per_block"][:20]}
    for reference in (old, same_length):
        status, _reason, figures = gate_judge(task="token_classification", candidate=new, reference=reference,
                                              reference_version=ModelVersion(number=2), evaluation_set=None)
        assert figures["units"] == "documents" and status == "passed"
    # Neither says how it was cut: not paired either, even where the lengths agree.
    unknown = {k: v for k, v in new.items() if k != "passage_words"}
    _status, _reason, figures = gate_judge(task="token_classification", candidate=unknown, reference=unknown,
                                           reference_version=ModelVersion(number=2), evaluation_set=None)
    assert figures["units"] == "documents"


def test_a_full_run_is_not_compared_on_documents_the_active_version_learnt_too(settings):
    """Before an evaluation set exists a full run is scored on its validation documents, which its refit
    learnt; when the active version (a feedback chain, say) learnt every one of them too, the two F1s measure
    what each memorised: the run must only reach half of the active version's F1 there (it learnt them too),
    so a run that learnt nothing is still refused."""
    from training.models import ModelVersion
    from training.services.gates import gate_judge

    settings.DOCLOOP_EVAL_MIN_DOCUMENTS, settings.DOCLOOP_GATE_TOLERANCE = 10, 0.01
    settings.DOCLOOP_GATE_FIRST_MIN_F1 = 0.0
    gold, scores = _short_document_scores(4000)
    memorised, consolidated = scores(gold), scores(gold[:300])  # the chain knows it by heart

    def judge(candidate, **flags):
        return gate_judge(task="token_classification", candidate=candidate, reference=memorised,
                          reference_version=ModelVersion(number=9), evaluation_set=None, **flags)

    status, _reason, _figures = judge(consolidated)
    assert status == "rejected"  # compared, the run loses to the memorised document
    status, reason, figures = judge(consolidated, learnt_by_both=True)
    assert (status, reason, figures["rule"], figures["reference_version"]) == ("passed", "", "learnt by both", 9)
    assert figures["reference_f1_learnt"] == 1.0 and figures["min_share_f1"] == 0.5 and figures["candidate_f1"] > 0.8
    for learnt_nothing in (scores([]), scores(gold[:100])):  # F1 0 and 0.4, under half of 1.0
        status, reason, figures = judge(learnt_nothing, learnt_by_both=True)
        assert status == "rejected" and not figures["passed"]
        assert "under half of version 9's 1.000: it did not learn them. Version 9 stays active." in reason
