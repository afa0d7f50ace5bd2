"""Built-in step types. Each module registers its types when imported."""

from apps.catalog.builtins import basic, batch, data_check, http, notify, sql  # noqa: F401
