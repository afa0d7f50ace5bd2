"""incidents: incidents opened from failures or imported from history, triage, resolution."""
from django.apps import AppConfig


class IncidentsConfig(AppConfig):
    name = "apps.incidents"
    label = "incidents"

    def ready(self):
        from apps.incidents import receivers

        receivers.connect()
