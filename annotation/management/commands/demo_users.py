from __future__ import annotations

import secrets

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.management.base import BaseCommand

from lib.roles import ADMINS, REVIEWERS

DEMO_USERS = [("admin", ADMINS, True), ("reviewer", REVIEWERS, False)]


class Command(BaseCommand):
    help = "Create the demo admin and reviewer (once) and print their credentials."

    def handle(self, *args, **options):
        credentials = settings.VAR_DIR / "demo-credentials.txt"
        known = {}
        if credentials.exists():
            for line in credentials.read_text().splitlines():
                name, _sep, password = line.partition("\t")
                known[name] = password
        User = get_user_model()
        for username, group, is_staff in DEMO_USERS:
            user = User.objects.filter(username=username).first()
            if user is not None and username not in known:
                known[username] = "(unchanged: the user existed before)"
                continue  # never touch an account this command did not create
            if user is None:
                password = secrets.token_urlsafe(9)
                user = User(username=username)
                user.is_staff = is_staff
                user.is_superuser = is_staff
                user.set_password(password)
                user.save()
                known[username] = password
            user.groups.add(Group.objects.get(name=group))
        credentials.parent.mkdir(parents=True, exist_ok=True)
        credentials.write_text("".join(f"{name}\t{password}\n" for name, password in known.items()))
        credentials.chmod(0o600)
        self.stdout.write(f"Demo users (kept in {credentials}):")
        for username, group, _is_staff in DEMO_USERS:
            self.stdout.write(f"  {username:<9} password: {known[username]}   ({group})")
