from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from annotation.chain import events_verify


class Command(BaseCommand):
    help = ("Check the audit trail: every document's chains of annotation and class events, hash by hash. "
            "Names the first broken link of each broken chain (document, event, what did not match) and "
            "exits with status 1 when there is one.")

    def add_arguments(self, parser):
        parser.add_argument("--document", dest="documents", nargs="+", type=int, metavar="ID",
                            help="only these documents' chains")

    def handle(self, *args, documents: list[int] | None, **options):
        result = events_verify(document_ids=documents)
        for link in result.broken:
            self.stdout.write(f"BROKEN\t{link}")
        if not result.ok:
            raise CommandError(f"{len(result.broken)} broken chain(s) ({result.events} events in "
                               f"{result.chains} chain(s) checked)", returncode=1)
        self.stdout.write(f"OK\t{result.events} events in {result.chains} chain(s): every chain holds")
