"""The two roles of docloop, as Django groups. Superusers count as admins."""

from __future__ import annotations

from django.contrib.auth.models import AbstractBaseUser, AnonymousUser

REVIEWERS = "reviewers"
ADMINS = "admins"


def _in_group(user: AbstractBaseUser | AnonymousUser, name: str) -> bool:
    return user.is_authenticated and user.groups.filter(name=name).exists()


def is_admin(user: AbstractBaseUser | AnonymousUser) -> bool:
    return user.is_authenticated and (user.is_superuser or _in_group(user, ADMINS))


def is_reviewer(user: AbstractBaseUser | AnonymousUser) -> bool:
    return is_admin(user) or _in_group(user, REVIEWERS)
