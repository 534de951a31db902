"""Runs recorded before the refit existed did not refit: say so in their hyperparameters, so that
"Reproduce" and a requeued run train them as they were trained."""

from django.db import migrations


def runs_without_refit(apps, schema_editor):
    TrainingRun = apps.get_model("training", "TrainingRun")
    for run in TrainingRun.objects.only("pk", "hyperparameters").iterator():
        if "refit" not in (run.hyperparameters or {}):
            run.hyperparameters = {**(run.hyperparameters or {}), "refit": False}
            run.save(update_fields=["hyperparameters"])


class Migration(migrations.Migration):
    dependencies = [("training", "0006_runs")]
    operations = [migrations.RunPython(runs_without_refit, migrations.RunPython.noop)]
