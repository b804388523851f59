"""Every call of the client against a real `jobline serve` (and `jobline worker`), with Client and
AsyncClient alike (the `flavour` fixture)."""

import time
import uuid
from typing import Any, Callable

import pytest

from jobline_client import JoblineError, WaitTimeoutError

FAR = 30 * 24 * 3600  # delay_seconds of a job no worker takes during the run


def test_create_job_returns_the_new_job(client: Any, tag: str) -> None:
    job = client.create_job({"type": "noop", "payload": {"n": 1}, "correlation_id": tag, "priority": "P1"})
    assert job["already_existed"] is False
    assert job["type"] == "noop"
    assert job["payload"] == {"n": 1}
    assert job["priority"] == 1
    assert job["correlation_id"] == tag
    assert job["status"] in ("pending", "processing", "completed")
    # No key given: the client made one, a uuid4.
    assert uuid.UUID(job["idempotency_key"]).version == 4


def test_the_same_key_twice_gives_the_same_job(client: Any, tag: str) -> None:
    key = f"key-{uuid.uuid4()}"
    body = {"type": "noop", "payload": {"n": 2}, "correlation_id": tag}
    first = client.create_job(body, idempotency_key=key)
    second = client.create_job(body, idempotency_key=key)
    assert first["already_existed"] is False
    assert second["already_existed"] is True
    assert second["id"] == first["id"]
    assert second["idempotency_key"] == key


def test_a_key_in_the_body_is_the_key_sent(client: Any, tag: str) -> None:
    key = f"key-{uuid.uuid4()}"
    first = client.create_job({"type": "noop", "correlation_id": tag, "idempotency_key": key})
    again = client.create_job(
        {"type": "noop", "correlation_id": tag, "idempotency_key": key}, idempotency_key=key
    )
    assert first["idempotency_key"] == key
    assert (again["id"], again["already_existed"]) == (first["id"], True)
    with pytest.raises(ValueError):
        client.create_job({"type": "noop", "idempotency_key": key}, idempotency_key="another")


def test_the_same_key_with_another_body_is_a_conflict(client: Any, tag: str) -> None:
    key = f"key-{uuid.uuid4()}"
    client.create_job({"type": "noop", "payload": {"n": 1}, "correlation_id": tag}, idempotency_key=key)
    with pytest.raises(JoblineError) as caught:
        client.create_job({"type": "noop", "payload": {"n": 2}, "correlation_id": tag}, idempotency_key=key)
    assert caught.value.code == "idempotency_conflict"
    assert caught.value.status == 409
    assert key in caught.value.message


@pytest.mark.parametrize(
    "body, field",
    [
        ({"type": "not a type!"}, "type"),
        ({"type": "noop", "priority": 9}, "priority"),
        ({"type": "noop", "delay_seconds": 5, "run_after": "2030-01-01T00:00:00Z"}, "delay_seconds"),
        ({"type": "noop", "colour": "blue"}, "colour"),
    ],
)
def test_bad_input_raises_the_apis_code(client: Any, body: Any, field: str) -> None:
    with pytest.raises(JoblineError) as caught:
        client.create_job(body)
    assert (caught.value.code, caught.value.status) == ("validation_failed", 422)
    assert field in caught.value.message


def test_a_bad_api_key_is_401_unauthorized(make_client: Callable[..., Any]) -> None:
    bad = make_client(api_key="not-the-key-" + uuid.uuid4().hex)
    for call in (lambda: bad.create_job({"type": "noop"}), bad.stats, lambda: bad.get_job(str(uuid.uuid4()))):
        with pytest.raises(JoblineError) as caught:
            call()
        assert (caught.value.status, caught.value.code) == (401, "unauthorized")


def test_no_api_key_is_401_unauthorized(make_client: Callable[..., Any]) -> None:
    anonymous = make_client(api_key=None)
    with pytest.raises(JoblineError) as caught:
        anonymous.stats()
    assert (caught.value.status, caught.value.code) == (401, "unauthorized")


def test_create_jobs_makes_a_batch_in_order(client: Any, tag: str) -> None:
    bodies = [{"type": "noop", "payload": {"i": i}, "correlation_id": tag} for i in range(3)]
    created = client.create_jobs(bodies)
    assert [j["payload"] for j in created] == [{"i": 0}, {"i": 1}, {"i": 2}]
    assert [j["already_existed"] for j in created] == [False, False, False]
    assert len({j["id"] for j in created}) == 3
    # Every job got a key of its own, so the batch could be resent: resending it with those
    # keys changes nothing.
    keys = [j["idempotency_key"] for j in created]
    assert all(keys) and len(set(keys)) == 3
    again = client.create_jobs([{**b, "idempotency_key": k} for b, k in zip(bodies, keys)])
    assert [j["id"] for j in again] == [j["id"] for j in created]
    assert [j["already_existed"] for j in again] == [True, True, True]


def test_a_bad_batch_creates_nothing(client: Any, tag: str) -> None:
    with pytest.raises(JoblineError) as caught:
        client.create_jobs(
            [{"type": "noop", "correlation_id": tag}, {"type": "bad type!", "correlation_id": tag}]
        )
    assert (caught.value.code, caught.value.status) == ("validation_failed", 422)
    assert "jobs[1]" in caught.value.message
    assert list(client.list_jobs(correlation_id=tag)) == []


def test_get_job(client: Any, tag: str) -> None:
    created = client.create_job({"type": "noop", "correlation_id": tag, "delay_seconds": FAR})
    job = client.get_job(created["id"])
    assert job["id"] == created["id"]
    assert job["status"] == "pending"
    assert "already_existed" not in job


@pytest.mark.parametrize("job_id", [str(uuid.uuid4()), "not-a-uuid", "a/b?c"])
def test_get_job_of_an_unknown_id_is_404_not_found(client: Any, job_id: str) -> None:
    with pytest.raises(JoblineError) as caught:
        client.get_job(job_id)
    assert (caught.value.status, caught.value.code) == (404, "not_found")


def test_list_jobs_follows_the_cursor_across_pages(client: Any, tag: str) -> None:
    ids = [
        client.create_job({"type": "noop", "payload": {"i": i}, "correlation_id": tag})["id"]
        for i in range(7)
    ]
    first = client.list_jobs_page(correlation_id=tag, limit=3)
    assert len(first["jobs"]) == 3 and first["next_cursor"]
    listed = [j["id"] for j in client.list_jobs(correlation_id=tag, page_size=3)]
    assert sorted(listed) == sorted(ids)  # each exactly once
    assert listed == ids[::-1]  # newest first
    assert [j["id"] for j in client.list_jobs(correlation_id=tag, page_size=500)] == listed


def test_list_jobs_filters(client: Any, tag: str) -> None:
    kept = client.create_job({"type": "noop", "correlation_id": tag, "delay_seconds": FAR})
    gone = client.create_job({"type": "noop", "correlation_id": tag, "delay_seconds": FAR})
    client.cancel_job(gone["id"])
    assert [j["id"] for j in client.list_jobs(correlation_id=tag, status="cancelled")] == [gone["id"]]
    assert [j["id"] for j in client.list_jobs(correlation_id=tag, status="pending")] == [kept["id"]]
    assert list(client.list_jobs(correlation_id=tag, type="other.type")) == []


def test_a_bad_cursor_is_invalid_cursor(client: Any) -> None:
    with pytest.raises(JoblineError) as caught:
        list(client.list_jobs(cursor="not-a-cursor"))
    assert (caught.value.status, caught.value.code) == (400, "invalid_cursor")


def test_cancel_then_retry(client: Any, tag: str) -> None:
    job = client.create_job({"type": "noop", "correlation_id": tag, "delay_seconds": FAR, "max_attempts": 2})
    cancelled = client.cancel_job(job["id"])
    assert cancelled["status"] == "cancelled" and cancelled["completed_at"]
    with pytest.raises(JoblineError) as caught:
        client.cancel_job(job["id"])
    assert (caught.value.status, caught.value.code) == (409, "invalid_state")
    retried = client.retry_job(job["id"], max_attempts=3)
    assert retried["status"] in ("pending", "processing", "completed")
    assert retried["max_attempts"] == retried["attempts"] + 3  # that many more attempts than made so far
    with pytest.raises(JoblineError) as caught:
        client.cancel_job(str(uuid.uuid4()))
    assert (caught.value.status, caught.value.code) == (404, "not_found")


def test_retry_of_a_job_that_is_not_failed_or_cancelled_is_invalid_state(client: Any, tag: str) -> None:
    job = client.create_job({"type": "noop", "correlation_id": tag, "delay_seconds": FAR})
    with pytest.raises(JoblineError) as caught:
        client.retry_job(job["id"])
    assert (caught.value.status, caught.value.code) == (409, "invalid_state")
    client.cancel_job(job["id"])
    assert client.retry_job(job["id"])["status"] in ("pending", "processing", "completed")


def test_stats(client: Any, tag: str) -> None:
    client.create_job({"type": "noop", "correlation_id": tag, "delay_seconds": FAR})
    stats = client.stats()
    assert set(stats["by_status"]) == {"pending", "processing", "completed", "failed", "cancelled"}
    assert stats["by_status"]["pending"] >= 1
    assert stats["total"] >= 1
    assert stats["health"] in ("healthy", "degraded", "unhealthy")
    assert isinstance(stats["health_reasons"], list)
    assert stats["dead_letter"] == stats["dead_letter_jobs"] + stats["dead_letter_outbox"]


def test_wait_for_job_returns_when_the_worker_completes_it(client: Any, tag: str) -> None:
    job = client.create_job({"type": "noop", "payload": {"wait": True}, "correlation_id": tag})
    done = client.wait_for_job(job["id"], timeout=60, interval=0.1)
    assert done["id"] == job["id"]
    assert done["status"] == "completed"
    assert done["attempts"] == 1
    assert done["completed_at"]


def test_wait_for_job_returns_a_failed_job(client: Any, tag: str) -> None:
    job = client.create_job({"type": "fail", "payload": {"permanent": True}, "correlation_id": tag})
    failed = client.wait_for_job(job["id"], timeout=60, interval=0.1)
    assert failed["status"] == "failed"
    assert failed["failure_reason"]


def test_wait_for_job_returns_a_cancelled_job_at_once(client: Any, tag: str) -> None:
    job = client.create_job({"type": "noop", "correlation_id": tag, "delay_seconds": FAR})
    client.cancel_job(job["id"])
    started = time.monotonic()
    assert client.wait_for_job(job["id"], timeout=30, interval=5)["status"] == "cancelled"
    assert time.monotonic() - started < 5


def test_wait_for_job_times_out_on_a_job_that_never_runs(client: Any, tag: str) -> None:
    job = client.create_job({"type": "noop", "correlation_id": tag, "delay_seconds": FAR})
    started = time.monotonic()
    with pytest.raises(WaitTimeoutError) as caught:
        client.wait_for_job(job["id"], timeout=0.6, interval=0.1)
    waited = time.monotonic() - started
    assert 0.6 <= waited < 10
    error = caught.value
    assert isinstance(error, JoblineError) and isinstance(error, TimeoutError)
    assert (error.code, error.status, error.job_id) == ("wait_timeout", None, job["id"])
    assert error.job["status"] == "pending"
    client.cancel_job(job["id"])
