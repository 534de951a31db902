"""Issue 17, finish confirmation: the event action of predictions accepted by finishing a review (entities and
document classes), and the page parts each reviewer has opened (ReviewOpening)."""

import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("annotation", "0007_event_hash_chain"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]
    operations = [
        migrations.AlterField(
            model_name="annotationevent",
            name="action",
            field=models.CharField(choices=[
                ("predict", "predicted by model"), ("create", "created"), ("accept", "accepted"),
                ("reject", "rejected"), ("relabel", "relabelled"), ("resize", "span changed"), ("delete", "deleted"),
                ("revert", "reverted"), ("merge", "type merged"), ("import", "imported"),
                ("finish_accept", "accepted on finishing the review"),
            ], max_length=16, verbose_name="action"),
        ),
        migrations.AlterField(
            model_name="documentclassevent",
            name="action",
            field=models.CharField(choices=[
                ("predict", "predicted by model"), ("set", "chosen"), ("accept", "accepted"), ("reject", "rejected"),
                ("import", "imported"), ("finish_accept", "accepted on finishing the review"),
            ], max_length=16, verbose_name="action"),
        ),
        migrations.CreateModel(
            name="ReviewOpening",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("page_number", models.PositiveIntegerField(verbose_name="page")),
                ("word_start", models.PositiveIntegerField(verbose_name="first word")),
                ("word_end", models.PositiveIntegerField(verbose_name="end word (exclusive)")),
                ("opened_at", models.DateTimeField(verbose_name="last opened")),
                ("document", models.ForeignKey(on_delete=django.db.models.deletion.CASCADE,
                                               related_name="review_openings", to="documents.document")),
                ("user", models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name="+",
                                           to=settings.AUTH_USER_MODEL, verbose_name="reviewer")),
            ],
            options={
                "verbose_name": "opened page part",
                "verbose_name_plural": "opened page parts",
                "constraints": [models.UniqueConstraint(
                    fields=("document", "user", "page_number", "word_start", "word_end"),
                    name="reviewopening_unique_part")],
            },
        ),
    ]
