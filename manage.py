#!/usr/bin/env python
import gc
import os
import sys


def main() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    import django
    from django.core.management import execute_from_command_line

    # Django's set-up builds about 100,000 objects that live as long as the process (modules, classes, models,
    # settings), and the cyclic garbage collector would walk them again and again while they are built: a
    # fifth of a command's start-up (docs/performance.md, ingestion). It is paused while they are built, and
    # they are then frozen: later collections skip them, in this process and in the processes it forks
    # (extraction processes, RQ work horses), which then also share those pages instead of copying them.
    # (With --settings or --pythonpath, execute_from_command_line must read those first: no early set-up.)
    if not any(arg.startswith(("--settings", "--pythonpath")) for arg in sys.argv[1:]):
        gc.disable()
        try:
            from django.conf import settings

            settings.INSTALLED_APPS  # noqa: B018 -- read the settings: prefetch_start needs them
            from documents.prefetch import prefetch_start

            prefetch_start(sys.argv)  # `ingest --sync`: the first PDFs are read while Django sets up
            django.setup()  # execute_from_command_line finds it done
        except Exception:
            from django.apps import apps

            if apps.loading:  # an app failed to load: that is the error to show
                raise
            # The settings could not be read: execute_from_command_line reports it as it always has.
        finally:
            gc.enable()
        gc.freeze()
    execute_from_command_line(sys.argv)


if __name__ == "__main__":
    main()
