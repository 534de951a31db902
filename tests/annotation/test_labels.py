import pytest
from django.urls import reverse

from annotation import services
from annotation.models import Annotation, AnnotationEvent, EntityType


def test_an_admin_adds_and_renames_a_type_and_history_keeps_the_old_name(client, admin_user, ready_document,
                                                                          entity_types, reviewer):
    client.force_login(admin_user)
    response = client.post(reverse("annotation:labels"), {"new-name": "processo", "new-color": "#123ABC",
                                                          "new-description": "Números de processo",
                                                          "new-shortcut": "8"})
    assert response.status_code == 302
    created = EntityType.objects.get(name="PROCESSO")
    assert (created.color, created.shortcut) == ("#123abc", "8")
    annotation = services.annotation_create(document=ready_document, start=1, end=3, label=created, user=reviewer)
    client.post(reverse("annotation:label-edit", args=[created.pk]), {
        f"type-{created.pk}-name": "NUMERO", f"type-{created.pk}-color": "#123abc",
        f"type-{created.pk}-description": "", f"type-{created.pk}-shortcut": "8"})
    annotation.refresh_from_db()
    assert annotation.label.name == "NUMERO"
    event = AnnotationEvent.objects.get(annotation=annotation)
    assert (event.after["label"], event.after["label_id"]) == ("PROCESSO", created.pk)  # the name at the time


@pytest.mark.parametrize("color", ["red", "#12345", "#GGGGGG", "123456"])
def test_a_colour_that_is_not_hex_is_refused(client, admin_user, color):
    client.force_login(admin_user)
    response = client.post(reverse("annotation:labels"), {"new-name": "X", "new-color": color, "new-shortcut": ""})
    assert response.status_code == 400 and "#rrggbb" in response.content.decode()
    assert not EntityType.objects.filter(name="X").exists()


def test_a_shortcut_is_one_digit_and_not_taken(client, admin_user, entity_types):
    client.force_login(admin_user)
    taken = entity_types["PESSOA"].shortcut
    for shortcut in ("a", taken):
        response = client.post(reverse("annotation:labels"), {"new-name": "X", "new-color": "#000000",
                                                              "new-shortcut": shortcut})
        assert response.status_code == 400
    assert not EntityType.objects.filter(name="X").exists()


def test_merging_types_moves_entities_with_events_and_revert_follows_the_merge(client, admin_user, reviewer,
                                                                               ready_document, entity_types):
    pessoa, local = entity_types["PESSOA"], entity_types["LOCAL"]
    annotation = services.annotation_create(document=ready_document, start=1, end=3, label=local, user=reviewer)
    created = AnnotationEvent.objects.get(annotation=annotation)
    client.force_login(admin_user)
    response = client.post(reverse("annotation:labels-merge"), {"source": local.pk, "target": pessoa.pk})
    assert response.status_code == 302
    assert not EntityType.objects.filter(pk=local.pk).exists()
    annotation.refresh_from_db()
    assert (annotation.label, annotation.revision) == (pessoa, 2)
    merge = annotation.events.get(action="merge")
    assert (merge.before["label"], merge.after["label"], merge.user) == ("LOCAL", "PESSOA", admin_user)
    services.annotation_delete(annotation=annotation, user=reviewer, revision=2)
    restored = services.annotation_revert(annotation=annotation, event=created, user=reviewer, revision=3)
    assert (restored.label, restored.status) == (pessoa, "accepted")


def test_reviewers_cannot_change_the_label_schema(client, reviewer, entity_types):
    client.force_login(reviewer)
    pessoa = entity_types["PESSOA"]
    assert client.get(reverse("annotation:labels")).status_code == 403
    assert client.post(reverse("annotation:labels"), {"new-name": "X", "new-color": "#000000"}).status_code == 403
    assert client.post(reverse("annotation:labels-merge"), {"source": pessoa.pk,
                                                            "target": entity_types["LOCAL"].pk}).status_code == 403
    assert EntityType.objects.filter(pk=pessoa.pk).exists() and not EntityType.objects.filter(name="X").exists()


def test_admin_actions_reset_the_review_and_repredict(client, admin_user, reviewer, ready_document, entity_types,
                                                      queues, django_capture_on_commit_callbacks):
    from django.contrib.auth import get_user_model

    services.annotations_predict(document=ready_document, model_version=None,
                                 spans=[services.Span(1, 3, "ORGANIZACAO", 0.9), services.Span(7, 9, "LOCAL", 0.5)])
    services.annotation_accept(annotation=Annotation.objects.get(start=1), user=reviewer, revision=1)
    boss = get_user_model().objects.create_superuser("boss", "boss@example.org", "secret-pass-123")
    client.force_login(boss)
    url = reverse("admin:documents_document_changelist")
    with django_capture_on_commit_callbacks(execute=True):
        client.post(url, {"action": "repredict", "_selected_action": [ready_document.pk]})
    ready_document.refresh_from_db()
    assert ready_document.status == "uploaded" and queues["default"].count == 1
    assert dict(Annotation.objects.values_list("start", "status")) == {1: "accepted", 7: "deleted"}

    from documents.models import Document
    from documents.services import document_mark_reviewed

    Document.objects.filter(pk=ready_document.pk).update(status="ready")
    document_mark_reviewed(document=ready_document, user=reviewer)
    client.post(url, {"action": "reset_review", "_selected_action": [ready_document.pk]})
    ready_document.refresh_from_db()
    assert ready_document.reviewed_at is None and Annotation.objects.get(start=1).status == "accepted"
