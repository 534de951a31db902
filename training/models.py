from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils.translation import gettext_lazy as _

from lib.jobs import JobRow


class Task(models.TextChoices):
    TOKEN_CLASSIFICATION = "token_classification", _("token classification (entities)")
    TEXT_CLASSIFICATION = "text_classification", _("text classification (document class)")


class Dataset(models.Model):
    """An immutable snapshot of training data: its rows live in storage as JSONL (and Parquet), its
    SHA-256 is that of the canonical content (training.ml.snapshot), so equal content means equal hash and
    building or uploading the same content again returns this row."""

    class Source(models.TextChoices):
        DATABASE = "database", _("reviewed documents")
        EXCEL = "excel", _("Excel upload")

    task = models.CharField(_("task"), max_length=32, choices=Task.choices)
    sha256 = models.CharField(_("SHA-256 of the content"), max_length=64, unique=True)
    source = models.CharField(_("source"), max_length=16, choices=Source.choices)
    name = models.CharField(_("name"), max_length=255, blank=True)
    labels = models.JSONField(_("labels"), default=list)
    statistics = models.JSONField(_("statistics"), default=dict)
    # Document keys per split ("train", "validation", "test"): PDF SHA-256s, or spreadsheet row keys.
    split = models.JSONField(_("split"), default=dict)
    split_seed = models.PositiveIntegerField(_("split seed"))
    validation_fraction = models.FloatField(_("validation share"))
    test_fraction = models.FloatField(_("test share"))
    filters = models.JSONField(_("filters"), default=dict, blank=True)
    file = models.CharField(_("JSONL file in storage"), max_length=500)
    parquet_file = models.CharField(_("Parquet file in storage"), max_length=500, blank=True)
    original_file = models.CharField(_("original file in storage"), max_length=500, blank=True)
    size = models.PositiveBigIntegerField(_("JSONL size in bytes"), default=0)
    # The events a database snapshot read (annotation events for token classification, class events for
    # text classification): the highest id, and each document's newest event id ({document id: event id}),
    # whose hash pins down that document's whole history (annotation.chain). Empty for Excel uploads.
    events_through = models.PositiveBigIntegerField(_("newest event read"), null=True, blank=True)
    event_heads = models.JSONField(_("newest event per document"), default=dict, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+",
        verbose_name=_("created by"),
    )
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name = _("dataset")
        verbose_name_plural = _("datasets")

    def __str__(self) -> str:
        return f"#{self.pk} {self.get_task_display()} {self.sha256[:12]}"


class TrainingRun(JobRow):
    """One fine-tuning attempt; a job row (lib.jobs): queued → running → succeeded, failed or cancelled."""

    class Status(models.TextChoices):
        QUEUED = "queued", _("queued")
        RUNNING = "running", _("running")
        SUCCEEDED = "succeeded", _("succeeded")
        FAILED = "failed", _("failed")
        CANCELLED = "cancelled", _("cancelled")

    class Kind(models.TextChoices):
        FULL = "full", _("full run")
        FEEDBACK = "feedback", _("feedback update")

    class Trigger(models.TextChoices):
        MANUAL = "manual", _("started by hand")
        # DOCLOOP_RETRAIN_AUTO: the reviewed documents grew by DOCLOOP_RETRAIN_GROWTH since the last run.
        GROWTH = "growth", _("the reviewed documents grew")

    task = models.CharField(_("task"), max_length=32, choices=Task.choices)
    trigger = models.CharField(_("trigger"), max_length=16, choices=Trigger.choices, default=Trigger.MANUAL)
    # How many documents were reviewed when the run was created (what the next automatic run is measured
    # against, whatever became of this one: a failed run is not retried until the documents grow again).
    reviewed_documents = models.PositiveIntegerField(_("reviewed documents when created"), null=True,
                                                     blank=True)
    kind = models.CharField(_("kind"), max_length=16, choices=Kind.choices, default=Kind.FULL)
    base_model = models.CharField(_("base model"), max_length=500)
    parent_version = models.ForeignKey(
        "ModelVersion", null=True, blank=True, on_delete=models.SET_NULL, related_name="child_runs",
        verbose_name=_("started from version"),
    )
    # The adapted base (training.services.adaptation) whose weights a full run started from; a feedback
    # run inherits its parent's. Empty: the raw base model.
    adapted_base = models.ForeignKey(
        "AdaptedBase", null=True, blank=True, on_delete=models.PROTECT, related_name="runs",
        verbose_name=_("started from adapted base"),
    )
    hyperparameters = models.JSONField(_("hyperparameters"), default=dict)
    seed = models.PositiveIntegerField(_("seed"), default=42)
    # The snapshot the run trains on; a run queued without one builds it from the reviewed documents.
    dataset = models.ForeignKey(Dataset, null=True, blank=True, on_delete=models.PROTECT, related_name="runs",
                                verbose_name=_("dataset"))
    dataset_hash = models.CharField(_("dataset SHA-256"), max_length=64, blank=True)
    dataset_stats = models.JSONField(_("dataset statistics"), default=dict, blank=True)
    status = models.CharField(_("status"), max_length=16, choices=Status.choices, default=Status.QUEUED)
    error = models.TextField(_("error"), blank=True)
    device = models.CharField(_("device"), max_length=128, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+",
        verbose_name=_("started by"),
    )
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)
    started_at = models.DateTimeField(_("started at"), null=True, blank=True)
    finished_at = models.DateTimeField(_("finished at"), null=True, blank=True)
    # Live progress, written by the worker every step: step, total_steps, epoch, epochs, started (epoch
    # seconds of this attempt's first step), at (of the last), resumed_from (epoch of the checkpoint).
    progress = models.JSONField(_("progress"), default=dict, blank=True)
    # The storage folder holding the checkpoint of the last finished epoch (training.services.checkpoints).
    checkpoint = models.CharField(_("checkpoint in storage"), max_length=500, blank=True)
    checkpoint_epoch = models.PositiveIntegerField(_("checkpoint epoch"), null=True, blank=True)
    reproduces = models.ForeignKey("self", null=True, blank=True, on_delete=models.SET_NULL,
                                   related_name="reproductions", verbose_name=_("reproduces run"))
    cancelled_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+",
        verbose_name=_("cancelled by"),
    )

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name = _("training run")
        verbose_name_plural = _("training runs")

    def __str__(self) -> str:
        return f"#{self.pk} {self.get_task_display()} ({self.get_status_display()})"

    @property
    def duration_seconds(self) -> float | None:
        if self.started_at and self.finished_at:
            return (self.finished_at - self.started_at).total_seconds()
        return None


class EpochMetric(models.Model):
    """Metrics of one epoch, computed from the model's predictions on the held-out documents."""

    run = models.ForeignKey(TrainingRun, on_delete=models.CASCADE, related_name="epoch_metrics")
    epoch = models.PositiveIntegerField(_("epoch"))
    train_loss = models.FloatField(_("training loss"))
    eval_loss = models.FloatField(_("evaluation loss"), null=True, blank=True)
    precision = models.FloatField(_("precision"), null=True, blank=True)
    recall = models.FloatField(_("recall"), null=True, blank=True)
    f1 = models.FloatField(_("F1"), null=True, blank=True)
    macro_f1 = models.FloatField(_("macro F1"), null=True, blank=True)
    # Share of gold entities that a predicted entity overlaps at all.
    coverage = models.FloatField(_("coverage"), null=True, blank=True)
    per_label = models.JSONField(_("per-label metrics"), default=dict, blank=True)
    # {"labels": [...], "matrix": [[...]]}: rows are the gold label, columns the predicted one.
    confusion_matrix = models.JSONField(_("confusion matrix"), default=dict, blank=True)
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)

    class Meta:
        ordering = ["run", "epoch"]
        verbose_name = _("epoch metric")
        verbose_name_plural = _("epoch metrics")
        constraints = [models.UniqueConstraint(fields=["run", "epoch"], name="epoch_metric_unique")]

    def __str__(self) -> str:
        return f"run {self.run_id} epoch {self.epoch}"


class Gate(models.TextChoices):
    """What the gate said about a new version (ModelVersion.gate_status)."""

    UNGATED = "ungated", _("not gated")
    PASSED = "passed", _("passed the gate")
    REJECTED = "rejected", _("rejected: worse than the active version")
    BELOW_FLOOR = "below_floor", _("rejected: below the first version's floor")
    SUPERSEDED = "superseded", _("not activated: another version became active meanwhile")
    OVERRIDDEN = "overridden", _("activated despite the gate")


# inactive for a reason: activation needs a confirmation
GATED = (Gate.REJECTED, Gate.BELOW_FLOOR, Gate.SUPERSEDED)


class EvaluationSet(models.Model):
    """A task's evaluation set: documents chosen once (by an admin, or sampled) and frozen, never trained
    on. Its content is a Dataset snapshot taken when it was frozen, so every version is scored on the same
    words and labels whatever reviewers change later; a larger set is a new number, never an edit. The
    current set of a task is its highest number."""

    class Method(models.TextChoices):
        SAMPLED = "sampled", _("sampled from the reviewed documents")
        CHOSEN = "chosen", _("chosen by an administrator")

    task = models.CharField(_("task"), max_length=32, choices=Task.choices)
    number = models.PositiveIntegerField(_("number"))
    method = models.CharField(_("how the documents were chosen"), max_length=16, choices=Method.choices)
    # PDF SHA-256s (the keys of database snapshots), sorted; what training leaves out.
    documents = models.JSONField(_("documents (SHA-256)"), default=list)
    dataset = models.ForeignKey(Dataset, on_delete=models.PROTECT, related_name="evaluation_sets",
                                verbose_name=_("frozen content"))
    # {"documents", "entities", "words", "per_label", "seen", "floor": {"documents", "entities"},
    #  "meets_floor"}
    statistics = models.JSONField(_("statistics"), default=dict)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+",
        verbose_name=_("created by"),
    )
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)

    class Meta:
        ordering = ["task", "-number"]
        verbose_name = _("evaluation set")
        verbose_name_plural = _("evaluation sets")
        constraints = [models.UniqueConstraint(fields=["task", "number"],
                                               name="evaluation_set_unique_number")]

    def __str__(self) -> str:
        return f"{self.task} #{self.number}"

    @property
    def meets_floor(self) -> bool:
        return bool(self.statistics.get("meets_floor"))


class ModelVersion(models.Model):
    task = models.CharField(_("task"), max_length=32, choices=Task.choices)
    number = models.PositiveIntegerField(_("version number"))
    kind = models.CharField(_("kind"), max_length=16, choices=TrainingRun.Kind.choices,
                            default=TrainingRun.Kind.FULL)
    run = models.OneToOneField(TrainingRun, on_delete=models.PROTECT, related_name="model_version")
    parent = models.ForeignKey("self", null=True, blank=True, on_delete=models.SET_NULL,
                               related_name="children", verbose_name=_("parent version"))
    artefact = models.CharField(_("artefact location in storage"), max_length=500)
    labels = models.JSONField(_("labels"), default=list)
    metrics = models.JSONField(_("metrics"), default=dict, blank=True)
    is_active = models.BooleanField(_("active"), default=False)
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)
    activated_at = models.DateTimeField(_("activated at"), null=True, blank=True)
    # The gate a new version passed or failed (training.services.gates): on which evaluation set (none: the
    # run's own validation documents), the outcome and, when it was not activated, why.
    gate_status = models.CharField(_("gate"), max_length=16, choices=Gate.choices, default=Gate.UNGATED)
    gate_reason = models.TextField(_("gate reason"), blank=True)
    gate = models.JSONField(_("gate figures"), default=dict, blank=True)
    evaluation_set = models.ForeignKey("EvaluationSet", null=True, blank=True, on_delete=models.PROTECT,
                                       related_name="gated_versions",
                                       verbose_name=_("gated on evaluation set"))
    # Provenance (training.services.provenance): the SHA-256 of the dataset a full run learnt from, the
    # highest event id behind what it learnt and, per document, the newest event id it saw: {"event_kind":
    # "annotation" or "class", "heads": {document id: event id}, "dataset": id} for a full run;
    # "feedback_update", "replay_documents" and "validation_documents" beside them for a feedback update.
    dataset_sha256 = models.CharField(_("dataset SHA-256"), max_length=64, blank=True)
    events_through = models.PositiveBigIntegerField(_("learnt from events up to"), null=True, blank=True)
    learnt_from = models.JSONField(_("learnt from"), default=dict, blank=True)

    class Meta:
        ordering = ["task", "-number"]
        verbose_name = _("model version")
        verbose_name_plural = _("model versions")
        constraints = [
            models.UniqueConstraint(fields=["task", "number"], name="model_version_unique_number"),
            models.UniqueConstraint(fields=["task"], condition=Q(is_active=True),
                                    name="model_version_one_active_per_task"),
        ]

    def __str__(self) -> str:
        return f"{self.task} v{self.number}"


class VersionScore(models.Model):
    """A version's scores on an evaluation set, with the per-document counts the gate's paired bootstrap
    resamples (training.ml.gate): written by the gate, and by `manage.py evaluation_set --score`."""

    version = models.ForeignKey(ModelVersion, on_delete=models.CASCADE, related_name="scores",
                                verbose_name=_("version"))
    evaluation_set = models.ForeignKey(EvaluationSet, on_delete=models.CASCADE, related_name="scores",
                                       verbose_name=_("evaluation set"))
    f1 = models.FloatField(_("F1"))
    # precision, recall, per_label, documents, entities, per_document ([{label: [tp, predicted, gold]}]).
    scores = models.JSONField(_("scores"), default=dict)
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name = _("version score")
        verbose_name_plural = _("version scores")
        constraints = [models.UniqueConstraint(fields=["version", "evaluation_set"],
                                               name="version_score_unique")]

    def __str__(self) -> str:
        return f"{self.version} on {self.evaluation_set}: {self.f1:.3f}"


class ApiToken(models.Model):
    """A secret that scripts send as `Authorization: Token <token>` (or as the password of Basic auth).

    Only the SHA-256 of the token is stored; `manage.py api_token USERNAME` prints the token once.
    """

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_tokens",
                             verbose_name=_("user"))
    name = models.CharField(_("name"), max_length=100, blank=True)
    prefix = models.CharField(_("prefix"), max_length=8, help_text=_("The token's first characters, to tell "
                                                                      "tokens apart."))
    digest = models.CharField(_("SHA-256"), max_length=64, unique=True)
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)
    last_used_at = models.DateTimeField(_("last used at"), null=True, blank=True)
    revoked_at = models.DateTimeField(_("revoked at"), null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name = _("API token")
        verbose_name_plural = _("API tokens")

    def __str__(self) -> str:
        return f"{self.user} {self.prefix}… {self.name}".strip()


# Immediate feedback (training.services.feedback) ----------------------------------------------------------

class FeedbackUpdate(JobRow):
    """One incremental update of a task's active version: a job row (lib.jobs) that learns from every
    feedback request attached to it. Requests attach only while it is queued, so the requests that arrive
    while it runs go to the next queued update: feedback is batched, never lost, never piled up."""

    class Status(models.TextChoices):
        QUEUED = "queued", _("queued")
        RUNNING = "running", _("running")
        PUBLISHED = "published", _("published")
        REJECTED = "rejected", _("rejected by the guardrail")
        FAILED = "failed", _("failed")

    task = models.CharField(_("task"), max_length=32, choices=Task.choices)
    status = models.CharField(_("status"), max_length=16, choices=Status.choices, default=Status.QUEUED)
    error = models.TextField(_("reason"), blank=True)
    parent_version = models.ForeignKey(ModelVersion, null=True, blank=True, on_delete=models.SET_NULL,
                                       related_name="+", verbose_name=_("started from version"))
    model_version = models.OneToOneField(ModelVersion, null=True, blank=True, on_delete=models.SET_NULL,
                                         related_name="feedback_update", verbose_name=_("resulting version"))
    # What it learnt from: {"documents": [ids], "events": {document id: newest event id}, ...}, and the
    # validation F1 (overall and per label) of the parent and of the result on the same documents.
    learnt_from = models.JSONField(_("learnt from"), default=dict, blank=True)
    metrics = models.JSONField(_("metrics"), default=dict, blank=True)
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)
    started_at = models.DateTimeField(_("started at"), null=True, blank=True)
    finished_at = models.DateTimeField(_("finished at"), null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name = _("feedback update")
        verbose_name_plural = _("feedback updates")
        constraints = [
            # One update of a task runs at a time: no two versions are built from the same state.
            models.UniqueConstraint(fields=["task"], condition=Q(status="running"),
                                    name="feedback_update_one_running_per_task"),
        ]

    def __str__(self) -> str:
        return f"#{self.pk} {self.task} ({self.get_status_display()})"


class FeedbackRequest(models.Model):
    """One "send to model" of a document; its status is that of the update it is attached to."""

    document = models.ForeignKey("documents.Document", on_delete=models.CASCADE,
                                 related_name="feedback_requests", verbose_name=_("document"))
    task = models.CharField(_("task"), max_length=32, choices=Task.choices)
    update = models.ForeignKey(FeedbackUpdate, on_delete=models.CASCADE, related_name="requests",
                               verbose_name=_("update"))
    # The document's newest annotation event when it was sent: the state the reviewer sent.
    event_id = models.PositiveBigIntegerField(_("newest event"), default=0)
    requested_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True,
                                     on_delete=models.SET_NULL, related_name="+", verbose_name=_("sent by"))
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name = _("feedback request")
        verbose_name_plural = _("feedback requests")
        permissions = [("send_feedback", _("Can send reviewed documents to the model"))]

    def __str__(self) -> str:
        return f"#{self.pk} document {self.document_id}"


# Runs and workers ----------------------------------------------------------------------------------------

class RunLog(models.Model):
    """A run's log lines, written by its worker in batches (training.services.run_logs)."""

    run = models.ForeignKey(TrainingRun, on_delete=models.CASCADE, related_name="logs")
    attempt = models.PositiveSmallIntegerField(_("attempt"), default=1)
    created_at = models.DateTimeField(_("time"))
    level = models.CharField(_("level"), max_length=10)
    message = models.TextField(_("message"))

    class Meta:
        ordering = ["run", "id"]
        verbose_name = _("run log line")
        verbose_name_plural = _("run log lines")

    def __str__(self) -> str:
        return f"run {self.run_id} {self.level} {self.message[:60]}"


class TrainingWorker(models.Model):
    """A registered training worker (a GPU host): `manage.py register_worker NAME` prints its token once;
    only the token's SHA-256 is kept. The worker process fills in its host, device and heartbeat."""

    class State(models.TextChoices):
        REGISTERED = "registered", _("never started")
        IDLE = "idle", _("idle")
        BUSY = "busy", _("busy")
        STOPPED = "stopped", _("stopped")

    name = models.CharField(_("name"), max_length=100, unique=True)
    prefix = models.CharField(_("token prefix"), max_length=8)
    digest = models.CharField(_("token SHA-256"), max_length=64, unique=True)
    created_at = models.DateTimeField(_("registered at"), auto_now_add=True)
    revoked_at = models.DateTimeField(_("revoked at"), null=True, blank=True)
    state = models.CharField(_("state"), max_length=16, choices=State.choices, default=State.REGISTERED)
    hostname = models.CharField(_("host"), max_length=255, blank=True)
    pid = models.PositiveIntegerField(_("process id"), null=True, blank=True)
    queues = models.CharField(_("queues"), max_length=255, blank=True)
    device = models.CharField(_("device"), max_length=255, blank=True)
    started_at = models.DateTimeField(_("started at"), null=True, blank=True)
    heartbeat_at = models.DateTimeField(_("last heartbeat"), null=True, blank=True)
    current_job = models.CharField(_("current RQ job"), max_length=64, blank=True)

    class Meta:
        ordering = ["name"]
        verbose_name = _("training worker")
        verbose_name_plural = _("training workers")

    def __str__(self) -> str:
        return self.name

    @property
    def is_responding(self) -> bool:
        """Whether its process still beats: idle or busy, with a heartbeat younger than the stale timeout."""
        from lib.jobs import stale_cutoff

        return (self.state in (self.State.IDLE, self.State.BUSY) and self.heartbeat_at is not None
                and self.heartbeat_at >= stale_cutoff())


class ModelVersionEvent(models.Model):
    """Who activated (or rolled back to) which version, and which one was active before."""

    class Action(models.TextChoices):
        ACTIVATED = "activated", _("activated")
        ROLLED_BACK = "rolled_back", _("rolled back")
        ACTIVATED_DESPITE_GATE = "activated_despite_gate", _("activated despite the gate")

    version = models.ForeignKey(ModelVersion, on_delete=models.CASCADE, related_name="events",
                                verbose_name=_("version"))
    previous = models.ForeignKey(ModelVersion, null=True, blank=True, on_delete=models.SET_NULL,
                                 related_name="+", verbose_name=_("previously active"))
    action = models.CharField(_("action"), max_length=32, choices=Action.choices)
    user = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                             related_name="+", verbose_name=_("user"))
    created_at = models.DateTimeField(_("when"), auto_now_add=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name = _("model version event")
        verbose_name_plural = _("model version events")

    def __str__(self) -> str:
        return f"{self.version} {self.action}"


class PredictionClaim(JobRow):
    """A model version's predictions for one document, written at most once (training.services.predictions).

    A job row (lib.jobs): queued → running → done, skipped or failed. It is created in the transaction that
    makes the document wait for those predictions (the one that marks an ingested document ready, or the one
    that activates a version whose re-scoring follows); while it is queued or running the document is
    "predicting" and its review cannot be finished."""

    class Status(models.TextChoices):
        QUEUED = "queued", _("queued")
        RUNNING = "running", _("predicting")
        DONE = "done", _("written")
        SKIPPED = "skipped", _("skipped")
        FAILED = "failed", _("failed")

    class Purpose(models.TextChoices):
        INGEST = "ingest", _("pre-annotation after ingestion")
        RESCORE = "rescore", _("re-scoring by a new version")

    OPEN = (Status.QUEUED, Status.RUNNING)

    document = models.ForeignKey("documents.Document", on_delete=models.CASCADE,
                                 related_name="prediction_claims", verbose_name=_("document"))
    version = models.ForeignKey(ModelVersion, on_delete=models.CASCADE, related_name="prediction_claims",
                                verbose_name=_("model version"))
    purpose = models.CharField(_("purpose"), max_length=16, choices=Purpose.choices)
    status = models.CharField(_("status"), max_length=16, choices=Status.choices, default=Status.QUEUED)
    error = models.TextField(_("reason"), blank=True)  # why it failed or was skipped
    written = models.PositiveIntegerField(_("predictions written"), null=True, blank=True)
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)
    finished_at = models.DateTimeField(_("finished at"), null=True, blank=True)

    class Meta:
        ordering = ["-id"]
        verbose_name = _("prediction claim")
        verbose_name_plural = _("prediction claims")
        constraints = [models.UniqueConstraint(fields=["document", "version"], name="prediction_claim_once")]
        indexes = [models.Index(fields=["status"], name="prediction_claim_status")]

    def __str__(self) -> str:
        return f"{self.version} → document {self.document_id}: {self.status}"


# Adapted base models (training.services.adaptation) ------------------------------------------------------

class AdaptedBase(JobRow):
    """The base model after continued masked-language-model pre-training on every ingested page, reviewed
    or not: a job row (lib.jobs) that, once published, gets the next number and is where full runs start
    from (the newest published one of the configured base model)."""

    class Status(models.TextChoices):
        QUEUED = "queued", _("queued")
        RUNNING = "running", _("running")
        PUBLISHED = "published", _("published")
        FAILED = "failed", _("failed")
        CANCELLED = "cancelled", _("cancelled")

    class Trigger(models.TextChoices):
        MANUAL = "manual", _("started by hand")
        GROWTH = "growth", _("the corpus grew")

    number = models.PositiveIntegerField(_("number"), null=True, blank=True, unique=True)
    base_model = models.CharField(_("base model"), max_length=500)
    status = models.CharField(_("status"), max_length=16, choices=Status.choices, default=Status.QUEUED)
    trigger = models.CharField(_("trigger"), max_length=16, choices=Trigger.choices, default=Trigger.MANUAL)
    error = models.TextField(_("error"), blank=True)
    # Steps, batch size, learning rates, block length, masking share, held-out share, checkpoint interval,
    # seed: read from the settings when queued, so a resumed attempt trains exactly as the first one.
    hyperparameters = models.JSONField(_("hyperparameters"), default=dict)
    # The corpus, fixed by the first attempt: the documents it read, their pages' SHA-256, sizes.
    corpus_documents = models.JSONField(_("corpus documents"), default=list, blank=True)
    corpus_sha256 = models.CharField(_("corpus SHA-256"), max_length=64, blank=True)
    pages = models.PositiveIntegerField(_("pages"), null=True, blank=True)
    words = models.PositiveBigIntegerField(_("words"), null=True, blank=True)
    heldout_pages = models.PositiveIntegerField(_("held-out pages"), null=True, blank=True)
    steps = models.PositiveIntegerField(_("steps"), null=True, blank=True)
    perplexity_before = models.FloatField(_("held-out perplexity before"), null=True, blank=True)
    perplexity_after = models.FloatField(_("held-out perplexity after"), null=True, blank=True)
    metrics = models.JSONField(_("metrics"), default=dict, blank=True)
    artefact = models.CharField(_("artefact location in storage"), max_length=500, blank=True)
    device = models.CharField(_("device"), max_length=128, blank=True)
    # Live progress (step, total_steps, phase, loss, started, at, resumed_from) and the last checkpoint.
    progress = models.JSONField(_("progress"), default=dict, blank=True)
    checkpoint = models.CharField(_("checkpoint in storage"), max_length=500, blank=True)
    checkpoint_step = models.PositiveIntegerField(_("checkpoint step"), null=True, blank=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                                   related_name="+", verbose_name=_("started by"))
    cancelled_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True,
                                     on_delete=models.SET_NULL, related_name="+",
                                     verbose_name=_("cancelled by"))
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)
    started_at = models.DateTimeField(_("started at"), null=True, blank=True)
    finished_at = models.DateTimeField(_("finished at"), null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name = _("adapted base model")
        verbose_name_plural = _("adapted base models")
        constraints = [
            # One adaptation of a base model at a time: a second would learn from the same pages.
            models.UniqueConstraint(fields=["base_model"], condition=Q(status__in=["queued", "running"]),
                                    name="adapted_base_one_active_per_base"),
        ]

    def __str__(self) -> str:
        return f"A{self.number}" if self.number else f"#{self.pk} ({self.get_status_display()})"

    @property
    def duration_seconds(self) -> float | None:
        if self.started_at and self.finished_at:
            return (self.finished_at - self.started_at).total_seconds()
        return None


class LabelStudioImport(JobRow):
    """An annotation Label Studio sent to /labelstudio/webhook, imported by a job (training.labelstudio): its
    text rendered to a PDF, extracted, and the regions stored as the reviewed entities of that document.

    The webhook checks what is cheap (JSON shape, labels, offsets, overlaps) and answers at once; rendering
    and extracting a long text takes a worker seconds to minutes. A job row (lib.jobs): queued → running →
    imported, superseded (a newer annotation of the same text was imported first) or failed with the reason.
    """

    class Status(models.TextChoices):
        QUEUED = "queued", _("queued")
        RUNNING = "running", _("importing")
        IMPORTED = "imported", _("imported")
        SUPERSEDED = "superseded", _("superseded")
        FAILED = "failed", _("failed")

    status = models.CharField(_("status"), max_length=16, choices=Status.choices, default=Status.QUEUED)
    error = models.TextField(_("reason"), blank=True)
    action = models.CharField(_("Label Studio action"), max_length=32)
    task = models.CharField(_("Label Studio task"), max_length=64, blank=True)
    name = models.CharField(_("document name"), max_length=255)
    text = models.TextField(_("text"))
    # The regions as word spans, checked by the webhook: [[start word, end word, label], ...].
    spans = models.JSONField(_("entities"), default=list)
    words = models.PositiveIntegerField(_("words"))
    # The same text is the same document; the same text, name and spans are the same import (a redelivery).
    text_sha256 = models.CharField(_("SHA-256 of the text"), max_length=64)
    content_sha256 = models.CharField(_("SHA-256 of the text, name and entities"), max_length=64)
    document = models.ForeignKey("documents.Document", null=True, blank=True, on_delete=models.SET_NULL,
                                 related_name="+", verbose_name=_("document"))
    document_created = models.BooleanField(_("document created"), default=False)
    entities = models.PositiveIntegerField(_("entities stored"), null=True, blank=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                                   related_name="+", verbose_name=_("sent by"))
    created_at = models.DateTimeField(_("received at"), auto_now_add=True)
    finished_at = models.DateTimeField(_("finished at"), null=True, blank=True)

    class Meta:
        ordering = ["-id"]
        verbose_name = _("Label Studio import")
        verbose_name_plural = _("Label Studio imports")
        indexes = [models.Index(fields=["text_sha256", "-id"], name="labelstudio_import_text")]

    def __str__(self) -> str:
        return f"Label Studio task {self.task or '?'} #{self.pk}: {self.get_status_display()}"
