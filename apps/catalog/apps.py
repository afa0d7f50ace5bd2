from django.apps import AppConfig


class CatalogConfig(AppConfig):
    name = "apps.catalog"
    label = "catalog"

    def ready(self) -> None:
        from apps.catalog import builtins  # noqa: F401  (registers the built-in types and batch.map's chunk task)
        from apps.catalog import checks  # noqa: F401  (registers the system checks)
