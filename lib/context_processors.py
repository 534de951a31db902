from lib.roles import is_admin, is_reviewer


def roles(request):
    user = getattr(request, "user", None)
    if user is None:
        return {}
    return {"user_is_admin": is_admin(user), "user_is_reviewer": is_reviewer(user)}
