"""The audit trail's hash chains: every path that writes events links them, `verify_events` checks every
chain and names the first broken link of each, and concurrent writers never fork a chain."""

from __future__ import annotations

import importlib
import io
import json
import threading
from types import SimpleNamespace

import pytest
from django.apps import apps
from django.core.management import CommandError, call_command
from django.db import connection, connections
from django.db.models import ProtectedError

from annotation import chain, services
from annotation import services_classes as classes
from annotation.models import Annotation, AnnotationEvent, DocumentClassEvent
from training.models import ModelVersion, TrainingRun

migration = importlib.import_module("annotation.migrations.0007_event_hash_chain")


@pytest.fixture
def version(db):
    run = TrainingRun.objects.create(task="token_classification", base_model="m", status="succeeded")
    return ModelVersion.objects.create(task="token_classification", number=1, run=run, artefact="models/x")


@pytest.fixture
def history(ready_document, make_pdf, entity_types, reviewer, admin_user, version):
    """Two documents whose events come from every path that writes them: predict, import, create, accept,
    reject, relabel, resize, delete, revert (one entity, a whole document), merge, withdraw, finish, and
    the document class's predict, set, accept and reject."""
    from documents.services import document_create, document_extract

    document = ready_document
    predicted = services.annotations_predict(document=document, model_version=version, spans=[
        services.Span(1, 3, "ORGANIZACAO", 0.9), services.Span(7, 9, "LOCAL", 0.4), services.Span(11, 12, "LOCAL", 0.3)])
    first = services.annotation_accept(annotation=predicted[0], user=reviewer)
    services.annotation_reject(annotation=predicted[1], user=admin_user)
    created = services.annotation_create(document=document, start=18, end=21, label=entity_types["PESSOA"],
                                         user=reviewer)
    services.annotation_relabel(annotation=created, label=entity_types["TEMPO"], user=reviewer)
    services.annotation_resize(annotation=created, start=18, end=20, user=reviewer)
    services.annotation_delete(annotation=created, user=reviewer)
    services.annotation_revert(annotation=created, event=AnnotationEvent.objects.filter(annotation=created)
                               .order_by("id")[1], user=reviewer)
    head = AnnotationEvent.objects.filter(document=document).order_by("-id").first()
    services.annotation_relabel(annotation=first, label=entity_types["LOCAL"], user=admin_user)
    services.document_revert(document=document, event_id=head.pk, user=admin_user)
    services.entity_type_merge(source=entity_types["TEMPO"], target=entity_types["PESSOA"], user=admin_user)
    services.annotations_withdraw_predictions(document=document, user=None)

    other = document_extract(document=document_create(data=make_pdf(repeat=2), name="outro.pdf")[0])
    services.annotations_import(document=other, user=reviewer, spans=[
        services.Span(1, 3, "ORGANIZACAO"), services.Span(14, 16, "PESSOA", 0.7, "predicted", "model")])
    services.annotations_accept_above(document=other, threshold=0.5, user=reviewer)
    classes.document_class_predict(document=document, label="Acórdão", score=0.83, model_version=version)
    classes.document_class_accept(document=document, user=reviewer)
    classes.document_class_reject(document=document, user=admin_user)
    classes.document_class_set(document=document, label=classes.document_class_get_or_create(name="Despacho"),
                               user=reviewer)
    classes.document_class_import(document=other, label="Sentença", user=reviewer)
    return document, other


def _links_hold(model, document) -> None:
    events = list(model.objects.filter(document=document).order_by("id"))
    assert events
    previous = chain.GENESIS
    for event in events:
        assert len(event.hash) == 64 and event.previous_hash == previous
        assert chain.event_hash(event) == event.hash
        previous = event.hash


def test_every_path_that_writes_events_links_them_into_one_chain_per_document_and_kind(history):
    document, other = history
    assert set(AnnotationEvent.objects.values_list("action", flat=True)) >= {
        "predict", "import", "create", "accept", "reject", "relabel", "resize", "delete", "revert", "merge"}
    for model in (AnnotationEvent, DocumentClassEvent):
        for each in (document, other):
            _links_hold(model, each)
    result = chain.events_verify()
    assert result.ok and result.chains == 4
    assert result.events == AnnotationEvent.objects.count() + DocumentClassEvent.objects.count()


def test_the_hash_covers_the_events_content(history):
    event = AnnotationEvent.objects.filter(action="accept").first()
    recorded = event.hash
    for field, value in [("action", "reject"), ("user_id", None), ("base_revision", 7),
                         ("after", {**event.after, "label": "PESSOA"}), ("previous_hash", "0" * 64)]:
        original = getattr(event, field)
        setattr(event, field, value)
        assert chain.event_hash(event) != recorded, field
        setattr(event, field, original)
    assert chain.event_hash(event) == recorded


def _raw(sql: str, params: list) -> None:
    with connection.cursor() as cursor:
        cursor.execute(sql, params)


def test_verify_events_names_the_document_the_event_and_what_a_raw_update_changed(history):
    document, other = history
    out = io.StringIO()
    call_command("verify_events", stdout=out)
    assert out.getvalue().startswith("OK\t")
    target = AnnotationEvent.objects.filter(document=document, action="reject").get()
    later = AnnotationEvent.objects.filter(document=document, pk__gt=target.pk).count()
    assert later > 0
    table = AnnotationEvent._meta.db_table
    _raw(f"UPDATE {table} SET after = %s WHERE id = %s",
         ['{"start": 7, "end": 9, "label": "LOCAL", "label_id": 3, "status": "accepted", "source": "model", '
          '"text": "x"}', target.pk])
    out = io.StringIO()
    with pytest.raises(CommandError, match=r"1 broken chain\(s\) \(\d+ events in 4 chain\(s\) checked\)"):
        call_command("verify_events", stdout=out)
    lines = out.getvalue().splitlines()
    assert lines == [f"BROKEN\tdocument {document.pk}: annotation event {target.pk}: its content no longer "
                     f"matches its hash (stored {target.hash[:16]}…, computed from its fields "
                     f"{lines[0].split('fields ')[1][:16]}…): it was changed after it was written"]
    # The other document's chains still hold; --document checks only those named.
    call_command("verify_events", "--document", str(other.pk), stdout=io.StringIO())


def test_a_rewritten_hash_breaks_the_next_link_and_a_removed_event_breaks_the_chain_where_it_was(history):
    document, _other = history
    events = list(AnnotationEvent.objects.filter(document=document).order_by("id"))
    tampered, follower = events[3], events[4]
    tampered.after = {**tampered.after, "label": "PESSOA"}
    forged = chain.event_hash(tampered)  # whoever changes the content and recomputes its hash
    table = AnnotationEvent._meta.db_table
    _raw(f"UPDATE {table} SET after = %s, hash = %s WHERE id = %s",
         [json.dumps(tampered.after), forged, tampered.pk])
    (link,) = chain.events_verify().broken
    assert (link.kind, link.document_id, link.event_id) == ("annotation", document.pk, follower.pk)
    assert f"the event before it (#{tampered.pk})" in link.problem

    _raw(f"DELETE FROM {table} WHERE id = %s", [tampered.pk])
    (link,) = chain.events_verify().broken
    assert link.event_id == follower.pk and f"(#{events[2].pk})" in link.problem
    _raw(f"DELETE FROM {table} WHERE id = %s", [events[0].pk])
    assert [b.event_id for b in chain.events_verify().broken] == [events[1].pk]
    assert "first event" in chain.events_verify().broken[0].problem


def test_a_tampered_class_event_is_found_too(history):
    document, _other = history
    event = DocumentClassEvent.objects.filter(document=document, action="accept").get()
    _raw(f"UPDATE {DocumentClassEvent._meta.db_table} SET user_id = NULL WHERE id = %s", [event.pk])
    (link,) = chain.events_verify().broken
    assert (link.kind, link.document_id, link.event_id) == ("class", document.pk, event.pk)
    assert "content no longer matches" in link.problem


def test_events_removed_from_the_end_of_a_history_are_found_by_the_state_they_left(history):
    """A chain that lost its newest events still holds link by link; the entity (or class) is still in the
    state those events produced, so the missing tail shows."""
    document, other = history
    annotation = Annotation.objects.filter(document=other).order_by("id").last()
    newest = AnnotationEvent.objects.filter(annotation=annotation).order_by("id").last()
    assert newest.pk == AnnotationEvent.objects.filter(document=other).order_by("id").last().pk
    _raw(f"DELETE FROM {AnnotationEvent._meta.db_table} WHERE id = %s", [newest.pk])
    _raw(f"DELETE FROM {DocumentClassEvent._meta.db_table} WHERE document_id = %s", [other.pk])
    broken = chain.events_verify().broken
    assert [(b.kind, b.document_id, b.event_id) for b in broken] == [("annotation", other.pk, None),
                                                                      ("class", other.pk, None)]
    assert str(broken[0]) == (f"document {other.pk}: annotation {annotation.pk}: its current revision is "
                              f"{annotation.revision} but its events end at revision {annotation.revision - 1}: "
                              "events at the end of its history were removed")
    assert "the document's class" in str(broken[1])


def test_an_event_without_a_hash_is_reported(history):
    document, _other = history
    event = AnnotationEvent.objects.filter(document=document).order_by("id").first()
    AnnotationEvent.objects.filter(pk=event.pk).update(hash="")
    (link,) = chain.events_verify().broken
    assert link.event_id == event.pk and "no hash" in link.problem


def test_the_data_migration_gives_existing_events_the_same_hashes_and_goes_back(history):
    recorded = {m: dict(m.objects.values_list("id", "hash")) for m in (AnnotationEvent, DocumentClassEvent)}
    migration.unchain_events(apps, None)
    assert set(AnnotationEvent.objects.values_list("hash", flat=True)) == {""}
    assert len(chain.events_verify().broken) == 4
    migration.chain_events(apps, SimpleNamespace(connection=connection))
    assert {m: dict(m.objects.values_list("id", "hash")) for m in recorded} == recorded
    assert chain.events_verify().ok


def test_a_user_or_version_named_by_events_cannot_be_deleted(history, reviewer, version):
    with pytest.raises(ProtectedError):
        reviewer.delete()
    with pytest.raises(ProtectedError):
        version.delete()
    assert chain.events_verify().ok


def test_verify_events_passes_on_real_documents_and_finds_a_tampered_event(lener, db, media_root, reviewer):
    from documents.models import Document

    files = [lener / "dev" / "HC10000170833503000.conll", lener / "dev" / "INSTRUCAOON06043378120186000000.conll"]
    call_command("import_conll", *map(str, files), "--reviewed", stdout=io.StringIO())
    documents = list(Document.objects.order_by("id"))
    annotation = Annotation.objects.filter(document=documents[0]).order_by("start")[3]
    services.annotation_reject(annotation=annotation, user=reviewer)
    services.annotation_accept(annotation=annotation, user=reviewer)
    assert AnnotationEvent.objects.count() > 80
    out = io.StringIO()
    call_command("verify_events", stdout=out)
    assert out.getvalue() == f"OK\t{AnnotationEvent.objects.count()} events in 2 chain(s): every chain holds\n"

    event = AnnotationEvent.objects.filter(annotation=annotation, action="reject").get()
    _raw(f"UPDATE {AnnotationEvent._meta.db_table} SET created_at = created_at - interval '1 day' WHERE id = %s"
         if connection.vendor == "postgresql" else
         f"UPDATE {AnnotationEvent._meta.db_table} SET created_at = '2001-01-01 00:00:00' WHERE id = %s", [event.pk])
    out = io.StringIO()
    with pytest.raises(CommandError):
        call_command("verify_events", stdout=out)
    assert out.getvalue().startswith(f"BROKEN\tdocument {documents[0].pk}: annotation event {event.pk}: its content")


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
@pytest.mark.skipif(connection.vendor != "postgresql", reason="SQLite's shared-cache test database locks tables "
                    "instead of waiting; the PostgreSQL pass runs this")
def test_concurrent_writers_on_one_document_never_fork_its_chains(ready_document, entity_types, reviewer,
                                                                   admin_user):
    predicted = services.annotations_predict(document=ready_document, model_version=None, spans=[
        services.Span(1, 3, "ORGANIZACAO", 0.9), services.Span(7, 9, "LOCAL", 0.4), services.Span(11, 12, "LOCAL", 0.3)])
    label = classes.document_class_get_or_create(name="Acórdão")
    barrier = threading.Barrier(len(predicted) + 1)
    errors = []

    def edit(annotation, user) -> None:
        try:
            barrier.wait(timeout=30)
            for _round in range(15):
                services.annotation_reject(annotation=annotation, user=user)
                services.annotation_accept(annotation=annotation, user=user)
        except BaseException as exc:
            errors.append(exc)
        finally:
            connections.close_all()

    def classify() -> None:
        try:
            barrier.wait(timeout=30)
            for _round in range(15):
                classes.document_class_set(document=ready_document, label=label, user=admin_user)
                classes.document_class_reject(document=ready_document, user=admin_user)
        except BaseException as exc:
            errors.append(exc)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=edit, args=(a, reviewer)) for a in predicted]
    threads.append(threading.Thread(target=classify))
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert errors == []
    assert AnnotationEvent.objects.count() == 3 + 3 * 30 and DocumentClassEvent.objects.count() == 30
    result = chain.events_verify()
    assert result.ok and result.chains == 2, result.broken
