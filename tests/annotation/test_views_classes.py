"""The document class on the review page and in the queue."""

from django.urls import reverse

from annotation import services_classes as classes
from annotation.models import DocumentClassification
from training.models import ModelVersion, TrainingRun


def _predict(document, label="Acórdão", score=0.77):
    run = TrainingRun.objects.create(task="text_classification", base_model="m", status="succeeded")
    version = ModelVersion.objects.create(task="text_classification", number=1, run=run, artefact="models/x")
    return classes.document_class_predict(document=document, label=label, score=score, model_version=version)


def test_the_review_page_shows_the_predicted_class_and_its_confidence(client, reviewer, ready_document):
    _predict(ready_document)
    client.force_login(reviewer)
    page = client.get(reverse("annotation:review", args=[ready_document.pk])).content.decode()
    assert 'id="document-class"' in page and "Acórdão" in page and "confidence 0.77" in page


def test_the_queue_shows_each_documents_class(client, reviewer, ready_document):
    _predict(ready_document)
    client.force_login(reviewer)
    page = client.get(reverse("documents:list")).content.decode()
    assert "doc-class status-predicted" in page and "Acórdão 0.77" in page


def test_accepting_the_class_with_htmx_answers_with_the_panel(client, reviewer, ready_document):
    row = _predict(ready_document)
    client.force_login(reviewer)
    response = client.post(reverse("annotation:class-action", args=[ready_document.pk, "accept"]),
                           {"revision": row.revision}, HTTP_HX_REQUEST="true")
    body = response.content.decode()
    assert response.status_code == 200 and body.lstrip().startswith('<section id="document-class"')
    assert DocumentClassification.objects.get().status == "accepted"


def test_choosing_a_class_without_javascript_redirects_back_to_the_review(client, reviewer, ready_document):
    label = classes.document_class_get_or_create(name="Sentença")
    client.force_login(reviewer)
    response = client.post(reverse("annotation:class-set", args=[ready_document.pk]),
                           {"label": label.pk, "revision": 0})
    assert response.status_code == 302 and response.url == reverse("annotation:review", args=[ready_document.pk])
    row = DocumentClassification.objects.get()
    assert (row.label, row.status, row.source, row.reviewer) == (label, "accepted", "human", reviewer)


def test_a_stale_change_is_refused_with_a_visible_message(client, reviewer, ready_document):
    _predict(ready_document)
    client.force_login(reviewer)
    response = client.post(reverse("annotation:class-action", args=[ready_document.pk, "reject"]),
                           {"revision": 5}, HTTP_HX_REQUEST="true")
    assert response.status_code == 409 and "changed meanwhile" in response.content.decode()
    assert DocumentClassification.objects.get().status == "predicted"


def test_choosing_a_class_on_a_stale_revision_is_a_conflict_as_for_entities(client, reviewer, ready_document):
    _predict(ready_document)  # revision 1: the page that chose was drawn before the prediction (revision 0)
    label = classes.document_class_get_or_create(name="Sentença")
    client.force_login(reviewer)
    response = client.post(reverse("annotation:class-set", args=[ready_document.pk]),
                           {"label": label.pk, "revision": 0}, HTTP_HX_REQUEST="true")
    assert response.status_code == 409 and "changed meanwhile" in response.content.decode()
    assert DocumentClassification.objects.get().label.name == "Acórdão"


def test_a_class_change_without_its_revision_is_refused(client, reviewer, ready_document):
    _predict(ready_document)
    label = classes.document_class_get_or_create(name="Sentença")
    client.force_login(reviewer)
    for url, data in ((reverse("annotation:class-set", args=[ready_document.pk]), {"label": label.pk}),
                      (reverse("annotation:class-action", args=[ready_document.pk, "accept"]), {})):
        response = client.post(url, data, HTTP_HX_REQUEST="true")
        assert response.status_code == 422 and "which version" in response.content.decode()
    row = DocumentClassification.objects.get()
    assert (row.label.name, row.status, row.revision) == ("Acórdão", "predicted", 1)


def test_an_invalid_class_is_refused(client, reviewer, ready_document):
    client.force_login(reviewer)
    response = client.post(reverse("annotation:class-set", args=[ready_document.pk]), {"label": "x"},
                           HTTP_HX_REQUEST="true")
    assert response.status_code == 422 and not DocumentClassification.objects.exists()


def test_strangers_cannot_change_the_class(client, stranger, ready_document):
    label = classes.document_class_get_or_create(name="Sentença")
    client.force_login(stranger)
    response = client.post(reverse("annotation:class-set", args=[ready_document.pk]), {"label": label.pk})
    assert response.status_code == 403 and not DocumentClassification.objects.exists()
