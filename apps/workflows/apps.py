from django.apps import AppConfig
from django.conf import settings

from apps.beat import schedule_every


class WorkflowsConfig(AppConfig):
    name = "apps.workflows"
    label = "workflows"

    def ready(self) -> None:
        schedule_every(self, name="flowdeck: sync workflows from Git", task="flowdeck.workflows.sync_git_sources",
                       seconds=settings.FLOWDECK_GIT_SYNC_SECONDS,
                       description="Fetches every linked Git source and syncs the workflows of a new commit.")
