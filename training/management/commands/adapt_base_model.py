from __future__ import annotations

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from training.models import AdaptedBase
from training.selectors import adaptation_due
from training.services.adaptation import adapted_base_create, adapted_base_enqueue, adapted_base_execute


class Command(BaseCommand):
    help = ("Continue the base model's masked-language-model pre-training on every ingested page and publish "
            "the next adapted base, where full runs start from.")

    def add_arguments(self, parser):
        parser.add_argument("--sync", action="store_true", help="adapt in this process and print the figures")
        parser.add_argument("--if-due", action="store_true",
                            help="only when the corpus has grown enough (DOCLOOP_ADAPT_MIN_WORDS, "
                                 "DOCLOOP_ADAPT_GROWTH)")
        parser.add_argument("--base-model", default=None, help="local path or hub id (default: setting)")
        parser.add_argument("--steps", type=int, default=None, help="default DOCLOOP_ADAPT_STEPS")
        parser.add_argument("--head-steps", type=int, default=None, help="default DOCLOOP_ADAPT_HEAD_STEPS")
        parser.add_argument("--batch-size", type=int, default=None, help="default DOCLOOP_ADAPT_BATCH_SIZE")
        parser.add_argument("--max-length", type=int, default=None, help="default DOCLOOP_ADAPT_MAX_LENGTH")
        parser.add_argument("--learning-rate", type=float, default=None,
                            help="default DOCLOOP_ADAPT_LEARNING_RATE")
        parser.add_argument("--checkpoint-every", type=int, default=None,
                            help="default DOCLOOP_ADAPT_CHECKPOINT_STEPS")
        parser.add_argument("--seed", type=int, default=None, help="default 42")

    def handle(self, *args, **o):
        if o["if_due"] and not adaptation_due(base_model=o["base_model"]):
            self.stdout.write("not due")
            return
        try:
            adapted = adapted_base_create(
                user=None, base_model=o["base_model"], steps=o["steps"], head_steps=o["head_steps"],
                batch_size=o["batch_size"], max_length=o["max_length"], learning_rate=o["learning_rate"],
                checkpoint_every=o["checkpoint_every"], seed=o["seed"])
        except ValidationError as exc:
            raise CommandError(" ".join(exc.messages)) from None
        if not o["sync"]:
            adapted_base_enqueue(adapted=adapted)
            self.stdout.write(f"{adapted.pk}\t{adapted.status}")
            return
        adapted = adapted_base_execute(adapted=adapted)
        self.stdout.write(f"adaptation\t{adapted.pk}\t{adapted.status}")
        if adapted.status != AdaptedBase.Status.PUBLISHED:
            raise CommandError(f"adaptation {adapted.pk} failed: {adapted.error}")
        seconds = adapted.duration_seconds or 0.0
        self.stdout.write(f"adapted base\tA{adapted.number}\t{adapted.artefact}")
        self.stdout.write(f"corpus\tsha256={adapted.corpus_sha256}\tpages={adapted.pages}\twords={adapted.words}\t"
                          f"held_out_pages={adapted.heldout_pages}")
        before, after = (f"{value:.2f}" if value is not None else "-"
                         for value in (adapted.perplexity_before, adapted.perplexity_after))
        self.stdout.write(f"final\tsteps={adapted.steps}\tperplexity_before={before}\tperplexity_after={after}\t"
                          f"seconds={seconds:.1f}")
