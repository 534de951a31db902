from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class TrainingConfig(AppConfig):
    name = "training"
    verbose_name = _("Training")

    def ready(self):
        from lib.jobs import lifecycle_register
        from training.services import runs_lifecycle

        lifecycle_register("training run", runs_lifecycle)

        from training.services.feedback import feedback_lifecycle

        lifecycle_register("feedback update", feedback_lifecycle)
