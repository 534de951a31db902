"""Reserved for: issue 17, evaluation sets and gates. Operations are written by hand into this file (copy only your own operations from
`manage.py makemigrations --dry-run -v 3 training`); the chain stays linear."""

from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [("training", "0007_runs_refit")]
    operations = []
