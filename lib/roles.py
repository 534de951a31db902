"""The two roles of docloop, as Django groups. Superusers count as admins."""

from __future__ import annotations

from django.contrib.auth.models import AbstractBaseUser, AnonymousUser

REVIEWERS = "reviewers"
ADMINS = "admins"


def _group_names(user: AbstractBaseUser) -> frozenset[str]:
    """The user's group names, read once per user object (that is, once per request)."""
    cached = getattr(user, "_docloop_group_names", None)
    if cached is None:
        cached = frozenset(user.groups.values_list("name", flat=True))
        user._docloop_group_names = cached
    return cached


def _in_group(user: AbstractBaseUser | AnonymousUser, name: str) -> bool:
    return user.is_authenticated and name in _group_names(user)


def is_admin(user: AbstractBaseUser | AnonymousUser) -> bool:
    return user.is_authenticated and (user.is_superuser or _in_group(user, ADMINS))


def is_reviewer(user: AbstractBaseUser | AnonymousUser) -> bool:
    return is_admin(user) or _in_group(user, REVIEWERS)
