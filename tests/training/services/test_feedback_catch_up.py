"""A consolidation run (DOCLOOP_RETRAIN_AUTO) snapshots the reviewed documents when it starts; what feedback
taught while it trained must not be undone by its version: those documents are sent again to it."""

from datetime import timedelta

import pytest
from django.utils import timezone

from training.models import FeedbackRequest, FeedbackUpdate, Gate, ModelVersion, TrainingRun
from training.services.feedback import feedback_catch_up

T0 = timezone.now() - timedelta(hours=1)


def _at(minutes: int):
    return T0 + timedelta(minutes=minutes)


def _full_version(number: int, *, created: int, trained: list[int], validated: list[int], active: bool,
                  activated: int | None = None) -> ModelVersion:
    run = TrainingRun.objects.create(task="token_classification", kind=TrainingRun.Kind.FULL, base_model="m",
                                     status=TrainingRun.Status.SUCCEEDED,
                                     dataset_stats={"train_documents": trained, "eval_documents": validated})
    TrainingRun.objects.filter(pk=run.pk).update(created_at=_at(created), started_at=_at(created + 1))
    version = ModelVersion.objects.create(task="token_classification", number=number, run=run, kind=run.kind,
                                          artefact=f"models/v{number}", is_active=active,
                                          activated_at=_at(activated) if activated is not None else None)
    return ModelVersion.objects.select_related("run").get(pk=version.pk)


def _learnt(document, *, parent: ModelVersion, started: int, finished: int, user=None,
            status=FeedbackUpdate.Status.PUBLISHED, gate=Gate.PASSED) -> FeedbackUpdate:
    """An update that learnt `document` from `parent` between the two minutes and made a version."""
    run = TrainingRun.objects.create(task="token_classification", kind=TrainingRun.Kind.FEEDBACK, base_model="m",
                                     status=TrainingRun.Status.SUCCEEDED, parent_version=parent)
    number = ModelVersion.objects.count() + 1
    version = ModelVersion.objects.create(task="token_classification", number=number, run=run, parent=parent,
                                          kind=run.kind, artefact=f"models/v{number}", gate_status=gate)
    update = FeedbackUpdate.objects.create(task="token_classification", status=status, parent_version=parent,
                                           model_version=version, started_at=_at(started), finished_at=_at(finished))
    request = FeedbackRequest.objects.create(document=document, task="token_classification", update=update,
                                             requested_by=user)
    FeedbackRequest.objects.filter(pk=request.pk).update(created_at=_at(started - 1))
    return update


@pytest.fixture
def timeline(import_corpus, reviewer, queues):
    """Documents 0-2 reviewed before the run (it trains on 0 and 1 and validates on 2); the run is queued at
    minute 10 and its version activated at minute 30; meanwhile feedback learnt documents 3 and 4 onto v1."""
    documents = import_corpus(6)
    v1 = _full_version(1, created=0, trained=[d.pk for d in documents[:2]], validated=[documents[2].pk],
                       active=False, activated=0)
    v2 = _full_version(2, created=10, trained=[d.pk for d in documents[:2]], validated=[documents[2].pk],
                       active=True, activated=30)
    ModelVersion.objects.filter(pk=v1.pk).update(is_active=False)
    _learnt(documents[0], parent=v1, started=5, finished=6)  # before the run was queued: the run has it anyway
    _learnt(documents[3], parent=v1, started=12, finished=13, user=reviewer)
    _learnt(documents[4], parent=v1, started=20, finished=21)
    return {"documents": documents, "v1": v1, "v2": v2, "reviewer": reviewer, "queues": queues}


def _sent(requests) -> list[int]:
    return sorted(r.document_id for r in requests)


def test_what_feedback_taught_while_the_run_trained_is_sent_again_to_its_version(
        timeline, django_capture_on_commit_callbacks):
    documents, queues = timeline["documents"], timeline["queues"]
    with django_capture_on_commit_callbacks(execute=True):
        requests = feedback_catch_up(version=timeline["v2"])
    assert _sent(requests) == [documents[3].pk, documents[4].pk]
    assert {r.update_id for r in requests} == {requests[0].update_id}  # one queued update learns them together
    update = FeedbackUpdate.objects.get(pk=requests[0].update_id)
    assert update.status == FeedbackUpdate.Status.QUEUED and queues["training"].job_ids == [update.job_id]
    senders = dict(FeedbackRequest.objects.filter(pk__in=[r.pk for r in requests])
                   .values_list("document_id", "requested_by"))
    assert senders == {documents[3].pk: timeline["reviewer"].pk, documents[4].pk: None}  # as they were sent


def test_documents_are_sent_again_once(timeline, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        assert len(feedback_catch_up(version=timeline["v2"])) == 2
        assert feedback_catch_up(version=timeline["v2"]) == []


def test_an_update_superseded_by_the_run_is_sent_again_and_one_learnt_on_the_new_version_is_not(
        timeline, django_capture_on_commit_callbacks):
    documents, v1, v2 = timeline["documents"], timeline["v1"], timeline["v2"]
    # Started on v1 during the run, finished after its version became active: kept inactive (superseded).
    _learnt(documents[5], parent=v1, started=25, finished=35, status=FeedbackUpdate.Status.REJECTED,
            gate=Gate.SUPERSEDED)
    # Claimed after v2 became active: it learnt onto v2 already.
    _learnt(documents[4], parent=v2, started=40, finished=41)
    FeedbackRequest.objects.filter(update__parent_version=v2).update(created_at=_at(39))
    with django_capture_on_commit_callbacks(execute=True):
        requests = feedback_catch_up(version=v2)
    assert _sent(requests) == [documents[3].pk, documents[5].pk]


def test_a_refused_update_or_the_runs_own_documents_are_not_sent_again(timeline, django_capture_on_commit_callbacks):
    documents, v1 = timeline["documents"], timeline["v1"]
    FeedbackUpdate.objects.filter(requests__document__in=documents[3:5]).update(status=FeedbackUpdate.Status.REJECTED)
    ModelVersion.objects.filter(feedback_update__requests__document__in=documents[3:5]).update(gate_status=Gate.REJECTED)
    _learnt(documents[2], parent=v1, started=14, finished=15)  # the run validated on it: it has it
    with django_capture_on_commit_callbacks(execute=True):
        assert feedback_catch_up(version=timeline["v2"]) == []


def test_only_the_active_full_run_version_catches_up(timeline):
    v2 = timeline["v2"]
    ModelVersion.objects.filter(pk=v2.pk).update(is_active=False)
    v2.refresh_from_db()
    assert feedback_catch_up(version=v2) == []
    feedback_version = ModelVersion.objects.filter(kind=TrainingRun.Kind.FEEDBACK).first()
    assert feedback_catch_up(version=feedback_version) == []


def test_the_active_versions_lineage_says_which_documents_it_learnt(timeline):
    """A feedback chain learnt its full run's documents (training and, through the refit, validation), then
    each update's documents and replay; never an update's validation documents."""
    from training.services.gates import version_learnt_documents

    documents, v1 = timeline["documents"], timeline["v1"]
    child = _learnt(documents[5], parent=v1, started=40, finished=41).model_version
    TrainingRun.objects.filter(pk=child.run_id).update(dataset_stats={
        "train_documents": [documents[5].pk], "replay_documents": [documents[3].pk],
        "eval_documents": [documents[4].pk]})
    child.refresh_from_db()
    expected = {documents[i].pk for i in (0, 1, 2, 3, 5)}
    assert version_learnt_documents(version=child) == expected
    TrainingRun.objects.filter(pk=v1.run_id).update(hyperparameters={"refit": False})
    assert version_learnt_documents(version=ModelVersion.objects.get(pk=child.pk)) == expected - {documents[2].pk}


def test_a_consolidation_run_judged_on_documents_the_chain_learnt_is_not_compared_with_it(timeline):
    from training.services.gates import _learnt_by_both

    documents, v1, v2 = timeline["documents"], timeline["v1"], timeline["v2"]
    chain = _learnt(documents[3], parent=v1, started=40, finished=41).model_version
    TrainingRun.objects.filter(pk=chain.run_id).update(dataset_stats={"train_documents": [documents[3].pk]})
    run = TrainingRun.objects.create(task="token_classification", kind=TrainingRun.Kind.FULL, base_model="m",
                                     hyperparameters={"refit": True},
                                     dataset_stats={"train_documents": [d.pk for d in documents[:3]],
                                                    "eval_documents": [documents[3].pk]})
    assert _learnt_by_both(run=run, active=ModelVersion.objects.get(pk=chain.pk))  # the chain was sent it
    assert not _learnt_by_both(run=run, active=v2)  # v2's run never saw document 3: compared as usual
    TrainingRun.objects.filter(pk=run.pk).update(hyperparameters={"refit": False})
    assert not _learnt_by_both(run=run, active=ModelVersion.objects.get(pk=chain.pk))  # the run held it out
