"""Navigation context available to every page (badges are filled in by the apps that own them)."""

from django.conf import settings


def navigation(request):
    return {"site_url": settings.SITE_URL}
