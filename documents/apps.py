from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class DocumentsConfig(AppConfig):
    name = "documents"
    verbose_name = _("Documents")

    def ready(self):
        from documents.services import ingestion_lifecycle
        from lib.jobs import lifecycle_register

        lifecycle_register("document", ingestion_lifecycle)
