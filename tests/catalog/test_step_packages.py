"""Step types from installed packages: the example package (examples/flowdeck-example-steps,
installed by `make setup`) is listed with its package and version and runs in a workflow; a
broken package is reported by a system check naming it, and every other type still loads."""

import sys
from importlib.metadata import Distribution

import pytest
from django.urls import reverse

from apps.catalog import registry
from apps.catalog.checks import step_type_packages_check
from apps.runs import engine
from apps.runs.models import RunState, StepAttempt
from tests.runs.factories import make_version, step

pytestmark = pytest.mark.django_db

EXAMPLE = "example.convert_amounts"
FAKES = "tests.catalog.step_packages"


def test_the_example_type_is_listed_with_its_package_and_version(client_for, api_for, viewer):
    page = client_for(viewer).get(reverse("catalog:list"), {"q": "convert"}).content.decode()
    assert f"<code>{EXAMPLE}</code>" in page and "From package <code>flowdeck-example-steps</code> 0.1.0" in page
    builtin = client_for(viewer).get(reverse("catalog:list"), {"q": "http"}).content.decode()
    assert "<code>http.request</code>" in builtin and "From package" not in builtin
    detail = client_for(viewer).get(reverse("catalog:detail", args=[EXAMPLE])).content.decode()
    assert "<code>flowdeck-example-steps</code> 0.1.0 (installed" in detail and "Output schema" in detail
    api = api_for(viewer)
    listed = api.get(reverse("api-step-types")).json()
    types = {t["name"]: t for t in (listed["results"] if isinstance(listed, dict) else listed)}
    assert (types[EXAMPLE]["package"], types[EXAMPLE]["version"]) == ("flowdeck-example-steps", "0.1.0")
    assert (types["http.request"]["package"], types["http.request"]["version"]) == (None, None)
    described = api.get(reverse("api-step-type", args=[EXAMPLE])).json()
    assert described["output_schema"]["required"] == ["currency", "total", "converted", "rejected"]


def test_the_example_type_runs_in_a_workflow(team, operator, drive):
    version = make_version(team, [step("convert", EXAMPLE, params={
        "amounts": [{"invoice": "INV-1", "amount": "100", "currency": "USD"},
                    {"invoice": "INV-2", "amount": "7.5", "currency": "EUR"},
                    {"invoice": "INV-3", "amount": "3", "currency": "JPY"}],
        "rates": {"USD": 0.9}, "to": "EUR", "dataset": "s3://ledger/2026-11.json"})])
    run = drive(engine.start_run(operator, version))
    assert run.state == RunState.SUCCEEDED
    attempt = StepAttempt.objects.get(step_run__run=run)
    assert attempt.output["total"] == "97.50" and attempt.output["rejected"] == [{"index": 2,
                                                                                  "reason": "no rate for JPY"}]
    assert (attempt.records_in, attempt.records_out, attempt.records_rejected) == (3, 2, 1)
    assert [(d.direction, d.uri) for d in attempt.datasets.all()] == [("in", "s3://ledger/2026-11.json")]


class FakeDistribution(Distribution):
    """An installed distribution as importlib.metadata reads one, without installing anything."""

    def __init__(self, name: str, **entry_points: str):
        lines = "".join(f"{key} = {value}\n" for key, value in entry_points.items())
        self._files = {"METADATA": f"Metadata-Version: 2.1\nName: {name}\nVersion: 1.2.3\n",
                       "entry_points.txt": f"[{registry.ENTRY_POINT_GROUP}]\n{lines}"}

    def read_text(self, filename):
        return self._files.get(filename)

    def locate_file(self, path):
        return path


@pytest.fixture
def installed(monkeypatch):
    """`installed(*distributions)` loads the step types as a fresh process would with only those
    packages installed; the registry and the fake modules are put back afterwards."""
    monkeypatch.setattr(registry, "_REGISTRY", {name: t for name, t in registry._REGISTRY.items() if not t.package})
    monkeypatch.setattr(registry, "_PROBLEMS", [])

    def install(*distributions):
        monkeypatch.setattr(registry, "entry_points", lambda group: [
            entry_point for distribution in distributions for entry_point in distribution.entry_points
            if entry_point.group == group])
        monkeypatch.setattr(registry, "_loaded", False)
        registry.load_step_types()

    yield install
    for module in [name for name in sys.modules if name.startswith(f"{FAKES}.")]:
        del sys.modules[module]


def test_broken_packages_are_reported_by_name_and_the_other_types_still_load(installed, client_for, platform_admin):
    installed(FakeDistribution("missing-steps", missing=f"{FAKES}.no_such_module"),
              FakeDistribution("bad-schema-steps", bad=f"{FAKES}.bad_schema"),
              FakeDistribution("duplicate-steps", dup=f"{FAKES}.duplicate"),
              FakeDistribution("good-steps", good=f"{FAKES}.good"))
    warnings = step_type_packages_check()
    assert [w.id for w in warnings] == ["flowdeck.W003"] * 3
    by_package = {w.obj: w.msg for w in warnings}
    assert set(by_package) == {"missing-steps 1.2.3", "bad-schema-steps 1.2.3", "duplicate-steps 1.2.3"}
    assert f"No module named '{FAKES}.no_such_module'" in by_package["missing-steps 1.2.3"]
    assert ("test.package.bad_schema: params_schema is not a valid JSON Schema at properties/count/minimum: "
            "'zero' is not of type 'number'") in by_package["bad-schema-steps 1.2.3"]
    assert "step type 'http.request' is already registered (built in)" in by_package["duplicate-steps 1.2.3"]
    assert "dup = tests.catalog.step_packages.duplicate" in warnings[2].hint
    names = {t.name for t in registry.all_step_types()}
    assert "test.package.good" in names and {"http.request", "sql.query", "batch.map"} <= names
    assert not names & {"test.package.bad_schema", "test.package.fine_sibling"}  # all of a package, or none
    assert registry.get_step_type("http.request").package is None  # the built-in, not the impostor
    assert registry.get_step_type("test.package.good").source == "good-steps 1.2.3"
    page = client_for(platform_admin).get(reverse("catalog:list"))
    assert page.status_code == 200
    assert "3 step type packages could not be loaded" in page.content.decode()
    assert "<code>duplicate-steps 1.2.3</code>" in page.content.decode()


def test_members_are_not_shown_the_package_problems(installed, client_for, viewer):
    installed(FakeDistribution("missing-steps", missing=f"{FAKES}.no_such_module"))
    page = client_for(viewer).get(reverse("catalog:list"), {"q": "http"}).content.decode()
    assert "<code>http.request</code>" in page and "could not be loaded" not in page


def test_packages_that_load_raise_no_warning(installed):
    installed(FakeDistribution("good-steps", good=f"{FAKES}.good"))
    assert step_type_packages_check() == []
