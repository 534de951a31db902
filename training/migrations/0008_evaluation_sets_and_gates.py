"""Issue 17: evaluation sets (frozen per task), version scores on them, and the gate fields of a version;
ModelVersionEvent.action grows for "activated despite the gate"."""

import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('training', '0007_runs_refit'),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.AddField(
            model_name='modelversion',
            name='gate',
            field=models.JSONField(blank=True, default=dict, verbose_name='gate figures'),
        ),
        migrations.AddField(
            model_name='modelversion',
            name='gate_reason',
            field=models.TextField(blank=True, verbose_name='gate reason'),
        ),
        migrations.AddField(
            model_name='modelversion',
            name='gate_status',
            field=models.CharField(choices=[('ungated', 'not gated'), ('passed', 'passed the gate'), ('rejected', 'rejected: worse than the active version'), ('below_floor', "rejected: below the first version's floor"), ('superseded', 'not activated: another version became active meanwhile'), ('overridden', 'activated despite the gate')], default='ungated', max_length=16, verbose_name='gate'),
        ),
        migrations.AlterField(
            model_name='modelversionevent',
            name='action',
            field=models.CharField(choices=[('activated', 'activated'), ('rolled_back', 'rolled back'), ('activated_despite_gate', 'activated despite the gate')], max_length=32, verbose_name='action'),
        ),
        migrations.CreateModel(
            name='EvaluationSet',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('task', models.CharField(choices=[('token_classification', 'token classification (entities)'), ('text_classification', 'text classification (document class)')], max_length=32, verbose_name='task')),
                ('number', models.PositiveIntegerField(verbose_name='number')),
                ('method', models.CharField(choices=[('sampled', 'sampled from the reviewed documents'), ('chosen', 'chosen by an administrator')], max_length=16, verbose_name='how the documents were chosen')),
                ('documents', models.JSONField(default=list, verbose_name='documents (SHA-256)')),
                ('statistics', models.JSONField(default=dict, verbose_name='statistics')),
                ('created_at', models.DateTimeField(auto_now_add=True, verbose_name='created at')),
                ('created_by', models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.SET_NULL, related_name='+', to=settings.AUTH_USER_MODEL, verbose_name='created by')),
                ('dataset', models.ForeignKey(on_delete=django.db.models.deletion.PROTECT, related_name='evaluation_sets', to='training.dataset', verbose_name='frozen content')),
            ],
            options={
                'verbose_name': 'evaluation set',
                'verbose_name_plural': 'evaluation sets',
                'ordering': ['task', '-number'],
            },
        ),
        migrations.AddField(
            model_name='modelversion',
            name='evaluation_set',
            field=models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.PROTECT, related_name='gated_versions', to='training.evaluationset', verbose_name='gated on evaluation set'),
        ),
        migrations.CreateModel(
            name='VersionScore',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('f1', models.FloatField(verbose_name='F1')),
                ('scores', models.JSONField(default=dict, verbose_name='scores')),
                ('created_at', models.DateTimeField(auto_now_add=True, verbose_name='created at')),
                ('evaluation_set', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='scores', to='training.evaluationset', verbose_name='evaluation set')),
                ('version', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='scores', to='training.modelversion', verbose_name='version')),
            ],
            options={
                'verbose_name': 'version score',
                'verbose_name_plural': 'version scores',
                'ordering': ['-created_at', '-id'],
            },
        ),
        migrations.AddConstraint(
            model_name='evaluationset',
            constraint=models.UniqueConstraint(fields=('task', 'number'), name='evaluation_set_unique_number'),
        ),
        migrations.AddConstraint(
            model_name='versionscore',
            constraint=models.UniqueConstraint(fields=('version', 'evaluation_set'), name='version_score_unique'),
        ),
    ]
