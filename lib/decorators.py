from __future__ import annotations

from functools import wraps

from django.core.exceptions import PermissionDenied

from lib.roles import is_admin, is_reviewer


def reviewer_required(view):
    @wraps(view)
    def wrapper(request, *args, **kwargs):
        if not is_reviewer(request.user):
            raise PermissionDenied("Reviewers only")
        return view(request, *args, **kwargs)

    return wrapper


def admin_required(view):
    @wraps(view)
    def wrapper(request, *args, **kwargs):
        if not is_admin(request.user):
            raise PermissionDenied("Admins only")
        return view(request, *args, **kwargs)

    return wrapper
