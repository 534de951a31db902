"""The feedback guardrail's reference on documents the parent learnt in its full run's refit
(training.services.gates.reference_held_out): that run's score there before the refit learnt them."""

from __future__ import annotations

from training.models import Gate
from training.services.gates import gate_judge, reference_held_out

# Counts per label: [true positives, predicted, gold].
MEMORISED = {"PESSOA": [4, 4, 4]}  # the parent's own score on a document its refit learnt
BEFORE_REFIT = {"PESSOA": [2, 3, 4]}  # the run's chosen epoch on the same document, before the refit
OTHER = {"LOCAL": [1, 2, 2]}


def _before(per_document, per_block=None):
    scores = {"f1": 1.0, "per_document": per_document, "per_label": {}}
    if per_block is not None:
        scores.update(per_block=per_block, passage_words=125)
    return scores


def test_a_document_the_parent_learnt_in_the_refit_is_scored_as_the_run_scored_it_before():
    before = _before([MEMORISED, OTHER], per_block=[{"PESSOA": [2, 2, 2]}, {"PESSOA": [2, 2, 2]}, OTHER])
    held_out = {"documents": [7], "per_document": [BEFORE_REFIT], "passage_words": 125,
                "per_block": [[{"PESSOA": [1, 2, 2]}, {"PESSOA": [1, 1, 2]}]]}
    reference, swapped = reference_held_out(before=before, documents=[7, 9], held_out=held_out, learnt={7, 9},
                                            passages=[2, 1])
    assert swapped == [7]
    assert reference["per_document"] == [BEFORE_REFIT, OTHER]  # document 9 was not held out: its own score
    assert reference["per_block"] == [{"PESSOA": [1, 2, 2]}, {"PESSOA": [1, 1, 2]}, OTHER]
    assert before["per_document"] == [MEMORISED, OTHER]  # the parent's scores are left as they were


def test_the_parents_own_score_stays_where_the_run_score_would_not_be_the_same_evidence():
    held_out = {"documents": [7], "per_document": [BEFORE_REFIT]}
    # not learnt by the parent: its own score is already honest
    assert reference_held_out(before=_before([MEMORISED]), documents=[7], held_out=held_out, learnt=set(),
                              passages=None)[1] == []
    # the document's gold entities changed since the run (re-reviewed): its counts no longer compare
    changed = {"PESSOA": [4, 4, 5]}
    assert reference_held_out(before=_before([changed]), documents=[7], held_out=held_out, learnt={7},
                              passages=None) == (_before([changed]), [])
    # passages that would not pair up with the candidate's
    blocks = _before([MEMORISED], per_block=[MEMORISED])
    assert reference_held_out(before=blocks, documents=[7], held_out={**held_out, "passage_words": 125,
                                                                      "per_block": [[BEFORE_REFIT, {}]]},
                              learnt={7}, passages=[1])[1] == []
    # no held-out scores at all (a run without refit, or one from before they were kept)
    assert reference_held_out(before=_before([MEMORISED]), documents=[7], held_out=None, learnt={7},
                              passages=None)[1] == []


def test_forgetting_what_the_refit_memorised_is_not_a_regression_but_falling_below_the_run_is(settings):
    settings.DOCLOOP_GATE_TOLERANCE = 0.05
    settings.DOCLOOP_EVAL_MIN_DOCUMENTS = 2

    class Parent:
        number = 3

    memorised = [{"PESSOA": [10, 10, 10]}] * 4  # the parent on four documents its refit learnt: F1 1.0
    before_refit = [{"PESSOA": [6, 10, 10]}] * 4  # the run on them before the refit: F1 0.6
    forgot = [{"PESSOA": [7, 10, 10]}] * 4  # an update that forgot some of it: F1 0.7
    status, _reason, _figures = gate_judge(task="token_classification", candidate={"per_document": forgot},
                                           reference={"per_document": memorised}, reference_version=Parent,
                                           evaluation_set=None)
    assert status == Gate.REJECTED  # against the memorised score, forgetting looks like a fall
    reference, swapped = reference_held_out(before={"per_document": memorised}, documents=[1, 2, 3, 4],
                                            held_out={"documents": [1, 2, 3, 4], "per_document": before_refit},
                                            learnt={1, 2, 3, 4}, passages=None)
    status, reason, figures = gate_judge(task="token_classification", candidate={"per_document": forgot},
                                         reference=reference, reference_version=Parent, evaluation_set=None,
                                         held_out_documents=len(swapped))
    assert (status, reason) == (Gate.PASSED, "")
    assert figures["reference"] == "held out before the refit" and figures["held_out_documents"] == 4
    destroyed = [{"PESSOA": [1, 10, 10]}] * 4  # shuffled labels: F1 0.1, far below the run's 0.6
    status, reason, figures = gate_judge(task="token_classification", candidate={"per_document": destroyed},
                                         reference=reference, reference_version=Parent, evaluation_set=None,
                                         held_out_documents=4)
    assert status == Gate.REJECTED and "Validation F1 fell from 0.600 (version 3) to 0.100" in reason
    assert "On 4 validation documents, which version 3 learnt in its full run's refit" in reason
