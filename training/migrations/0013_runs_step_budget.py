"""Runs recorded before the step budget, the continuing refit and the validation floor existed trained
without them: say so in their hyperparameters (0 turns each off), so that "Reproduce" and a requeued or
resumed run train them as they were trained, not with today's defaults."""

from django.db import migrations

BEFORE = {"refit_continue": 0, "max_steps": 0, "min_validation_entities": 0}


def runs_as_they_were(apps, schema_editor):
    TrainingRun = apps.get_model("training", "TrainingRun")
    for run in TrainingRun.objects.only("pk", "hyperparameters").iterator():
        missing = {k: v for k, v in BEFORE.items() if k not in (run.hyperparameters or {})}
        if missing:
            run.hyperparameters = {**(run.hyperparameters or {}), **missing}
            run.save(update_fields=["hyperparameters"])


class Migration(migrations.Migration):
    dependencies = [("training", "0012_labelstudio_imports")]
    operations = [migrations.RunPython(runs_as_they_were, migrations.RunPython.noop)]
