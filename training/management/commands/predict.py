from __future__ import annotations

import json

from django.core.management.base import BaseCommand, CommandError

from documents.models import Document
from documents.selectors import document_words
from training.ingestion import document_predict
from training.models import ModelVersion, Task
from training.registry import TASKS, task_spec
from training.selectors import model_version_active


class Command(BaseCommand):
    help = ("Print a model version's predictions for a document: for entities, one word per line in word "
            "order (conll) or the entities (json); the output is the task's (its ml module's "
            "prediction_output).")

    def add_arguments(self, parser):
        parser.add_argument("document_id", type=int)
        parser.add_argument("--format", choices=["conll", "json"], default="conll")
        parser.add_argument("--model-version", type=int, default=None,
                            help="version number (default: active)")
        parser.add_argument("--task", choices=list(TASKS), default=Task.TOKEN_CLASSIFICATION)

    def handle(self, *args, document_id: int, format: str, model_version: int | None,
               task: str = Task.TOKEN_CLASSIFICATION, **options):
        version = model_version
        document = Document.objects.filter(pk=document_id).first()
        if document is None:
            raise CommandError(f"document {document_id} does not exist")
        if document.status != Document.Status.READY:
            raise CommandError(f"document {document_id} is {document.status}, not ready: {document.error}")
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
        try:
            output = task_spec(task).ml().prediction_output(prediction, words, format=format)
        except ValueError as exc:
            raise CommandError(str(exc)) from None
        if isinstance(output, dict):
            output = json.dumps({"document": document.pk, "version": model_version.number, **output},
                                ensure_ascii=False, indent=2)
        self.stdout.write(output)
