"""Project settings plus the triggers app, until apps.settings lists it (see the triggers report)."""

from apps.settings import *  # noqa: F403

if "apps.triggers" not in INSTALLED_APPS:  # noqa: F405
    INSTALLED_APPS = [*INSTALLED_APPS, "apps.triggers"]  # noqa: F405
    ROOT_URLCONF = "tests.triggers.urls"
