"""Reserved for: issue 17, events hash chain. Operations are written by hand into this file (copy only your own operations from
`manage.py makemigrations --dry-run -v 3 annotation`); the chain stays linear."""

from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [("annotation", "0006_least_confidence_on_document")]
    operations = []
