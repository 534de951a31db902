from django.contrib.auth import get_user_model
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from documents.models import Document


def _superuser():
    return get_user_model().objects.create_superuser("boss", "boss@example.org", "secret-pass-123")


def test_an_admin_adds_a_document_by_uploading_a_pdf(client, db, pdf_bytes, run_worker,
                                                     django_capture_on_commit_callbacks):
    client.force_login(_superuser())
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(reverse("admin:documents_document_add"),
                               {"upload": SimpleUploadedFile("peticao.pdf", pdf_bytes)})
    document = Document.objects.get()
    assert response.status_code == 302
    assert (document.original_name, document.status) == ("peticao.pdf", "uploaded")
    assert run_worker() == 1
    document.refresh_from_db()
    assert document.status == "ready" and document.pages.count() == 1


def test_an_admin_upload_of_a_failed_document_retries_it(client, db, pdf_bytes, run_worker,
                                                         django_capture_on_commit_callbacks):
    from documents.services import document_upload

    document = document_upload(data=pdf_bytes, name="peticao.pdf", enqueue=False).document
    Document.objects.filter(pk=document.pk).update(status=Document.Status.FAILED, error="queue down")
    client.force_login(_superuser())
    with django_capture_on_commit_callbacks(execute=True):
        client.post(reverse("admin:documents_document_add"), {"upload": SimpleUploadedFile("again.pdf", pdf_bytes)})
    assert run_worker() == 1
    document.refresh_from_db()
    assert document.status == "ready" and Document.objects.count() == 1


def test_the_admin_upload_form_refuses_a_non_pdf(client, db):
    client.force_login(_superuser())
    response = client.post(reverse("admin:documents_document_add"),
                           {"upload": SimpleUploadedFile("notas.pdf", b"just some text")})
    assert response.status_code == 200 and "not a PDF" in response.content.decode()
    assert not Document.objects.exists()


def test_every_model_has_a_working_admin_list_and_change_page(client, ready_document, entity_types, reviewer):
    from annotation.services import annotation_create
    from training.models import EpochMetric, ModelVersion, TrainingRun

    annotation = annotation_create(document=ready_document, start=1, end=3, label=entity_types["ORGANIZACAO"],
                                   user=reviewer)
    run = TrainingRun.objects.create(task="token_classification", base_model="m", status="succeeded")
    metric = EpochMetric.objects.create(run=run, epoch=1, train_loss=0.5, precision=0.5, recall=0.5, f1=0.5)
    version = ModelVersion.objects.create(task="token_classification", number=1, run=run, artefact="models/x")
    client.force_login(_superuser())
    objects = {"documents_document": ready_document, "documents_page": ready_document.pages.get(),
               "annotation_entitytype": entity_types["PESSOA"], "annotation_annotation": annotation,
               "annotation_annotationevent": annotation.events.get(), "training_trainingrun": run,
               "training_epochmetric": metric, "training_modelversion": version}
    for name, obj in objects.items():
        assert client.get(reverse(f"admin:{name}_changelist")).status_code == 200, name
        assert client.get(reverse(f"admin:{name}_change", args=[obj.pk])).status_code == 200, name
