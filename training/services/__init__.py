"""Writes for training, split by concern: `runs` (full training runs) and `versions` (publishing and
activating model versions). Ingestion lives in `training.ingestion`, the job that `documents` queues.

Web requests import these modules, so the ML stack (torch, transformers, datasets) is imported only
inside the functions that jobs and commands call, never at module level.
"""

from training.services.runs import (
    runs_lifecycle,
    training_run_create,
    training_run_enqueue,
    training_run_execute,
)
from training.services.versions import model_version_activate, model_version_publish

__all__ = [
    "model_version_activate",
    "model_version_publish",
    "runs_lifecycle",
    "training_run_create",
    "training_run_enqueue",
    "training_run_execute",
]
