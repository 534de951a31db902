"""The process-wide predictor cache: one loaded predictor per task, kept while its version stays the one
asked for.

Everything that predicts in a worker borrows it: ingestion and re-scoring (training.ingestion.
document_predict), feedback updates (their parent model), Label Studio's predictions, and the training
worker's preload before each fork (training.worker_runtime.Worker), so a model is read from storage once per
process and reloaded only when its task's active version changes.

Web requests never import this module at its top: loading a predictor loads the ML stack.
"""

from __future__ import annotations

import threading

from training.models import ModelVersion
from training.registry import TASKS, task_spec
from training.selectors import model_version_active

_predictors: dict[str, tuple[str, object]] = {}
_predictors_lock = threading.Lock()


def predictor_for(version: ModelVersion):
    """The version's predictor, loaded once per process for as long as it is the one asked for."""
    from training.artefacts import artefact_local_dir

    with _predictors_lock:
        cached = _predictors.get(version.task)
        if cached is None or cached[0] != version.artefact:
            ml = task_spec(version.task).ml()
            _predictors[version.task] = (version.artefact,
                                         ml.Predictor(artefact_local_dir(location=version.artefact)))
        return _predictors[version.task][1]


def predictors_preload() -> list[str]:
    """Load the active version of every task into this process's cache (constructing the models only:
    no forward pass, so that processes forked from this one can still use torch), and return the
    artefacts now loaded. The training worker calls it before forking each job (training.worker_runtime)."""
    loaded = []
    for task in TASKS:
        version = model_version_active(task=task)
        if version is not None:
            predictor_for(version)
            loaded.append(version.artefact)
    return loaded
