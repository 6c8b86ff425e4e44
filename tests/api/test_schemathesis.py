"""Schema-driven fuzzing: schemathesis against the real app's ``/openapi.json``.

Every operation, as a county, a town and a village account, with a few generated
requests each (bounded: ``MAX_EXAMPLES``, no deadline, derandomized so a failure is
reproducible). The checks: no 5xx, status codes, content types, headers and bodies as
the schema declares them. Operations that would end the session they run under
(changing or resetting a password) run last.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import pytest

from .conftest import ADMIN, LiveServer, activate, login, make_settings, seed_admin

if TYPE_CHECKING:  # imported where used: only the worker that runs this module pays
    import schemathesis

MAX_EXAMPLES = 4  # per operation and role (6 made ~530 requests, ~40 ms of CPU each)
HOUSEHOLDS = """household_id,head_name,town,village,category,site_id,lat,lon
F1,张三,龙驹寨镇,东村,鉴定安全,,33.70,110.30
F2,李四,龙驹寨镇,东村,保障安全,S1,33.701,110.301
"""


def _checks() -> list[Callable[..., Any]]:
    from schemathesis import checks

    return [
        checks.not_a_server_error,
        checks.status_code_conformance,
        checks.content_type_conformance,
        checks.response_headers_conformance,
        checks.response_schema_conformance,
        checks.unsupported_method,  # 405 with Allow for a method the path lacks (OPTIONS too)
        checks.ignored_auth,  # an operation behind a token refuses a request without one
    ]


@pytest.fixture(scope="module")
def fuzz_target(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, dict]]:
    tmp: Path = tmp_path_factory.mktemp("schemathesis")
    settings_ = make_settings(tmp, f"sqlite:///{tmp / 'photocheck.sqlite3'}")
    seed_admin(settings_)
    server = LiveServer(settings_)
    server.start()
    with httpx.Client(base_url=server.url + "/api/v1", timeout=120) as client:
        county = login(client, *ADMIN)
        r = client.post("/households/import", content=HOUSEHOLDS.encode(),
                        headers={**county, "content-type": "text/csv"})  # fmt: skip
        assert r.status_code == 200, r.text
        account = r.json()["accounts"][0]
        village = activate(client, account["username"], account["password"])
        r = client.post("/users/town", json={"username": "town1", "town": "龙驹寨镇"},
                        headers=county)  # fmt: skip
        assert r.status_code == 201, r.text
        town = activate(client, "town1", r.json()["password"])
        site = {"site_id": "S1", "name": "幸福家园", "kind": "relocation", "town": "龙驹寨镇"}
        assert client.post("/sites", json=site, headers=county).status_code == 201
    yield server.url, {"county": county, "town": town, "village": village}
    server.stop()


def _fuzz(operation: Any, base: str, headers: dict[str, str]) -> int:
    """Run the generated requests of one operation under one account; how many ran."""
    from hypothesis import HealthCheck, given, settings

    calls: list[int] = []
    checks = _checks()

    @settings(
        max_examples=MAX_EXAMPLES,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(case=operation.as_strategy())
    def run(case: schemathesis.Case) -> None:
        calls.append(1)
        case.call_and_validate(base_url=base, headers=headers, checks=checks, timeout=60)

    run()
    return len(calls)


def test_fuzz_every_operation(fuzz_target: tuple[str, dict]) -> None:
    import schemathesis

    base, tokens = fuzz_target
    schema = schemathesis.openapi.from_dict(httpx.get(base + "/openapi.json", timeout=30).json())
    started = time.perf_counter()
    operations = [result.ok() for result in schema.get_all_operations()]
    operations.sort(key=lambda op: _label(op) in _LAST)  # stable: the rest in schema order
    cases = 0
    failures: list[str] = []
    for operation in operations:
        label = _label(operation)
        for role, headers in tokens.items():
            try:
                cases += _fuzz(operation, base, headers)
            except (Exception, BaseExceptionGroup) as exc:  # collected, reported together
                failures.append(f"{label} as {role}: {str(exc)[:1500]}")
    seconds = time.perf_counter() - started
    print(f"schemathesis: {len(operations)} operations, {cases} cases, {seconds:.1f} s")
    assert not failures, "\n\n".join(failures)


# Last, as they could end the sessions the others run under (a password changed or reset).
_LAST = {"POST /api/v1/auth/change-password", "POST /api/v1/users/{username}/reset-password"}


def _label(operation: Any) -> str:
    return f"{operation.method.upper()} {operation.path}"


def test_allow_names_every_method_of_the_path(fuzz_target: tuple[str, dict]) -> None:
    base, _ = fuzz_target
    for method, path, allow in (
        ("OPTIONS", "/api/v1/sites", "GET, POST"),  # two routes: Starlette named only one
        ("DELETE", "/api/v1/sites/S1", "GET, PATCH"),
        ("OPTIONS", "/api/v1/auth/token", "POST"),
        ("PUT", "/api/v1/villages/1/drone-package", "GET, HEAD"),
    ):
        r = httpx.request(method, base + path, timeout=30)
        assert r.status_code == 405, (method, path, r.text)
        assert r.headers["allow"] == allow, (method, path, r.headers["allow"])
        assert r.json()["error"]["code"] == "METHOD_NOT_ALLOWED"
