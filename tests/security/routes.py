"""Every route of the console, read from the URL configuration, and the API operations of the
OpenAPI schema, so the access matrix and the fuzz run cover what the product serves today."""

import re
from dataclasses import dataclass
from functools import cache

from django.urls import URLPattern, URLResolver, get_resolver

API_PREFIX = "api/v1/"
# `<int:pk>` in path() routes, `(?P<app_label>...)` in the admin site's regex routes.
PARAMETER = re.compile(r"<(?:[^>:]+:)?(?P<name>[^>]+)>|\(\?P<(?P<group>\w+)>[^)]*\)")


def _name(match) -> str:
    return match["name"] or match["group"]


@dataclass(frozen=True)
class Route:
    pattern: str  # as Django writes it, e.g. "runs/<int:pk>/cancel/": the key of the access table
    name: str

    @property
    def is_api(self) -> bool:
        return self.pattern.startswith(API_PREFIX)

    @property
    def parameters(self) -> list[str]:
        return [_name(match) for match in PARAMETER.finditer(self.pattern)]

    @property
    def openapi_path(self) -> str:
        # drf-spectacular names a `pk` parameter `id` (its SCHEMA_COERCE_PATH_PK default).
        return "/" + PARAMETER.sub(lambda match: "{" + {"pk": "id"}.get(_name(match), _name(match)) + "}",
                                   self.pattern)

    def path(self, values: dict) -> str:
        return "/" + PARAMETER.sub(lambda match: str(values[_name(match)]), self.pattern).replace("^", "").replace("$", "")


def _walk(patterns, prefix: str = "", namespace: str = ""):
    for entry in patterns:
        if isinstance(entry, URLResolver):
            inner = f"{namespace}{entry.namespace}:" if entry.namespace else namespace
            yield from _walk(entry.url_patterns, prefix + str(entry.pattern), inner)
        elif isinstance(entry, URLPattern):
            yield Route(prefix + str(entry.pattern), namespace + (entry.name or ""))


@cache
def all_routes() -> tuple[Route, ...]:
    return tuple(_walk(get_resolver().url_patterns))


@cache
def openapi_schema() -> dict:
    """The schema /api/schema/ serves, from drf-spectacular's generator."""
    from drf_spectacular.generators import SchemaGenerator

    return SchemaGenerator().get_schema(request=None, public=True)


def openapi_methods() -> dict[str, set[str]]:
    """OpenAPI path -> its upper-case methods."""
    verbs = {"get", "post", "put", "patch", "delete"}
    return {path: {verb.upper() for verb in item if verb in verbs} for path, item in openapi_schema()["paths"].items()}
