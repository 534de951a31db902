"""Adapted base models: the base model's masked-language-model pre-training continued on the organisation's
own pages, before (and while) anyone labels them.

Every ingested page, reviewed or not, is in-domain text. An adaptation is a job row (lib.jobs, the
`training` queue, like a full run): it reads the pages of every ready document (fixed by its first attempt,
hashed), continues the base model's MLM training for a budget of steps (training.ml.adapt) with a
checkpoint every few steps, measures the held-out perplexity before and after, and publishes the adapted
encoder as the next numbered adapted base. Full runs start from the newest published one of the configured
base model (training.services.runs); feedback updates start from the active version, which descends from it.
"""

from __future__ import annotations

import hashlib
import logging
import random
import time
from dataclasses import dataclass, field
from pathlib import Path

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from documents.models import Document, Page
from lib import jobs
from lib.tempfiles import job_tempdir
from training.artefacts import artefact_delete, artefact_upload
from training.models import AdaptedBase
from training.selectors import adaptation_corpus_size, adaptation_due
from training.services.checkpoints import checkpoint_delete, checkpoint_download, checkpoint_upload

logger = logging.getLogger(__name__)

ACTIVE = (AdaptedBase.Status.QUEUED, AdaptedBase.Status.RUNNING)


def adaptation_lifecycle() -> jobs.Lifecycle:
    return jobs.Lifecycle(name="base-model adaptation", model=AdaptedBase, queue="training",
                          job=lambda: "training.jobs.adapted_base_execute",
                          queued=AdaptedBase.Status.QUEUED, running=AdaptedBase.Status.RUNNING,
                          failed=AdaptedBase.Status.FAILED, on_fail=lambda now: {"finished_at": now})


def adaptation_checkpoint_location(*, adapted_id: int) -> str:
    return f"checkpoints/adapted{adapted_id}"


# The corpus ----------------------------------------------------------------------------------------------

@dataclass
class Corpus:
    documents: list[int]
    sha256: str
    pages: int = 0
    words: int = 0
    train_texts: list[str] = field(default_factory=list)
    heldout_texts: list[str] = field(default_factory=list)


def _page_text(page: Page) -> str:
    """The page's words, a space between words and a line break at each PDF line's end."""
    parts = []
    for word, end in zip(page.words, page.line_ends, strict=False):
        parts.append(word)
        parts.append("\n" if end else " ")
    return "".join(parts).strip()


def _heldout_key(document_sha256: str, number: int) -> float:
    """A page's place in [0, 1) by hash: the same page is held out in every adaptation that reads it."""
    return int(hashlib.sha256(f"{document_sha256}:{number}".encode()).hexdigest()[:12], 16) / 16**12


def adaptation_corpus(*, heldout_fraction: float, document_ids: list[int] | None = None) -> Corpus:
    """The text of every page of the ready documents (of `document_ids` when given), in document SHA-256 and
    page order; its SHA-256 covers each page's document, number and text. A page is held out for the
    perplexity when its hash falls under `heldout_fraction` (at least one page is, and one is not)."""
    documents = Document.objects.filter(status=Document.Status.READY)
    if document_ids is not None:
        documents = documents.filter(pk__in=document_ids)
    ids = sorted(documents.values_list("pk", flat=True))
    digest = hashlib.sha256()
    corpus = Corpus(documents=ids, sha256="")
    keyed: list[tuple[float, str]] = []
    pages = (Page.objects.filter(document__in=ids).select_related("document")
             .only("number", "words", "lines", "document__sha256").order_by("document__sha256", "number"))
    for page in pages.iterator(chunk_size=200):
        text = _page_text(page)
        if not text:
            continue
        digest.update(f"{page.document.sha256}\t{page.number}\n{text}\n\x1e".encode())
        corpus.pages += 1
        corpus.words += len(page.words)
        keyed.append((_heldout_key(page.document.sha256, page.number), text))
    corpus.sha256 = digest.hexdigest()
    heldout = [key < heldout_fraction for key, _text in keyed]
    if len(keyed) >= 2 and not any(heldout):
        heldout[min(range(len(keyed)), key=lambda i: keyed[i][0])] = True
    if len(keyed) >= 2 and all(heldout):
        heldout[max(range(len(keyed)), key=lambda i: keyed[i][0])] = False
    corpus.train_texts = [text for (_key, text), out in zip(keyed, heldout, strict=True) if not out]
    corpus.heldout_texts = [text for (_key, text), out in zip(keyed, heldout, strict=True) if out]
    return corpus


# Create, queue, cancel -----------------------------------------------------------------------------------

def _hyperparameters(**given) -> dict:
    values = {"steps": settings.DOCLOOP_ADAPT_STEPS, "head_steps": settings.DOCLOOP_ADAPT_HEAD_STEPS,
              "batch_size": settings.DOCLOOP_ADAPT_BATCH_SIZE,
              "max_length": settings.DOCLOOP_ADAPT_MAX_LENGTH,
              "learning_rate": settings.DOCLOOP_ADAPT_LEARNING_RATE, "mlm_probability": 0.15,
              "checkpoint_every": settings.DOCLOOP_ADAPT_CHECKPOINT_STEPS,
              "heldout_fraction": settings.DOCLOOP_ADAPT_HELDOUT, "seed": 42}
    values.update({k: v for k, v in given.items() if v is not None})
    bounds = {"steps": (1, 1_000_000), "head_steps": (0, 100_000), "batch_size": (1, 1024),
              "max_length": (16, 8192), "checkpoint_every": (0, 1_000_000), "seed": (0, 2**31 - 1)}
    errors = {name: _("%(name)s must be between %(low)s and %(high)s.")
              % {"name": name, "low": low, "high": high}
              for name, (low, high) in bounds.items()
              if not isinstance(values[name], int) or isinstance(values[name], bool)
              or not low <= values[name] <= high}
    if not 0 < values["learning_rate"] <= 0.01:
        errors["learning_rate"] = _("%(name)s must be between %(low)s and %(high)s.") % {
            "name": "learning_rate", "low": 0, "high": 0.01}
    if errors:
        raise ValidationError(errors)
    return values


def adapted_base_create(*, user: AbstractBaseUser | None, base_model: str | None = None,
                        trigger: str = AdaptedBase.Trigger.MANUAL, steps: int | None = None,
                        head_steps: int | None = None, batch_size: int | None = None,
                        max_length: int | None = None, learning_rate: float | None = None,
                        checkpoint_every: int | None = None, seed: int | None = None) -> AdaptedBase:
    """A queued adaptation of `base_model` (default: DOCLOOP_BASE_MODEL); what is not given comes from the
    DOCLOOP_ADAPT_* settings and is kept on the row, so a resumed attempt trains as the first one did."""
    base_model = base_model or settings.DOCLOOP_BASE_MODEL
    hyperparameters = _hyperparameters(steps=steps, head_steps=head_steps, batch_size=batch_size,
                                       max_length=max_length, learning_rate=learning_rate,
                                       checkpoint_every=checkpoint_every, seed=seed)
    size = adaptation_corpus_size()
    if size["pages"] < 2 or not size["words"]:
        raise ValidationError(_("Adapting the base model needs at least 2 pages of text in ready documents; "
                                "there are %(count)d.") % {"count": size["pages"]})
    try:
        with transaction.atomic():
            return AdaptedBase.objects.create(base_model=base_model, trigger=trigger, created_by=user,
                                              hyperparameters=hyperparameters, words=size["words"],
                                              pages=size["pages"])
    except IntegrityError:
        active = AdaptedBase.objects.filter(base_model=base_model, status__in=ACTIVE).first()
        raise ValidationError(_("Adaptation #%(id)s of this base model is already queued or running.")
                              % {"id": active.pk if active else "?"}) from None


def adapted_base_enqueue(*, adapted: AdaptedBase) -> None:
    jobs.job_enqueue(adaptation_lifecycle(), adapted.pk)


def adapted_base_cancel(*, adapted: AdaptedBase, user: AbstractBaseUser | None) -> bool:
    """Cancel a queued or running adaptation. A queued one never starts (its checkpoint, if a crash left one,
    is removed); a running one stops at its next step. Returns whether it was cancelled."""
    name = getattr(user, "username", None) or _("the command line")
    fields = {"status": AdaptedBase.Status.CANCELLED, "finished_at": timezone.now(), "cancelled_by": user,
              "error": _("Cancelled by %(user)s.") % {"user": name}}
    queued = AdaptedBase.objects.filter(pk=adapted.pk, status=AdaptedBase.Status.QUEUED).update(**fields)
    if queued:
        checkpoint_delete(location=adaptation_checkpoint_location(adapted_id=adapted.pk))
    changed = queued or (AdaptedBase.objects.filter(pk=adapted.pk, status=AdaptedBase.Status.RUNNING)
                         .update(**fields))
    if changed and adapted.job_id:
        try:  # best effort: a queued job is dropped at once (it would find the row cancelled anyway)
            jobs.rq_job_cancel_queued(adapted.job_id, queue="training")
        except Exception as exc:
            logger.info("adaptation %s: could not cancel RQ job %s: %s", adapted.pk, adapted.job_id, exc)
    adapted.refresh_from_db()
    return bool(changed)


def adaptation_after_ingest() -> AdaptedBase | None:
    """Queue an adaptation when DOCLOOP_ADAPT_AUTO is on and the corpus has grown enough (selectors.
    adaptation_due); ingestion calls it after each batch. Never raises: ingestion must not fail for it."""
    if not settings.DOCLOOP_ADAPT_AUTO:
        return None
    try:
        if not adaptation_due():
            return None
        adapted = adapted_base_create(user=None, trigger=AdaptedBase.Trigger.GROWTH)
        adapted_base_enqueue(adapted=adapted)
        logger.info("the corpus grew to %s words: adaptation %s queued", adapted.words, adapted.pk)
        return adapted
    except ValidationError as exc:  # another process queued one first, or too little text
        logger.info("no adaptation queued: %s", " ".join(exc.messages))
    except Exception:
        logger.exception("could not queue an adaptation of the base model")
    return None


# Execute -------------------------------------------------------------------------------------------------

def adapted_base_execute(*, adapted: AdaptedBase, worker: str | None = None) -> AdaptedBase:
    """Read the corpus, adapt, store the artefact and publish it. Idempotent: a row that is not queued (or
    abandoned by a dead worker) is returned as it is; one requeued after its worker died resumes from its
    last checkpoint."""
    from training.ml.device import describe_device, pick_device

    lifecycle = adaptation_lifecycle()
    worker = worker or jobs.worker_name()
    device = describe_device(pick_device())
    if not jobs.job_claim(lifecycle, adapted.pk, worker=worker, started_at=timezone.now(), finished_at=None,
                          device=device, progress={}):
        adapted.refresh_from_db()
        return adapted
    adapted.refresh_from_db()
    logger.info("attempt %d of adaptation %s on worker %s (%s)", adapted.attempts, adapted.pk, worker, device)
    try:
        with jobs.BackgroundHeartbeat(lifecycle, adapted.pk, worker=worker):
            _adapt(adapted, worker=worker, lifecycle=lifecycle)
    except jobs.JobLost as exc:
        status = AdaptedBase.objects.filter(pk=adapted.pk).values_list("status", flat=True).first()
        if status == AdaptedBase.Status.CANCELLED:
            logger.info("adaptation %s cancelled; stopped", adapted.pk)
            checkpoint_delete(location=adaptation_checkpoint_location(adapted_id=adapted.pk))
        else:
            logger.warning("adaptation %s stopped: %s", adapted.pk, exc)
    except Exception as exc:
        logger.exception("adaptation %s failed", adapted.pk)
        error = str(exc) if type(exc) is ValueError else f"{type(exc).__name__}: {exc}"
        jobs.job_owned(lifecycle, adapted.pk, worker=worker).update(
            status=AdaptedBase.Status.FAILED, error=error[:4000], finished_at=timezone.now())
    adapted.refresh_from_db()
    return adapted


def _adapt(adapted: AdaptedBase, *, worker: str, lifecycle: jobs.Lifecycle) -> None:
    from training.ml.adapt import AdaptConfig, adapt

    heartbeat = jobs.Heartbeat(lifecycle, adapted.pk, worker=worker)
    owned = jobs.job_owned(lifecycle, adapted.pk, worker=worker)
    hp = adapted.hyperparameters
    location = adaptation_checkpoint_location(adapted_id=adapted.pk)
    corpus = adaptation_corpus(heldout_fraction=hp["heldout_fraction"],
                               document_ids=adapted.corpus_documents or None)
    if adapted.corpus_sha256 and corpus.sha256 != adapted.corpus_sha256:
        # A document of the first attempt's corpus is gone: its checkpoint learnt from other text.
        logger.warning("adaptation %s: the corpus changed since its first attempt; starting over", adapted.pk)
        checkpoint_delete(location=location)
        owned.update(checkpoint="", checkpoint_step=None)
        adapted.checkpoint = ""
    if corpus.pages < 2:
        raise ValueError(_("Adapting the base model needs at least 2 pages of text; the corpus has "
                           "%(count)d.")
                         % {"count": corpus.pages})
    owned.update(corpus_documents=corpus.documents, corpus_sha256=corpus.sha256, pages=corpus.pages,
                 words=corpus.words, heldout_pages=len(corpus.heldout_texts))
    heartbeat(force=True)
    progress: dict = {}

    def on_step(info: dict) -> None:
        # One UPDATE per step: heartbeat, live progress, and the moment a cancel is noticed.
        now = time.time()
        if not progress.get("started"):
            progress.update(started=now, first_step=info["step"] - 1)
        progress.update(step=info["step"], total_steps=info["total_steps"], phase=info["phase"], at=now,
                        loss=round(info["loss"], 5))
        heartbeat(force=True, progress=progress)

    def on_checkpoint(info: dict) -> None:
        heartbeat(force=True)  # a worker that lost the row writes no checkpoint over the new owner's
        checkpoint_upload(local_dir=Path(info["directory"]), files=info["files"], location=location)
        owned.update(checkpoint=location, checkpoint_step=info["step"])
        logger.info("adaptation %s: checkpoint of step %d stored", adapted.pk, info["step"])

    with job_tempdir(f"adapt{adapted.pk}-") as tmp:
        output, local_checkpoint = Path(tmp) / "model", Path(tmp) / "checkpoint"
        resumed = (checkpoint_download(location=location, local_dir=local_checkpoint) if adapted.checkpoint
                   else None)
        if resumed:
            progress["resumed_from"] = resumed["step"]
            logger.info("resuming adaptation %s from the checkpoint of step %d", adapted.pk, resumed["step"])
        config = AdaptConfig(base_model=adapted.base_model, output_dir=str(output), steps=hp["steps"],
                             head_steps=hp["head_steps"], batch_size=hp["batch_size"],
                             max_length=hp["max_length"], learning_rate=hp["learning_rate"],
                             mlm_probability=hp["mlm_probability"], checkpoint_every=hp["checkpoint_every"],
                             seed=hp["seed"])
        result = adapt(config, corpus.train_texts, corpus.heldout_texts, on_step=on_step,
                       checkpoint_dir=local_checkpoint, on_checkpoint=on_checkpoint)
        del corpus
        _adapted_base_publish(adapted, worker=worker, lifecycle=lifecycle, local_dir=output, result=result,
                              progress=progress)
    checkpoint_delete(location=location)


PUBLISH_ATTEMPTS = 5


def _adapted_base_publish(adapted: AdaptedBase, *, worker: str, lifecycle: jobs.Lifecycle, local_dir: Path,
                          result: dict, progress: dict) -> None:
    """Upload the artefact (outside any transaction), then number and publish the row while this worker
    still holds it; a lost claim removes the upload and raises JobLost, so one artefact comes out. An adapted
    base is not a model version (no gate, no activation: the row is its own job row), so it does not go
    through training.services.versions.version_publish, whose upload-then-claim-checked-transaction order it
    follows."""
    adapted.refresh_from_db(fields=["attempts"])
    location = artefact_upload(local_dir=local_dir, location=f"adapted/{adapted.pk}-a{adapted.attempts}")
    metrics = {k: result[k] for k in ("head_steps", "head_initialised", "train_blocks", "train_tokens",
                                      "heldout_blocks", "loss", "device", "seconds", "resumed_from")}
    try:
        for attempt in range(1, PUBLISH_ATTEMPTS + 1):
            try:
                with transaction.atomic():
                    owned = jobs.job_owned(lifecycle, adapted.pk, worker=worker)
                    if not owned.select_for_update().exists():
                        raise jobs.JobLost(f"adaptation {adapted.pk} is no longer claimed by {worker}")
                    taken = (AdaptedBase.objects.select_for_update().filter(number__isnull=False)
                             .values_list("number", flat=True))
                    owned.update(status=AdaptedBase.Status.PUBLISHED, number=max(list(taken), default=0) + 1,
                                 artefact=location, steps=result["steps"], metrics=metrics,
                                 perplexity_before=result["perplexity_before"],
                                 perplexity_after=result["perplexity_after"], finished_at=timezone.now(),
                                 error="", checkpoint="", progress=progress)
                break
            except IntegrityError:  # another adaptation took the number: number again
                if attempt == PUBLISH_ATTEMPTS:
                    raise
                time.sleep(random.uniform(0.05, 0.3) * attempt)
    except BaseException:
        artefact_delete(location=location)
        raise
    adapted.refresh_from_db()
    logger.info("adapted base A%s published: perplexity %s -> %s", adapted.number,
                result["perplexity_before"], result["perplexity_after"])
