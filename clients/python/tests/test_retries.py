"""Retries against the real server, through a transport that fails the first attempts (Flaky): the
job is created once and every attempt carried the same Idempotency-Key."""

import time
import uuid
from typing import Any, Callable, List

import httpx
import pytest
from support import Flaky, creates

from jobline_client import JoblineConnectionError, JoblineError

FAST = {"backoff_base": 0.01, "backoff_max": 0.05}


def jobs_tagged(client: Any, tag: str) -> List[Any]:
    return list(client.list_jobs(correlation_id=tag))


@pytest.mark.parametrize(
    "plan",
    [["503"], ["429"], ["connect"], ["overloaded", "connect", "429"], ["drop"], ["503", "drop"]],
    ids=lambda plan: "+".join(plan),
)
def test_create_job_retries_with_the_same_key(
    make_client: Callable[..., Any], tag: str, plan: List[str]
) -> None:
    flaky = Flaky(plan, creates)
    client = make_client(transport=flaky, retries=3, **FAST)
    job = client.create_job({"type": "noop", "payload": {"plan": plan}, "correlation_id": tag})
    assert flaky.attempts == len(plan) + 1
    key = flaky.keys[0]
    assert key and flaky.keys == [key] * flaky.attempts
    # An answer lost after the server acted ("drop") comes back on the retry as the same job.
    assert job["already_existed"] is ("drop" in plan)
    assert job["idempotency_key"] == key
    found = jobs_tagged(client, tag)
    assert [j["id"] for j in found] == [job["id"]]
    assert found[0]["idempotency_key"] == key


def test_a_given_key_is_the_one_retried(make_client: Callable[..., Any], tag: str) -> None:
    flaky = Flaky(["drop", "503"], creates)
    client = make_client(transport=flaky, **FAST)
    job = client.create_job({"type": "noop", "correlation_id": tag}, idempotency_key=f"mine-{tag}")
    assert flaky.keys == [f"mine-{tag}"] * 3
    assert (job["idempotency_key"], job["already_existed"]) == (f"mine-{tag}", True)
    assert len(jobs_tagged(client, tag)) == 1


def test_each_create_job_call_gets_its_own_key(make_client: Callable[..., Any], tag: str) -> None:
    flaky = Flaky([], creates)
    client = make_client(transport=flaky)
    client.create_job({"type": "noop", "correlation_id": tag})
    client.create_job({"type": "noop", "correlation_id": tag})
    assert len(set(flaky.keys)) == 2
    assert len(jobs_tagged(client, tag)) == 2


def test_when_the_retries_run_out_the_last_error_is_raised(make_client: Callable[..., Any], tag: str) -> None:
    flaky = Flaky(["503"] * 5, creates)
    client = make_client(transport=flaky, retries=2, **FAST)
    with pytest.raises(JoblineError) as caught:
        client.create_job({"type": "noop", "correlation_id": tag})
    assert (caught.value.status, caught.value.code) == (503, "unavailable")
    assert flaky.attempts == 3
    assert jobs_tagged(client, tag) == []


def test_connection_errors_that_persist_raise_joblineconnectionerror(
    make_client: Callable[..., Any], tag: str
) -> None:
    flaky = Flaky(["connect"] * 5, creates)
    client = make_client(transport=flaky, retries=1, **FAST)
    with pytest.raises(JoblineConnectionError) as caught:
        client.create_job({"type": "noop", "correlation_id": tag})
    assert (caught.value.code, caught.value.status) == ("connection_error", None)
    assert isinstance(caught.value.__cause__, httpx.ConnectError)
    assert flaky.attempts == 2


def test_retries_zero_tries_once(make_client: Callable[..., Any], tag: str) -> None:
    flaky = Flaky(["429"], creates)
    client = make_client(transport=flaky, retries=0)
    with pytest.raises(JoblineError) as caught:
        client.create_job({"type": "noop", "correlation_id": tag})
    assert caught.value.status == 429
    assert flaky.attempts == 1


def test_retry_after_is_honoured(make_client: Callable[..., Any], tag: str) -> None:
    flaky = Flaky(["429"], creates, retry_after="1")
    client = make_client(transport=flaky, **FAST)
    started = time.monotonic()
    client.create_job({"type": "noop", "correlation_id": tag})
    # The backoff alone would wait at most 0.05 s.
    assert time.monotonic() - started >= 1.0
    assert flaky.attempts == 2


def test_a_retry_after_beyond_a_minute_is_not_waited_for(make_client: Callable[..., Any], tag: str) -> None:
    flaky = Flaky(["503"], creates, retry_after="3600")
    client = make_client(transport=flaky, **FAST)
    started = time.monotonic()
    with pytest.raises(JoblineError) as caught:
        client.create_job({"type": "noop", "correlation_id": tag})
    assert caught.value.status == 503 and flaky.attempts == 1
    assert time.monotonic() - started < 5


def test_create_jobs_retries_with_the_same_keys(make_client: Callable[..., Any], tag: str) -> None:
    seen: List[bytes] = []

    def batches(request: httpx.Request) -> bool:
        if request.url.path == "/v1/jobs/batch":
            seen.append(request.content)
            return True
        return False

    flaky = Flaky(["drop", "503"], batches)
    client = make_client(transport=flaky, **FAST)
    created = client.create_jobs(
        [{"type": "noop", "payload": {"i": i}, "correlation_id": tag} for i in range(2)]
    )
    assert flaky.attempts == 3 and len(set(seen)) == 1  # the same body, keys included, every time
    assert [j["already_existed"] for j in created] == [True, True]
    assert sorted(j["id"] for j in jobs_tagged(client, tag)) == sorted(j["id"] for j in created)


def test_gets_are_retried(make_client: Callable[..., Any], tag: str) -> None:
    flaky = Flaky(
        ["connect", "503", "drop"], lambda r: r.method == "GET" and r.url.path.startswith("/v1/jobs/")
    )
    client = make_client(transport=flaky, **FAST)
    job = make_client().create_job({"type": "noop", "correlation_id": tag})
    assert client.get_job(job["id"])["id"] == job["id"]
    assert flaky.attempts == 4


def test_cancel_is_retried_only_when_it_surely_was_not_handled(
    make_client: Callable[..., Any], tag: str
) -> None:
    plain = make_client()

    def cancels(request: httpx.Request) -> bool:
        return request.url.path.endswith("/cancel")

    # Refused before any handler ran: a failed connect, load shedding, 429. Retried.
    job = plain.create_job({"type": "noop", "correlation_id": tag, "delay_seconds": 3600})
    flaky = Flaky(["connect", "overloaded", "429"], cancels)
    assert make_client(transport=flaky, **FAST).cancel_job(job["id"])["status"] == "cancelled"
    assert flaky.attempts == 4
    # A 503 `unavailable` or a lost answer may come after the cancel happened: not retried.
    for step, error in (("503", JoblineError), ("drop", JoblineConnectionError)):
        job = plain.create_job({"type": "noop", "correlation_id": tag, "delay_seconds": 3600})
        flaky = Flaky([step], cancels)
        with pytest.raises(error):
            make_client(transport=flaky, **FAST).cancel_job(job["id"])
        assert flaky.attempts == 1
    assert plain.get_job(job["id"])["status"] == "cancelled"  # the dropped one did happen


def test_an_answer_that_is_not_the_apis_json_is_unexpected_response(
    make_client: Callable[..., Any], flavour: str
) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(502, text="<html>bad gateway</html>")

    transport: Any = httpx.MockTransport(handler)
    client = make_client(transport=transport, retries=0)
    with pytest.raises(JoblineError) as caught:
        client.get_job(str(uuid.uuid4()))
    assert (caught.value.code, caught.value.status) == ("unexpected_response", 502)
    assert "bad gateway" in caught.value.message
