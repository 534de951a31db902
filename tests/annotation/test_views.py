from django.urls import reverse

from annotation import services
from annotation.models import Annotation, AnnotationEvent


def _predicted(document):
    services.annotations_predict(document=document, model_version=None,
                                 spans=[services.Span(1, 3, "ORGANIZACAO", 0.91)])
    return Annotation.objects.get(document=document)


def test_the_review_page_highlights_entities_in_the_text(client, reviewer, ready_document, entity_types):
    annotation = _predicted(ready_document)
    client.force_login(reviewer)
    body = client.get(reverse("annotation:review", args=[ready_document.pk])).content.decode()
    assert f'id="entity-{annotation.pk}"' in body and "Ministério" in body and "0.91" in body


def test_a_user_without_a_role_cannot_open_the_review_page(client, stranger, ready_document):
    client.force_login(stranger)
    assert client.get(reverse("annotation:review", args=[ready_document.pk])).status_code == 403


def test_accepting_with_htmx_returns_the_panel_and_writes_an_event(client, reviewer, ready_document,
                                                                   entity_types):
    annotation = _predicted(ready_document)
    client.force_login(reviewer)
    url = reverse("annotation:action", args=[ready_document.pk, annotation.pk, "accept"])
    response = client.post(url, {"page": 1, "revision": annotation.revision}, HTTP_HX_REQUEST="true")
    assert response.status_code == 200
    body = response.content.decode()
    assert 'id="review-panel"' in body and "<html" not in body
    annotation.refresh_from_db()
    assert annotation.status == "accepted" and annotation.reviewer == reviewer
    assert AnnotationEvent.objects.filter(annotation=annotation, action="accept", user=reviewer).exists()


def test_without_javascript_an_action_redirects_back_to_the_page(client, reviewer, ready_document,
                                                                 entity_types):
    annotation = _predicted(ready_document)
    client.force_login(reviewer)
    response = client.post(reverse("annotation:action", args=[ready_document.pk, annotation.pk, "reject"]),
                           {"page": 1, "revision": annotation.revision})
    assert response.status_code == 302 and "?page=1" in response.url
    annotation.refresh_from_db()
    assert annotation.status == "rejected"


def test_relabelling_changes_the_type_and_accepts(client, reviewer, ready_document, entity_types):
    annotation = _predicted(ready_document)
    client.force_login(reviewer)
    client.post(reverse("annotation:action", args=[ready_document.pk, annotation.pk, "relabel"]),
                {"label": entity_types["PESSOA"].pk, "revision": 1}, HTTP_HX_REQUEST="true")
    annotation.refresh_from_db()
    assert (annotation.label.name, annotation.status) == ("PESSOA", "accepted")
    assert AnnotationEvent.objects.get(annotation=annotation, action="relabel").before["label"] == "ORGANIZACAO"


def test_adding_an_entity_by_choosing_words(client, reviewer, ready_document, entity_types):
    client.force_login(reviewer)
    response = client.post(reverse("annotation:add", args=[ready_document.pk]),
                           {"start": 18, "end": 21, "label": entity_types["PESSOA"].pk, "page": 1},
                           HTTP_HX_REQUEST="true")
    assert response.status_code == 200
    annotation = Annotation.objects.get(document=ready_document)
    assert (annotation.text, annotation.source, annotation.status) == ("João da Silva", "human", "accepted")


def test_adding_an_overlapping_entity_shows_the_reason_in_place(client, reviewer, ready_document,
                                                                entity_types):
    _predicted(ready_document)
    client.force_login(reviewer)
    response = client.post(reverse("annotation:add", args=[ready_document.pk]),
                           {"start": 2, "end": 4, "label": entity_types["LOCAL"].pk, "page": 1},
                           HTTP_HX_REQUEST="true")
    assert response.status_code == 422 and "overlap" in response.content.decode()
    assert Annotation.objects.count() == 1


def test_adding_without_choosing_words_is_a_clear_error(client, reviewer, ready_document, entity_types):
    client.force_login(reviewer)
    response = client.post(reverse("annotation:add", args=[ready_document.pk]),
                           {"start": "", "end": "", "label": entity_types["PESSOA"].pk}, HTTP_HX_REQUEST="true")
    assert response.status_code == 422 and 'role="alert"' in response.content.decode()
    assert not Annotation.objects.exists()


def test_marking_as_reviewed_finishes_the_document(client, reviewer, ready_document, entity_types):
    _predicted(ready_document)
    client.force_login(reviewer)
    asked = client.post(reverse("annotation:finish", args=[ready_document.pk]))  # first: what it accepts
    assert asked.status_code == 200 and asked.context["summary"].standing == 1
    response = client.post(reverse("annotation:finish", args=[ready_document.pk]),
                           {"accept_standing": "on", "based_on": asked.context["summary"].token})
    assert response.status_code == 302 and response.url == reverse("queue")  # nothing else to review
    ready_document.refresh_from_db()
    assert ready_document.reviewed_by == reviewer
    assert Annotation.objects.get(document=ready_document).status == "accepted"


def test_the_review_page_varies_on_the_hx_request_header(client, reviewer, ready_document):
    client.force_login(reviewer)
    for headers in ({}, {"HTTP_HX_REQUEST": "true"}):
        response = client.get(reverse("annotation:review", args=[ready_document.pk]), **headers)
        assert response.status_code == 200 and "HX-Request" in response["Vary"]


def _json_post(client, url, data):
    return client.post(url, data, HTTP_ACCEPT="application/json")


def test_a_change_based_on_a_stale_revision_is_a_409_with_the_fresh_state(client, reviewer, ready_document,
                                                                          entity_types):
    annotation = _predicted(ready_document)
    services.annotation_reject(annotation=annotation, user=reviewer, revision=1)  # someone else, first
    client.force_login(reviewer)
    url = reverse("annotation:action", args=[ready_document.pk, annotation.pk, "accept"])
    response = client.post(url, {"page": 1, "revision": 1}, HTTP_HX_REQUEST="true")
    body = response.content.decode()
    assert response.status_code == 409
    assert 'id="review-conflict"' in body and "Someone else changed this entity" in body
    assert 'data-rev="2"' in body and "status-rejected" in body  # the fresh state
    annotation.refresh_from_db()
    assert (annotation.status, annotation.revision) == ("rejected", 2)
    assert not AnnotationEvent.objects.filter(annotation=annotation, action="accept").exists()


def test_a_stale_json_change_answers_409_with_the_current_entity(client, reviewer, ready_document, entity_types):
    annotation = _predicted(ready_document)
    client.force_login(reviewer)
    url = reverse("annotation:action", args=[ready_document.pk, annotation.pk, "relabel"])
    first = _json_post(client, url, {"revision": 1, "label": entity_types["PESSOA"].pk})
    second = _json_post(client, url, {"revision": 1, "label": entity_types["LOCAL"].pk})
    assert first.status_code == 200 and first.json()["annotation"]["revision"] == 2
    assert second.status_code == 409 and second.json()["conflict"] is True
    assert second.json()["annotation"] == first.json()["annotation"]
    annotation.refresh_from_db()
    assert annotation.label.name == "PESSOA"


def test_a_stale_change_without_javascript_redirects_with_the_conflict_message(client, reviewer, ready_document,
                                                                                entity_types):
    annotation = _predicted(ready_document)
    services.annotation_accept(annotation=annotation, user=reviewer, revision=1)
    client.force_login(reviewer)
    response = client.post(reverse("annotation:action", args=[ready_document.pk, annotation.pk, "reject"]),
                           {"revision": 1}, follow=True)
    assert "Someone else changed this entity" in response.content.decode()
    annotation.refresh_from_db()
    assert annotation.status == "accepted"


def test_a_change_without_its_revision_is_refused(client, reviewer, ready_document, entity_types):
    annotation = _predicted(ready_document)
    client.force_login(reviewer)
    response = _json_post(client, reverse("annotation:action", args=[ready_document.pk, annotation.pk, "accept"]),
                          {})
    assert response.status_code == 422 and "version" in response.json()["error"]
    annotation.refresh_from_db()
    assert annotation.status == "predicted"


def test_resizing_and_deleting_an_entity(client, reviewer, ready_document, entity_types):
    annotation = _predicted(ready_document)
    client.force_login(reviewer)
    base = [ready_document.pk, annotation.pk]
    response = _json_post(client, reverse("annotation:action", args=[*base, "resize"]),
                          {"revision": 1, "start": 1, "end": 4})
    assert response.status_code == 200
    assert response.json()["annotation"]["text"] == "Ministério Público do"
    response = _json_post(client, reverse("annotation:action", args=[*base, "delete"]), {"revision": 2})
    assert response.json()["annotation"]["status"] == "deleted"
    assert list(AnnotationEvent.objects.filter(annotation=annotation).values_list("action", "base_revision")) == [
        ("predict", 0), ("resize", 1), ("delete", 2)]
    body = client.get(reverse("annotation:review", args=[ready_document.pk])).content.decode()
    assert f'data-annotation="{annotation.pk}"' not in body


def test_accept_all_above_a_confidence(client, reviewer, ready_document, entity_types):
    services.annotations_predict(document=ready_document, model_version=None, spans=[
        services.Span(1, 3, "ORGANIZACAO", 0.95), services.Span(7, 9, "LOCAL", 0.5)])
    client.force_login(reviewer)
    response = client.post(reverse("annotation:accept-above", args=[ready_document.pk]), {"threshold": "0.9"},
                           HTTP_HX_REQUEST="true")
    assert response.status_code == 200
    assert dict(Annotation.objects.values_list("start", "status")) == {1: "accepted", 7: "predicted"}


def test_marking_reviewed_moves_to_the_least_confident_document_left(client, reviewer, ready_document, make_pdf,
                                                                     entity_types):
    from documents.services import document_create, document_extract

    others = []
    for sentences, score in (([["Outro", "texto", "aqui", "."]], 0.8), ([["Mais", "um", "texto", "."]], 0.3)):
        doc = document_extract(document=document_create(data=make_pdf(sentences), name="x.pdf")[0])
        services.annotations_predict(document=doc, model_version=None, spans=[services.Span(0, 1, "LOCAL", score)])
        others.append(doc)
    client.force_login(reviewer)
    response = client.post(reverse("annotation:finish", args=[ready_document.pk]))
    assert response.status_code == 302
    assert response.url == reverse("annotation:review", args=[others[1].pk])


def test_the_next_document_skips_one_someone_else_has_open(client, reviewer, admin_user, ready_document, make_pdf):
    from documents.services import document_create, document_extract

    busy = document_extract(document=document_create(data=make_pdf([["Outro", "texto", "."]]), name="b.pdf")[0])
    free = document_extract(document=document_create(data=make_pdf([["Mais", "um", "."]]), name="c.pdf")[0])
    services.document_review_seen(document=busy, user=admin_user)
    client.force_login(reviewer)
    response = client.get(reverse("annotation:next", args=[ready_document.pk]))
    assert response.url == reverse("annotation:review", args=[free.pk])


def test_a_reviewer_sees_who_else_has_the_document_open_and_a_reload_writes_nothing(client, reviewer, admin_user,
                                                                                     ready_document):
    from annotation.models import DocumentReview

    url = reverse("annotation:review", args=[ready_document.pk])
    client.force_login(admin_user)
    assert "also has this document open" not in client.get(url).content.decode()
    client.force_login(reviewer)
    assert "ana also has this document open" in client.get(url).content.decode()
    seen = DocumentReview.objects.get(pk=ready_document.pk)
    assert seen.seen_by == reviewer
    client.get(url)  # a reload moments later: still fresh, nothing written
    assert DocumentReview.objects.get(pk=ready_document.pk).seen_at == seen.seen_at
    client.force_login(admin_user)
    body = client.post(reverse("annotation:presence", args=[ready_document.pk])).content.decode()
    assert "rita also has this document open" in body
    assert DocumentReview.objects.get(pk=ready_document.pk).seen_by == admin_user


def test_words_under_a_rectangle_on_the_page_image(client, reviewer, ready_document):
    from annotation.selectors import page_word_boxes

    page = ready_document.pages.get()
    (x0, y0, x1, y1), = page_word_boxes(page=page, first=1, count=1)
    (_a, _b, x3, y3), = page_word_boxes(page=page, first=2, count=1)
    client.force_login(reviewer)
    url = reverse("annotation:page-words", args=[ready_document.pk, 1])
    found = client.get(url, {"x0": x0 + 1, "y0": y0 + 1, "x1": x3 - 1, "y1": y3 - 1}).json()
    assert (found["start"], found["end"], found["text"]) == (1, 3, "Ministério Público")
    assert client.get(url, {"x0": "a"}).status_code == 400


def test_the_page_image_is_rendered_once_and_cached_in_storage(client, reviewer, ready_document, media_root):
    client.force_login(reviewer)
    url = reverse("documents:page-image", args=[ready_document.pk, 1])
    first = client.get(url, {"w": 900})
    data = b"".join(first.streaming_content)
    assert first.status_code == 200 and first["Content-Type"] == "image/jpeg" and data[:2] == b"\xff\xd8"
    cached = list(media_root.rglob("renders/**/*.jpg"))
    assert [p.name for p in cached] == ["1-1200.jpg"]
    assert b"".join(client.get(url, {"w": 900}).streaming_content) == data
    assert client.get(reverse("documents:page-image", args=[ready_document.pk, 2])).status_code == 404


def test_the_review_page_draws_each_entity_over_the_page_image(client, reviewer, ready_document, entity_types):
    annotation = _predicted(ready_document)
    client.force_login(reviewer)
    body = client.get(reverse("annotation:review", args=[ready_document.pk])).content.decode()
    assert 'id="page-image"' in body
    assert f'<g class="box status-predicted" data-annotation="{annotation.pk}"' in body
    assert "Keyboard shortcuts" in body


def test_a_huge_page_is_shown_in_bounded_pieces(client, reviewer, make_pdf, settings):
    from documents.services import document_create, document_extract

    settings.DOCLOOP_REVIEW_PIECE_WORDS = 50
    document = document_extract(document=document_create(data=make_pdf([[f"w{i}" for i in range(180)]]),
                                                         name="big.pdf")[0])
    services.annotations_predict(document=document, model_version=None,
                                 spans=[services.Span(i, i + 1, "LOCAL", 0.5) for i in range(0, 180, 3)])
    client.force_login(reviewer)
    url = reverse("annotation:review", args=[document.pk])
    first = client.get(url).content.decode()
    third = client.get(url, {"piece": 3}).content.decode()
    assert first.count('class="w"') == 50 and 'data-i="49"' in first and 'data-i="50"' not in first
    assert 'data-i="100"' in third and "words part 3 of 4" in third
    assert first.count('<li class="e ') == 17


def test_history_lists_events_and_reverting_an_entity_is_a_new_event(client, reviewer, ready_document,
                                                                     entity_types):
    annotation = _predicted(ready_document)
    services.annotation_relabel(annotation=annotation, label=entity_types["PESSOA"], user=reviewer, revision=1)
    predict_event = AnnotationEvent.objects.get(annotation=annotation, action="predict")
    client.force_login(reviewer)
    body = client.get(reverse("annotation:history", args=[ready_document.pk])).content.decode()
    assert "relabelled" in body and "predicted by model" in body
    response = client.post(reverse("annotation:action", args=[ready_document.pk, annotation.pk, "revert"]),
                           {"event": predict_event.pk, "revision": 2})
    assert response.status_code == 302
    annotation.refresh_from_db()
    assert (annotation.label.name, annotation.status, annotation.revision) == ("ORGANIZACAO", "predicted", 3)
    assert AnnotationEvent.objects.filter(annotation=annotation).latest("id").action == "revert"


def test_reverting_the_document_with_a_stale_history_is_refused(client, reviewer, ready_document, entity_types):
    annotation = _predicted(ready_document)
    head = AnnotationEvent.objects.latest("id").pk
    services.annotation_accept(annotation=annotation, user=reviewer, revision=1)
    client.force_login(reviewer)
    response = client.post(reverse("annotation:revert", args=[ready_document.pk]), {"event": head, "head": head},
                           follow=True)
    assert "Someone changed this document" in response.content.decode()
    annotation.refresh_from_db()
    assert annotation.status == "accepted"


def test_the_queue_shows_status_progress_and_the_least_confident_first(client, reviewer, ready_document, make_pdf,
                                                                       entity_types):
    from documents.services import document_create, document_extract

    other = document_extract(document=document_create(data=make_pdf([["Outro", "texto", "."]]), name="b.pdf")[0])
    services.annotations_predict(document=ready_document, model_version=None,
                                 spans=[services.Span(1, 3, "ORGANIZACAO", 0.9), services.Span(7, 9, "LOCAL", 0.6)])
    services.annotations_predict(document=other, model_version=None, spans=[services.Span(0, 1, "LOCAL", 0.2)])
    services.annotation_accept(annotation=Annotation.objects.get(document=ready_document, start=1), user=reviewer,
                               revision=1)
    client.force_login(reviewer)
    body = client.get(reverse("queue")).content.decode()
    assert body.index("b.pdf") < body.index("acordao.pdf")
    assert "1/2" in body and "to review" in body and "0.20" in body
    body = client.get(reverse("queue"), {"q": "Ministério"}).content.decode()
    assert "acordao.pdf" in body and "b.pdf" not in body
    services.document_review_seen(document=other, user=reviewer)
    body = client.get(reverse("queue"), {"status": "in_review"}).content.decode()
    assert "b.pdf" in body and "acordao.pdf" not in body


def test_the_queue_and_review_pages_run_a_constant_number_of_queries(client, reviewer, make_pdf, entity_types,
                                                                     django_assert_max_num_queries):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from documents.services import document_create, document_extract

    def grow(n: int) -> None:
        for i in range(n):
            doc = document_extract(document=document_create(data=make_pdf([[f"d{n}x{i}", "texto", "aqui", "."]] * 3),
                                                            name=f"{n}-{i}.pdf")[0])
            services.annotations_predict(document=doc, model_version=None, spans=[
                services.Span(j, j + 1, "LOCAL", 0.5) for j in range(0, 12, 2)])
            for a in Annotation.objects.filter(document=doc)[:3]:
                services.annotation_accept(annotation=a, user=reviewer, revision=1)

    client.force_login(reviewer)

    def count(url) -> int:
        with CaptureQueriesContext(connection) as queries:
            assert client.get(url).status_code == 200
        return len(queries)

    grow(2)
    first = Annotation.objects.order_by("id").first().document_id
    client.get(reverse("annotation:review", args=[first]))  # the first visit notes presence; compare reloads
    small = (count(reverse("queue")), count(reverse("annotation:review", args=[first])),
             count(reverse("annotation:history", args=[first])))
    grow(6)
    for a in Annotation.objects.filter(document_id=first):
        services.annotation_reject(annotation=a, user=reviewer)
    large = (count(reverse("queue")), count(reverse("annotation:review", args=[first])),
             count(reverse("annotation:history", args=[first])))
    assert small == large, (small, large)


def test_the_workspace_pages_render_in_portuguese_with_numbers_that_scripts_can_read(client, reviewer,
                                                                                      ready_document, entity_types):
    from django.utils import translation

    annotation = _predicted(ready_document)
    client.force_login(reviewer)
    with translation.override("pt-br"):
        for url in (reverse("queue"), reverse("annotation:review", args=[ready_document.pk]),
                    reverse("annotation:history", args=[ready_document.pk])):
            response = client.get(url, HTTP_ACCEPT_LANGUAGE="pt-br")
            assert response.status_code == 200, url
        body = client.get(reverse("annotation:review", args=[ready_document.pk]),
                          HTTP_ACCEPT_LANGUAGE="pt-br").content.decode()
    # Coordinates and ids stay machine-readable (no decimal commas or thousand separators) in any language.
    assert f'data-annotation="{annotation.pk}"' in body
    assert "viewBox=\"0 0 595" in body and "," not in body.split('viewBox="')[1].split('"')[0]


def test_no_review_response_exceeds_600_kb_even_when_every_word_is_an_entity(client, reviewer, make_pdf,
                                                                             entity_types, settings):
    from documents.pdf import pdf_render_lines
    from documents.services import document_create, document_extract

    words = [f"palavra{i}" for i in range(1300)]
    pdf = pdf_render_lines([words], font_size=4)  # small print: more than a piece's words on page 1
    document = document_extract(document=document_create(data=pdf, name="cheio.pdf")[0])
    first_page = document.pages.get(number=1)
    count = min(len(first_page.words), 2 * settings.DOCLOOP_REVIEW_PIECE_WORDS)
    services.annotations_predict(document=document, model_version=None, spans=[
        services.Span(i, i + 1, ["PESSOA", "LOCAL", "TEMPO"][i % 3], 0.123456) for i in range(count)])
    client.force_login(reviewer)
    response = client.get(reverse("annotation:review", args=[document.pk]))
    body = response.content.decode()
    assert response.status_code == 200
    assert body.count('<li class="e ') == min(count, settings.DOCLOOP_REVIEW_PIECE_WORDS)
    assert len(response.content) < 600 * 1024, len(response.content)
    assert count == 2 * settings.DOCLOOP_REVIEW_PIECE_WORDS
