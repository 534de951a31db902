from __future__ import annotations

import json

from django.core.management.base import BaseCommand, CommandError

from documents.models import Document
from documents.selectors import document_words
from training.ingestion import document_predict
from training.models import ModelVersion, Task
from training.selectors import model_version_active


class Command(BaseCommand):
    help = "Print a model version's predictions for a document, one word per line in word order."

    def add_arguments(self, parser):
        parser.add_argument("document_id", type=int)
        parser.add_argument("--format", choices=["conll", "json"], default="conll")
        parser.add_argument("--model-version", type=int, default=None, help="version number (default: active)")

    def handle(self, *args, document_id: int, format: str, model_version: int | None, **options):
        version = model_version
        document = Document.objects.filter(pk=document_id).first()
        if document is None:
            raise CommandError(f"document {document_id} does not exist")
        if document.status != Document.Status.READY:
            raise CommandError(f"document {document_id} is {document.status}, not ready: {document.error}")
        task = Task.TOKEN_CLASSIFICATION
        if version is None:
            model_version = model_version_active(task=task)
            if model_version is None:
                raise CommandError("no active model version: train one first (manage.py train)")
        else:
            model_version = ModelVersion.objects.filter(task=task, number=version).first()
            if model_version is None:
                raise CommandError(f"model version {version} does not exist")
        prediction = document_predict(document=document, version=model_version)
        words = [w.text for w in document_words(document=document)]
        if format == "json":
            self.stdout.write(json.dumps({
                "document": document.pk, "version": model_version.number,
                "entities": [{"start": s, "end": e, "label": label, "score": round(score, 4),
                              "text": " ".join(words[s:e])} for s, e, label, score in prediction.spans],
            }, ensure_ascii=False, indent=2))
            return
        self.stdout.write("\n".join(f"{word} {tag}" for word, tag in zip(words, prediction.tags, strict=True)))
