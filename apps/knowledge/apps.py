"""knowledge: runbooks, the embedding index, suggestions, the optional LLM summary, evaluation."""
from django.apps import AppConfig

from apps.beat import schedule_every


class KnowledgeConfig(AppConfig):
    name = "apps.knowledge"
    label = "knowledge"

    def ready(self):
        from apps.knowledge import receivers

        receivers.connect()
        schedule_every(self, name="flowdeck: re-index changed runbooks", task="apps.knowledge.tasks.sync_runbooks",
                       seconds=600, description="Re-embeds the runbook sections whose text changed on disk.")
        schedule_every(self, name="flowdeck: learn evidence weights",
                       task="apps.knowledge.tasks.learn_evidence_weights",
                       seconds=24 * 3600, description="Re-learns from resolved incidents how much each kind of "
                       "evidence counts in root-cause suggestions.")
