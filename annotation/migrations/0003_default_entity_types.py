"""Start with the six entity types of Brazilian legal text (as in LeNER-Br), so reviewers can annotate a
fresh install at once. Admins rename, recolour, add or delete types in the admin."""

from django.db import migrations

DEFAULT_TYPES = [
    ("PESSOA", "Pessoas: partes, magistrados, advogados", "#ffd54f"),
    ("ORGANIZACAO", "Organizações: órgãos, tribunais, empresas", "#81d4fa"),
    ("LOCAL", "Locais: cidades, estados, endereços", "#a5d6a7"),
    ("TEMPO", "Datas e períodos", "#f48fb1"),
    ("LEGISLACAO", "Leis, artigos e normas", "#ce93d8"),
    ("JURISPRUDENCIA", "Decisões e precedentes citados", "#ffab91"),
]


def create_types(apps, schema_editor):
    EntityType = apps.get_model("annotation", "EntityType")
    for name, description, color in DEFAULT_TYPES:
        EntityType.objects.get_or_create(name=name, defaults={"description": description, "color": color})


def delete_unused_types(apps, schema_editor):
    EntityType = apps.get_model("annotation", "EntityType")
    EntityType.objects.filter(name__in=[n for n, _d, _c in DEFAULT_TYPES], annotations__isnull=True).delete()


class Migration(migrations.Migration):
    dependencies = [("annotation", "0002_create_role_groups")]
    operations = [migrations.RunPython(create_types, delete_unused_types)]
