"""knowledge: runbooks, the embedding index, suggestions, the optional LLM summary, evaluation."""
from django.apps import AppConfig


class KnowledgeConfig(AppConfig):
    name = "apps.knowledge"
    label = "knowledge"

    def ready(self):
        from apps.knowledge import receivers

        receivers.connect()
