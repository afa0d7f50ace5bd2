"""The approval inbox's count, for the badge in the navigation."""

from apps.approvals.services import inbox_count as count_for


def inbox_count(request):
    user = getattr(request, "user", None)
    return {"approvals_inbox_count": count_for(user) if user is not None and user.is_authenticated else 0}
