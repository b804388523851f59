"""The parts that need no server: the generated module, Retry-After, backoff, the constructors."""

import subprocess
import sys
import typing
from datetime import datetime, timedelta, timezone
from email.utils import format_datetime
from pathlib import Path

import httpx
import pytest

import jobline_client
from jobline_client import TERMINAL_STATUSES, Client, JobStatus, _schema
from jobline_client._core import Core, backoff_delay, retry_after_seconds

HERE = Path(__file__).resolve().parent


def test_the_generated_schema_is_current() -> None:
    run = subprocess.run(
        [sys.executable, str(HERE.parent / "generate.py"), "--check"], capture_output=True, text=True
    )
    assert run.returncode == 0, run.stdout + run.stderr


def test_the_generator_is_deterministic(tmp_path: Path) -> None:
    outs = []
    for name in ("a.py", "b.py"):
        subprocess.run(
            [sys.executable, str(HERE.parent / "generate.py"), "--out", str(tmp_path / name)],
            check=True,
            capture_output=True,
        )
        outs.append((tmp_path / name).read_text())
    assert outs[0] == outs[1]


def test_generate_check_shows_a_diff_and_fails_on_a_stale_file(tmp_path: Path) -> None:
    stale = tmp_path / "_schema.py"
    stale.write_text(
        (HERE.parent / "src/jobline_client/_schema.py")
        .read_text()
        .replace("    queue: str\n", "    queue: int\n", 1)
    )
    run = subprocess.run(
        [sys.executable, str(HERE.parent / "generate.py"), "--check", "--out", str(stale)],
        capture_output=True,
        text=True,
    )
    assert run.returncode == 1
    assert "-    queue: int" in run.stdout and "+    queue: str" in run.stdout


def test_the_generated_types_resolve() -> None:
    for name in _schema.__all__:
        value = getattr(_schema, name)
        if isinstance(value, type) and issubclass(value, dict):
            typing.get_type_hints(value)  # every forward reference names a class of the module
    assert _schema.CreateJob.__required_keys__ == frozenset({"type"})
    assert "already_existed" in _schema.CreatedJob.__required_keys__
    assert "id" in _schema.CreatedJob.__required_keys__  # inherited from Job


def test_the_terminal_statuses_are_statuses_of_the_schema() -> None:
    assert TERMINAL_STATUSES <= set(typing.get_args(JobStatus))


def test_every_operation_the_client_calls_is_in_the_document() -> None:
    for op in ("createJob", "createJobs", "getJob", "listJobs", "cancelJob", "retryJob", "getStats"):
        assert op in _schema.OPERATIONS
    assert _schema.OPERATIONS["getJob"] == ("GET", "/v1/jobs/{id}")


def test_retry_after() -> None:
    assert retry_after_seconds(None) is None
    assert retry_after_seconds("0") == 0.0
    assert retry_after_seconds(" 2 ") == 2.0
    assert retry_after_seconds("-3") == 0.0
    assert retry_after_seconds("soon") is None
    assert retry_after_seconds("nan") is None
    now = datetime(2030, 1, 1, tzinfo=timezone.utc)
    later = format_datetime(now + timedelta(seconds=30), usegmt=True)
    assert retry_after_seconds(later, now=now.timestamp()) == pytest.approx(30)
    assert (
        retry_after_seconds(format_datetime(now - timedelta(seconds=30), usegmt=True), now=now.timestamp())
        == 0.0
    )


def test_backoff_doubles_with_jitter_up_to_the_cap() -> None:
    for attempt, ceiling in [(0, 0.5), (1, 1.0), (2, 2.0), (3, 4.0), (4, 8.0), (9, 8.0)]:
        assert backoff_delay(attempt, 0.5, 8.0, rand=lambda: 0.0) == ceiling / 2
        assert backoff_delay(attempt, 0.5, 8.0, rand=lambda: 1.0) == ceiling
        assert ceiling / 2 <= backoff_delay(attempt, 0.5, 8.0) <= ceiling


def test_path_parameters_are_escaped() -> None:
    core = Core("http://h:1/", "k", 0, 0.1, 1)
    assert core.url("getJob", id="a/b?c") == ("GET", "http://h:1/v1/jobs/a%2Fb%3Fc")
    assert core.headers["Authorization"] == "Bearer k"


def test_constructor_checks() -> None:
    with pytest.raises(ValueError):
        Client("")
    with pytest.raises(ValueError):
        Client("http://h", retries=-1)
    with pytest.raises(ValueError):
        Client(
            "http://h",
            transport=httpx.MockTransport(lambda r: httpx.Response(200)),
            http_client=httpx.Client(),
        )


def test_an_http_client_given_is_used_and_left_open() -> None:
    seen = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json={"by_status": {}})

    http = httpx.Client(transport=httpx.MockTransport(handler), headers={"X-Extra": "1"})
    with Client("http://jobline.test", "k", http_client=http) as client:
        assert client.stats() == {"by_status": {}}
    assert not http.is_closed
    assert seen[0].url == "http://jobline.test/v1/stats"
    assert seen[0].headers["Authorization"] == "Bearer k"
    assert seen[0].headers["X-Extra"] == "1"
    http.close()


def test_the_context_manager_closes_its_own_connections() -> None:
    with Client(
        "http://jobline.test", transport=httpx.MockTransport(lambda r: httpx.Response(200))
    ) as client:
        pass
    assert client._http.is_closed


def test_version() -> None:
    assert jobline_client.__version__ == "0.1.0"
