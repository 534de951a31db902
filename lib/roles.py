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


# What each role's group holds: (app label, model) pairs give all of that model's permissions, a string
# "app_label.codename" one permission. The data migrations create the groups; roles_ensure() restores them
# after a database flush (connected to post_migrate in training.apps, the last of docloop's apps).
ROLE_PERMISSIONS: dict[str, list] = {
    REVIEWERS: [],
    ADMINS: [
        ("documents", "document"), ("documents", "page"), ("annotation", "entitytype"),
        ("annotation", "annotation"), ("annotation", "annotationevent"), ("training", "trainingrun"),
        ("training", "epochmetric"), ("training", "modelversion"), "training.send_feedback",
    ],
}


def roles_ensure(**_signal_kwargs) -> None:
    """Create the role groups and give them their permissions when missing (idempotent)."""
    from django.contrib.auth.models import Group, Permission
    from django.db.models import Q

    for name, grants in ROLE_PERMISSIONS.items():
        group, _created = Group.objects.get_or_create(name=name)
        query = Q(pk__in=[])
        for grant in grants:
            if isinstance(grant, str):
                app_label, codename = grant.split(".")
                query |= Q(content_type__app_label=app_label, codename=codename)
            else:
                query |= Q(content_type__app_label=grant[0], content_type__model=grant[1])
        group.permissions.add(*Permission.objects.filter(query))
