"""incidents: incidents opened from failures or imported from history, triage, resolution."""
import importlib.util

from django.apps import AppConfig


class IncidentsConfig(AppConfig):
    name = "apps.incidents"
    label = "incidents"

    def ready(self):
        # The engine's signals may not exist yet in every deployment of this code; without
        # them incidents are still opened by hand and imported.
        if importlib.util.find_spec("apps.runs.signals") is not None:
            from apps.incidents import receivers

            receivers.connect()
