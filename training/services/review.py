"""What training does once a reviewer has marked a document reviewed (DOCLOOP_REVIEW_FINISHED_HOOK)."""

from __future__ import annotations

from django.contrib.auth.models import AbstractBaseUser
from django.utils.translation import ngettext

from documents.models import Document
from training.services.feedback import feedback_on_review
from training.services.runs import retraining_after_review


def review_finished(*, document: Document, user: AbstractBaseUser) -> str:
    """Send the document to the model (DOCLOOP_FEEDBACK_ON_REVIEW) and queue the full runs that the reviewed
    documents' growth makes due (DOCLOOP_RETRAIN_AUTO); what the reviewer is told ("" when nothing was
    done)."""
    notes = [feedback_on_review(document=document, user=user)]
    runs = retraining_after_review()
    if runs:
        notes.append(ngettext(
            "%(count)d documents are reviewed now: %(runs)d full training run is queued.",
            "%(count)d documents are reviewed now: %(runs)d full training runs are queued.",
            len(runs)) % {"count": runs[0].reviewed_documents, "runs": len(runs)})
    return " ".join(note for note in notes if note)
