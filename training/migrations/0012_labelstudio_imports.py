"""Label Studio imports: the webhook's job rows (issue 18)."""

import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('documents', '0007_page_text_vector'),
        ('training', '0011_adapted_base'),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.CreateModel(
            name='LabelStudioImport',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('job_id', models.CharField(blank=True, max_length=64, verbose_name='RQ job id')),
                ('worker', models.CharField(blank=True, max_length=255, verbose_name='worker')),
                ('attempts', models.PositiveSmallIntegerField(default=0, verbose_name='attempts')),
                ('queued_at', models.DateTimeField(blank=True, null=True, verbose_name='queued at')),
                ('heartbeat_at', models.DateTimeField(blank=True, null=True, verbose_name='last heartbeat')),
                ('status', models.CharField(choices=[('queued', 'queued'), ('running', 'importing'), ('imported', 'imported'), ('superseded', 'superseded'), ('failed', 'failed')], default='queued', max_length=16, verbose_name='status')),
                ('error', models.TextField(blank=True, verbose_name='reason')),
                ('action', models.CharField(max_length=32, verbose_name='Label Studio action')),
                ('task', models.CharField(blank=True, max_length=64, verbose_name='Label Studio task')),
                ('name', models.CharField(max_length=255, verbose_name='document name')),
                ('text', models.TextField(verbose_name='text')),
                ('spans', models.JSONField(default=list, verbose_name='entities')),
                ('words', models.PositiveIntegerField(verbose_name='words')),
                ('text_sha256', models.CharField(max_length=64, verbose_name='SHA-256 of the text')),
                ('content_sha256', models.CharField(max_length=64, verbose_name='SHA-256 of the text, name and entities')),
                ('document_created', models.BooleanField(default=False, verbose_name='document created')),
                ('entities', models.PositiveIntegerField(blank=True, null=True, verbose_name='entities stored')),
                ('created_at', models.DateTimeField(auto_now_add=True, verbose_name='received at')),
                ('finished_at', models.DateTimeField(blank=True, null=True, verbose_name='finished at')),
                ('created_by', models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.SET_NULL, related_name='+', to=settings.AUTH_USER_MODEL, verbose_name='sent by')),
                ('document', models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.SET_NULL, related_name='+', to='documents.document', verbose_name='document')),
            ],
            options={
                'verbose_name': 'Label Studio import',
                'verbose_name_plural': 'Label Studio imports',
                'ordering': ['-id'],
                'indexes': [models.Index(fields=['text_sha256', '-id'], name='labelstudio_import_text')],
            },
        ),
    ]
