"""Reserved for: issue 17, predictions pending before review. Operations are written by hand into this file (copy only your own operations from
`manage.py makemigrations --dry-run -v 3 documents`); the chain stays linear."""

from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [("documents", "0006_page_text_search_index")]
    operations = []
