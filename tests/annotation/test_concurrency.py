"""Two reviewers editing the same entity at once, through a live server: real HTTP clients in two threads.

Each client keeps the revision it last saw and sends it with every change; both send a change at the same
moment, round after round, so most rounds have one change based on a revision the other just replaced.
On PostgreSQL the two requests run in parallel in the server; Django's live server shares one connection
between its threads on SQLite (an in-memory test database), so there the clients take turns per request,
which still interleaves the stale changes but not the locks.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import random
import threading
from urllib.parse import urlencode, urlsplit

import pytest
from django.contrib.sessions.backends.db import SessionStore
from django.db import connection

from annotation import services
from annotation.chain import events_verify
from annotation.models import AnnotationEvent

pytestmark = pytest.mark.django_db(transaction=True, serialized_rollback=True)

ROUNDS = 60
CSRF = "c" * 32


def _session_for(user) -> str:
    from django.contrib.auth import BACKEND_SESSION_KEY, HASH_SESSION_KEY, SESSION_KEY

    session = SessionStore()
    session[SESSION_KEY] = str(user.pk)
    session[BACKEND_SESSION_KEY] = "django.contrib.auth.backends.ModelBackend"
    session[HASH_SESSION_KEY] = user.get_session_auth_hash()
    session.save()
    return session.session_key


class Reviewer(threading.Thread):
    def __init__(self, name, user, url, annotation, labels, barrier, turn_lock, seed):
        super().__init__(name=name)
        self.cookie = f"sessionid={_session_for(user)}; csrftoken={CSRF}"
        self.host = urlsplit(url)
        self.annotation, self.labels, self.barrier, self.turn_lock = annotation, labels, barrier, turn_lock
        self.random = random.Random(seed)
        self.seen_revision = 1
        self.results: list[dict] = []
        self.error: BaseException | None = None

    def post(self, action: str, data: dict) -> tuple[int, dict]:
        client = http.client.HTTPConnection(self.host.hostname, self.host.port, timeout=30)
        path = f"/review/{self.annotation.document_id}/annotations/{self.annotation.pk}/{action}/"
        headers = {"Cookie": self.cookie, "X-CSRFToken": CSRF, "Accept": "application/json",
                   "Content-Type": "application/x-www-form-urlencoded", "Referer": f"http://{self.host.netloc}/"}
        with self.turn_lock:
            client.request("POST", path, body=urlencode(data), headers=headers)
            response = client.getresponse()
            body = response.read()
        client.close()
        try:
            return response.status, json.loads(body)
        except ValueError:
            return response.status, {"raw": body[:500].decode(errors="replace")}

    def run(self) -> None:
        try:
            for _round in range(ROUNDS):
                action = self.random.choice(["accept", "reject", "relabel"])
                data = {"revision": self.seen_revision}
                if action == "relabel":
                    data["label"] = self.random.choice(self.labels)
                self.barrier.wait(timeout=30)
                status, body = self.post(action, data)
                self.results.append({"action": action, "sent": data, "status": status, "body": body})
                if "annotation" in body:
                    self.seen_revision = body["annotation"]["revision"]
        except BaseException as exc:  # reported by the test
            self.error = exc
            self.barrier.abort()


def test_interleaved_edits_from_two_reviewers_never_lose_an_update(live_server, reviewer, admin_user,
                                                                   ready_document, entity_types):
    (annotation,) = services.annotations_predict(document=ready_document, model_version=None,
                                                 spans=[services.Span(1, 3, "ORGANIZACAO", 0.9)])
    labels = [entity_types[n].pk for n in ("ORGANIZACAO", "PESSOA", "LOCAL")]
    barrier = threading.Barrier(2)
    turn_lock = threading.Lock() if connection.vendor == "sqlite" else contextlib.nullcontext()
    clients = [Reviewer("rita", reviewer, live_server.url, annotation, labels, barrier, turn_lock, seed=1),
               Reviewer("ana", admin_user, live_server.url, annotation, labels, barrier, turn_lock, seed=2)]
    for client in clients:
        client.start()
    for client in clients:
        client.join(timeout=300)
    assert [c.error for c in clients] == [None, None]

    results = [r for c in clients for r in c.results]
    statuses = [r["status"] for r in results]
    assert len(results) == 2 * ROUNDS
    assert statuses.count(500) == 0 and set(statuses) <= {200, 409}, statuses
    accepted = [r for r in results if r["status"] == 200]
    conflicts = [r for r in results if r["status"] == 409]
    assert conflicts, "the clients never collided: the test did not test anything"

    events = list(AnnotationEvent.objects.filter(annotation=annotation).exclude(action="predict").order_by("id"))
    # Every 2xx has its event, based on the revision the client sent, and nothing else was written.
    assert len(events) == len(accepted)
    by_base = {e.base_revision: e for e in events}
    assert sorted(by_base) == list(range(1, len(events) + 1))  # one unbroken chain, no revision used twice
    for result in accepted:
        event = by_base[result["sent"]["revision"]]
        assert event.action == result["action"]
        assert result["body"]["annotation"]["revision"] == event.base_revision + 1
        assert event.after["label_id"] == result["body"]["annotation"]["label_id"]
    # Every refused change was based on a revision that was no longer the current one.
    for result in conflicts:
        assert result["body"]["conflict"] is True
        assert result["body"]["annotation"]["revision"] > result["sent"]["revision"]
    # Each event starts from the state the previous one left, and the row is the last accepted change.
    chain = AnnotationEvent.objects.filter(annotation=annotation).order_by("base_revision")
    for previous, current in zip(chain, chain[1:], strict=False):
        assert current.before == previous.after
    annotation.refresh_from_db()
    last = events[-1].after
    assert (annotation.status, annotation.label_id, annotation.revision) == (
        last["status"], last["label_id"], len(events) + 1)
    # The document's hash chain never forked: each event names the hash of the one written before it.
    assert events_verify(document_ids=[annotation.document_id]).ok


@pytest.mark.skipif(connection.vendor != "postgresql", reason="SQLite's shared-cache test database locks tables "
                    "instead of waiting; the PostgreSQL pass runs this")
def test_concurrent_uploads_of_the_same_bytes_queue_one_job(pdf_bytes, queues):
    from django.db import connections

    from documents.models import Document
    from documents.services import document_upload

    barrier = threading.Barrier(4)
    uploads, errors = [], []

    def upload(i: int) -> None:
        try:
            barrier.wait(timeout=30)
            uploads.append(document_upload(data=pdf_bytes, name=f"copy-{i}.pdf"))
        except BaseException as exc:
            errors.append(exc)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=upload, args=(i,)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert errors == []
    assert Document.objects.count() == 1
    assert sum(u.created for u in uploads) == 1 and len(uploads) == 4
    assert queues["default"].count == 1
