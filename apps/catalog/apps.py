from django.apps import AppConfig


class CatalogConfig(AppConfig):
    name = "apps.catalog"
    label = "catalog"

    def ready(self) -> None:
        from apps.catalog import checks  # noqa: F401  (registers the system checks)
        from apps.catalog.registry import load_step_types

        # Every process knows every step type (and the Celery tasks some of them bring) from the start.
        load_step_types()
