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

        from training.services.predictions import prediction_lifecycle

        lifecycle_register("prediction", prediction_lifecycle)

        from training.services.adaptation import adaptation_lifecycle

        lifecycle_register("base-model adaptation", adaptation_lifecycle)

        from training.labelstudio import labelstudio_import_lifecycle

        lifecycle_register("Label Studio import", labelstudio_import_lifecycle)

        # The role groups come back after a flush (tests, `manage.py flush`): after this app's
        # permissions exist, which Django's own post_migrate handler creates first.
        from django.db.models.signals import post_migrate

        from lib.roles import roles_ensure

        post_migrate.connect(roles_ensure, sender=self, dispatch_uid="docloop-roles-ensure")
