"""The approval inbox's count, for the badge in the navigation (and home's heading).

Counting the inbox is its full many-table query, and every page shows the badge: it is cached
per person for BADGE_SECONDS in Django's cache (per process unless CACHES says otherwise). A
person's own decision forgets their count in the process that recorded it (`forget_badge`, from
`approvals.services`); requests opened or decided by others, and other processes' caches, catch
up within BADGE_SECONDS. The inbox page itself counts exactly.
"""

from django.core.cache import cache

from apps.approvals.services import inbox_count as count_for

BADGE_SECONDS = 5


def _badge_key(user) -> str:
    # With the moment the person joined: an id can come back after a rollback (SQLite, tests),
    # and a count must never be shown to another person.
    return f"approvals:inbox-badge:{user.pk}:{user.date_joined.timestamp()}"


def forget_badge(user) -> None:
    cache.delete(_badge_key(user))


def inbox_count(request):
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return {"approvals_inbox_count": 0}
    key = _badge_key(user)
    count = cache.get(key)
    if count is None:
        count = count_for(user)
        cache.set(key, count, BADGE_SECONDS)
    return {"approvals_inbox_count": count}
