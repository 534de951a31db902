"""Reserved for issue 17 (predictions pending before review). No operations: whether a document waits for
its predictions is read from training's PredictionClaim rows (training/0010_prediction_claims), the one
record that every path ending a prediction (written, skipped, failed, reaped) already updates."""

from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [("documents", "0006_page_text_search_index")]
    operations = []
