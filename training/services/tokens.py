"""API tokens for scripts and integrations (Label Studio, GPU hosts, CI): create, check, revoke."""

from __future__ import annotations

import hashlib
import secrets

from django.contrib.auth.models import AbstractBaseUser
from django.utils import timezone

from training.models import ApiToken


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def api_token_create(*, user: AbstractBaseUser, name: str = "") -> tuple[ApiToken, str]:
    """A new token for `user`; the plain token is returned once and never stored."""
    token = secrets.token_urlsafe(32)
    row = ApiToken.objects.create(user=user, name=name[:100], prefix=token[:8], digest=_digest(token))
    return row, token


def api_token_user(*, token: str) -> AbstractBaseUser | None:
    """The active user a token belongs to, or None; records when the token was last used."""
    if not token:
        return None
    row = (ApiToken.objects.select_related("user").filter(digest=_digest(token), revoked_at__isnull=True)
           .first())
    if row is None or not row.user.is_active:
        return None
    ApiToken.objects.filter(pk=row.pk).update(last_used_at=timezone.now())
    return row.user


def api_token_revoke(*, token: ApiToken) -> None:
    ApiToken.objects.filter(pk=token.pk, revoked_at__isnull=True).update(revoked_at=timezone.now())
