"""The approval inbox's count, for the badge in the navigation (and home's heading); cached
briefly per person (see approvals.services.badge_count)."""

from apps.approvals.services import badge_count


def inbox_count(request):
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return {"approvals_inbox_count": 0}
    return {"approvals_inbox_count": badge_count(user)}
