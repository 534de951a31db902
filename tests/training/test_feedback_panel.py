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
