from django.db import migrations

ROLE_PERMISSIONS = {
    # Reviewers change annotations through the review pages; admins curate everything in the admin.
    "reviewers": [],
    "admins": [
        ("documents", "document"), ("documents", "page"), ("annotation", "entitytype"),
        ("annotation", "annotation"), ("annotation", "annotationevent"), ("training", "trainingrun"),
        ("training", "epochmetric"), ("training", "modelversion"),
    ],
}


def create_groups(apps, schema_editor):
    from django.contrib.auth.management import create_permissions

    for app_config in apps.get_app_configs():
        app_config.models_module = True
        create_permissions(app_config, apps=apps, verbosity=0)
        app_config.models_module = None
    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    for name, models in ROLE_PERMISSIONS.items():
        group, _ = Group.objects.get_or_create(name=name)
        for app_label, model in models:
            group.permissions.add(*Permission.objects.filter(content_type__app_label=app_label,
                                                             content_type__model=model))


def delete_groups(apps, schema_editor):
    apps.get_model("auth", "Group").objects.filter(name__in=ROLE_PERMISSIONS).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("annotation", "0001_initial"),
        ("documents", "0001_initial"),
        ("training", "0001_initial"),
        ("auth", "0012_alter_user_first_name_max_length"),
        ("contenttypes", "0002_remove_content_type_name"),
    ]
    operations = [migrations.RunPython(create_groups, delete_groups)]
