import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
application = get_wsgi_application()

from lib.security import secret_key_check  # noqa: E402  (after Django is set up)

secret_key_check()  # with DEBUG off, refuse to serve on a missing or public SECRET_KEY

from lib.tempfiles import temp_clean  # noqa: E402

temp_clean()  # the upload files and job folders that killed processes left behind
