"""A bounded fuzz run of the REST API: schemathesis generates requests from the OpenAPI schema
(drf-spectacular's) for every operation, sent as an operator's and as a platform admin's token,
and none may answer a server error. Half the examples name the console's real objects in the
path (tests/security/world.py), so the views get past their lookups; each example runs in a
savepoint rolled back at once. Hypothesis is derandomized: a failure reproduces on every run."""

import json
from urllib.parse import urlencode

import pytest
import schemathesis
from django.db import transaction
from hypothesis import HealthCheck, Phase, given, settings, strategies as st

from tests.security.conftest import SIZES
from tests.security.routes import all_routes, openapi_schema
from tests.security.test_access_matrix import declared, path_values

# Examples per operation and caller: ~55 operations x 2 tokens x 5 stays near 20 s.
EXAMPLES = 5
CALLERS = ("operator", "admin")
OPERATIONS = [result.ok() for result in schemathesis.openapi.from_dict(openapi_schema()).get_all_operations()]
ROUTES = {route.openapi_path: route for route in all_routes() if route.is_api}


def _real_path_parameters(world, operation) -> dict:
    route = ROUTES[operation.path]
    values = path_values(world, route, declared(route)[0])
    return {{"pk": "id"}.get(name, name): value for name, value in values.items()}


def _send(client, case):
    query = "?" + urlencode(case.query, doseq=True) if case.query else ""
    path = case.formatted_path + query
    headers = {f"HTTP_{name.upper().replace('-', '_')}": str(value) for name, value in (case.headers or {}).items()
               if name.lower() not in ("authorization", "content-type", "content-length")}
    if case.body is None or isinstance(case.body, schemathesis.core.NotSet):
        return client.generic(case.method, path, **headers)
    if case.media_type == "application/x-www-form-urlencoded" and isinstance(case.body, dict) \
            and not any(isinstance(value, (dict, list)) for value in case.body.values()):
        return client.generic(case.method, path, urlencode(case.body), content_type=case.media_type, **headers)
    # JSON otherwise: the schema also lists multipart, which cannot carry the nested values generated.
    return client.generic(case.method, path, json.dumps(case.body), content_type="application/json", **headers)


@pytest.mark.parametrize("caller", CALLERS)
@pytest.mark.parametrize("operation", OPERATIONS, ids=[f"{op.method.upper()} {op.path}" for op in OPERATIONS])
def test_no_generated_request_gets_a_server_error(console, operation, caller):
    client = console.client(caller, "token")
    real = _real_path_parameters(console, operation)
    SIZES["fuzz_operations"] += caller == CALLERS[0]
    SIZES["fuzz_callers"] = len(CALLERS)

    @settings(max_examples=EXAMPLES, deadline=None, database=None, derandomize=True,
              phases=[Phase.explicit, Phase.generate], suppress_health_check=list(HealthCheck))
    @given(case=operation.as_strategy(), use_real_ids=st.booleans())
    def answered_without_server_error(case, use_real_ids):
        if use_real_ids:
            case.path_parameters = {**(case.path_parameters or {}), **real}
        SIZES["fuzz_examples"] += 1
        with transaction.atomic():
            response = _send(client, case)
            transaction.set_rollback(True)
        assert response.status_code < 500, (
            f"{case.method} {case.formatted_path} query={case.query} body={case.body!r} as the {caller}'s token "
            f"answered {response.status_code}: {response.content[:500]!r}")

    answered_without_server_error()
