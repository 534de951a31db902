"""The review page's feedback panel: a reviewer follows their own last request, below the document, with
its per-label result folded."""

from __future__ import annotations

from django.urls import reverse

from training.models import FeedbackRequest, FeedbackUpdate


def _published(document, user) -> FeedbackRequest:
    update = FeedbackUpdate.objects.create(task="token_classification", status=FeedbackUpdate.Status.PUBLISHED,
                                           metrics={"before": {"f1": 0.5, "per_label": {"PESSOA": {"f1": 0.4}}},
                                                    "after": {"f1": 0.6, "per_label": {"PESSOA": {"f1": 0.7}}}})
    return FeedbackRequest.objects.create(document=document, task="token_classification", update=update,
                                          requested_by=user)


def test_the_sender_sees_the_result_folded(client, admin_user, ready_document):
    _published(ready_document, admin_user)
    client.force_login(admin_user)
    body = client.get(reverse("feedback-panel", args=[ready_document.pk])).content.decode()
    assert '<details id="feedback-result">' in body  # closed: no "open" attribute
    summary = body.split("<summary>")[1].split("</summary>")[0]
    assert "Validation F1: 0.500 → 0.600" in summary
    assert "<td>PESSOA</td><td>0.400</td><td>0.700</td>" in body.split("</summary>")[1].split("</details>")[0]


def test_another_reviewer_does_not_see_someone_elses_result(client, admin_user, reviewer, ready_document):
    _published(ready_document, admin_user)
    client.force_login(reviewer)
    body = client.get(reverse("feedback-panel", args=[ready_document.pk])).content.decode()
    assert "feedback-result" not in body and "feedback-status" not in body


def test_a_reviewer_sees_their_own_request_not_a_newer_one_of_someone_else(client, admin_user, ready_document,
                                                                           django_user_model):
    other = django_user_model.objects.create_superuser("boss", "boss@example.org", "secret-pass-123")
    mine = _published(ready_document, admin_user)
    theirs = _published(ready_document, other)
    assert FeedbackRequest.objects.filter(document=ready_document).first() == theirs
    client.force_login(admin_user)
    body = client.get(reverse("feedback-panel", args=[ready_document.pk])).content.decode()
    assert "feedback-result" in body and mine.update.get_status_display() in body


def test_the_panel_sits_below_the_document(client, reviewer, ready_document):
    client.force_login(reviewer)
    body = client.get(reverse("annotation:review", args=[ready_document.pk])).content.decode()
    assert body.index('id="review-panel"') < body.index('id="feedback-panel"')


def _rejected(document, user) -> FeedbackRequest:
    update = FeedbackUpdate.objects.create(task="token_classification", status=FeedbackUpdate.Status.REJECTED,
                                           error="Validation F1 fell from 0.950 (version 3) to 0.850.",
                                           metrics={"before": {"f1": 0.95}, "after": {"f1": 0.85}})
    return FeedbackRequest.objects.create(document=document, task="token_classification", update=update,
                                          requested_by=user)


def _not_lost(client, document) -> str:
    body = client.get(reverse("feedback-panel", args=[document.pk])).content.decode()
    return body.split('id="feedback-not-lost">')[1].split("</p>")[0]


def test_a_refused_update_tells_the_reviewer_which_run_learns_the_corrections(client, admin_user, ready_document):
    from django.utils import timezone

    from training.models import TrainingRun

    _rejected(ready_document, admin_user)
    client.force_login(admin_user)
    assert "once the document is marked reviewed" in _not_lost(client, ready_document)
    reviewed_at = timezone.now()
    ready_document.__class__.objects.filter(pk=ready_document.pk).update(reviewed_at=reviewed_at)
    assert "the next full run learns them" in _not_lost(client, ready_document)
    # A run that started before the review snapshotted the documents without it: not that one.
    TrainingRun.objects.create(task="token_classification", status=TrainingRun.Status.RUNNING,
                               started_at=reviewed_at - timezone.timedelta(minutes=1))
    assert "the next full run learns them" in _not_lost(client, ready_document)
    queued = TrainingRun.objects.create(task="token_classification", status=TrainingRun.Status.QUEUED)
    shown = _not_lost(client, ready_document)
    assert f'<a href="{reverse("training:run", args=[queued.pk])}">full run #{queued.pk}</a>' in shown


def test_a_published_update_says_nothing_of_the_kind(client, admin_user, ready_document):
    _published(ready_document, admin_user)
    client.force_login(admin_user)
    assert "feedback-not-lost" not in client.get(reverse("feedback-panel", args=[ready_document.pk])).content.decode()
