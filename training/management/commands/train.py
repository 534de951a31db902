from __future__ import annotations

import argparse

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from training.ml.hyperparameters import HYPERPARAMETERS, TASK_DEFAULTS
from training.models import Dataset, ModelVersion, Task, TrainingRun
from training.services import training_run_create, training_run_enqueue, training_run_execute


class Command(BaseCommand):
    help = ("Fine-tune the base model on the reviewed documents; the new model version is activated if it "
            "passes the gate (not worse than the active one on the evaluation set), else published inactive "
            "with why.")

    def add_arguments(self, parser):
        parser.add_argument("--task", choices=Task.values, help="required unless --dataset gives it")
        parser.add_argument("--dataset", type=int, default=None,
                            help="train on this dataset (manage.py build_dataset / upload_dataset); default: "
                                 "a snapshot of the reviewed documents taken when the run starts")
        parser.add_argument("--sync", action="store_true", help="train in this process and print the metrics")
        parser.add_argument("--base-model", default=None, help="local path or hub id (default: setting)")
        parser.add_argument("--no-adapted-base", action="store_true",
                            help="start from the base model itself, not its newest adapted base")
        for name, h in HYPERPARAMETERS.items():  # defaults and bounds: training/ml/hyperparameters.py
            if h.type is bool:
                parser.add_argument(f"--{name.replace('_', '-')}", action=argparse.BooleanOptionalAction,
                                    default=None, help=f"default {'on' if h.default else 'off'}")
                continue
            per_task = "".join(f", {task}: {values[name]}" for task, values in TASK_DEFAULTS.items()
                               if name in values)
            parser.add_argument(f"--{name.replace('_', '-')}", type=h.type, default=None,
                                help=f"default {h.default}{per_task}, from {h.low} to {h.high}")

    def handle(self, *args, **o):
        dataset = None
        if o["dataset"] is not None:
            dataset = Dataset.objects.filter(pk=o["dataset"]).first()
            if dataset is None:
                raise CommandError(f"dataset {o['dataset']} does not exist")
        elif not o["task"]:
            raise CommandError("give --task, or --dataset")
        try:
            run = training_run_create(task=o["task"], user=None, base_model=o["base_model"], dataset=dataset,
                                      use_adapted_base=not o["no_adapted_base"],
                                      **{name: o[name] for name in HYPERPARAMETERS})
        except ValidationError as exc:
            raise CommandError(" ".join(exc.messages)) from None
        if not o["sync"]:
            training_run_enqueue(run=run)
            self.stdout.write(f"{run.pk}\t{run.status}")
            return
        run = training_run_execute(run=run)
        self.stdout.write(f"run\t{run.pk}\t{run.status}")
        if run.adapted_base_id:
            self.stdout.write(f"adapted base\tA{run.adapted_base.number}\t{run.adapted_base.artefact}")
        weak = (run.dataset_stats or {}).get("weak")
        if weak:
            self.stdout.write(f"self-training\t{weak['documents']} unreviewed documents\t"
                              f"{weak['words']} words\t"
                              f"{weak['entities']} confident entities\tweight={weak['weight']}")
        for m in run.epoch_metrics.order_by("epoch"):
            self.stdout.write(f"epoch\t{m.epoch}\ttrain_loss={m.train_loss:.4f}\teval_loss={m.eval_loss:.4f}\t"
                              f"precision={m.precision:.4f}\trecall={m.recall:.4f}\tf1={m.f1:.4f}")
        if run.status != TrainingRun.Status.SUCCEEDED:
            raise CommandError(f"run {run.pk} failed: {run.error}")
        version = run.model_version
        seconds = run.duration_seconds or 0.0
        self.stdout.write(f"version\t{version.number}\t{'active' if version.is_active else 'inactive'}\t"
                          f"{version.artefact}")
        self.stdout.write(f"final\tprecision={version.metrics['precision']:.4f}\trecall="
                          f"{version.metrics['recall']:.4f}\tf1={version.metrics['f1']:.4f}\tseconds={seconds:.1f}")
        self._gate(version)
        self._quality(version)

    def _gate(self, version) -> None:
        """The gate's outcome (issue 17): on which documents, both F1s, and why a version stayed inactive."""
        gate = version.gate or {}
        where = (f"evaluation_set={gate['evaluation_set']}" if gate.get("evaluation_set") else
                 "evaluation_set=none(run validation documents)")
        figures = [where, f"documents={gate.get('documents', 0)}"]
        if "candidate_f1" in gate:
            figures.append(f"f1={gate['candidate_f1']:.4f}")
        if "reference_f1" in gate:
            figures += [f"active_v{gate['reference_version']}_f1={gate['reference_f1']:.4f}",
                        f"change={gate['low']:+.4f}..{gate['high']:+.4f}"]
        if gate.get("rule") == "learnt by both":  # both learnt these documents: not compared (gate_judge)
            figures.append(f"not_compared=active_v{gate['reference_version']}_learnt_them")
        self.stdout.write("\t".join(["gate", version.gate_status, *figures]))
        if version.gate_reason:
            self.stdout.write(f"reason\t{version.gate_reason}")
        active = ModelVersion.objects.filter(task=version.task, is_active=True).first()
        self.stdout.write(f"active\t{active.number if active else '-'}")

    def _quality(self, version) -> None:
        """How good the new version is, and the active one when another is (issue 21): the verdict the pages
        show, with the F1 and what it was measured on."""
        from training.selectors import model_quality

        versions = [version]
        active = ModelVersion.objects.filter(task=version.task, is_active=True).first()
        if active is not None and active.pk != version.pk:
            versions.append(active)
        for shown in versions:
            q = model_quality(task=shown.task, version=shown)
            figures = [f"v{shown.number}", q.verdict, "f1=-" if q.f1 is None else f"f1={q.f1:.4f}",
                       f"documents={q.documents}"]
            if q.entities is not None:
                figures.append(f"entities={q.entities}")
            measured_on = "evaluation_set_" + str(q.evaluation_set) if q.evaluation_set else q.source
            figures.append(f"on={measured_on}")
            self.stdout.write("\t".join(["quality", *figures, q.message]))
