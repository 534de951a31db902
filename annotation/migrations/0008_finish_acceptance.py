"""Reserved for: issue 17, finish confirmation. Operations are written by hand into this file (copy only your own operations from
`manage.py makemigrations --dry-run -v 3 annotation`); the chain stays linear."""

from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [("annotation", "0007_event_hash_chain")]
    operations = []
