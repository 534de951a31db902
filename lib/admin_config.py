"""The admin app, its `admin.py` modules discovered when something needs them rather than at every start-up.

Django's default AdminConfig imports every app's admin module while the apps load: the admin's forms,
filters and actions, and what those import (django-rq's dashboard, the Label Studio connector). A bulk
command such as `manage.py ingest --sync` never uses them, and they were a seventh of its start-up
(docs/performance.md, ingestion). Here the URLconf discovers them (config/urls.py: every request, every test
client), and so does the admin's system check, so `manage.py check` still checks every ModelAdmin.
"""

from django.contrib import admin
from django.contrib.admin.apps import SimpleAdminConfig
from django.contrib.admin.checks import check_admin_app, check_dependencies
from django.core import checks


def check_admin_app_discovered(app_configs, **kwargs):
    """Django's check of every registered ModelAdmin, once the admin modules are imported."""
    admin.autodiscover()
    return check_admin_app(app_configs, **kwargs)


class AdminConfig(SimpleAdminConfig):
    def ready(self):
        # SimpleAdminConfig.ready(), with the check that needs the admin modules discovering them first.
        checks.register(check_dependencies, checks.Tags.admin)
        checks.register(check_admin_app_discovered, checks.Tags.admin)
