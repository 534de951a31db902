from __future__ import annotations

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from training.services.tokens import api_token_create


class Command(BaseCommand):
    help = ("Create an API token for USERNAME and print it once (only its SHA-256 is stored). Scripts send "
            "it as 'Authorization: Token <token>', or as the password of HTTP Basic auth.")

    def add_arguments(self, parser):
        parser.add_argument("username")
        parser.add_argument("--name", default="", help="what the token is for (shown in the admin)")

    def handle(self, *args, username: str, name: str, **options):
        user = get_user_model().objects.filter(username=username).first()
        if user is None:
            raise CommandError(f"user {username!r} does not exist")
        if not user.is_active:
            raise CommandError(f"user {username!r} is inactive")
        _row, token = api_token_create(user=user, name=name)
        self.stdout.write(token)
