"""What Client and AsyncClient share: every operation, written once, without I/O.

An operation is a generator that yields actions and gets their outcome back:

- ``Send``: one HTTP attempt; the driver sends back the ``httpx.Response``
  or throws the ``httpx.TransportError`` into the generator;
- ``Sleep``: the driver waits that long (``time.sleep`` or
  ``asyncio.sleep``) and sends back None.

The generator's return value is the operation's result; it raises
JoblineError on failure. So retries, backoff, ``Retry-After``, error
decoding and ``wait_for_job``'s polling exist once, and each client only
runs the generators (``Client._run``, ``AsyncClient._run``).
"""

import email.utils
import json
import math
import random
import time
import uuid
from dataclasses import dataclass, field
from datetime import timezone
from typing import (
    Any,
    Callable,
    Dict,
    FrozenSet,
    Generator,
    List,
    Literal,
    Mapping,
    Optional,
    Sequence,
    Tuple,
    TypeVar,
    Union,
)
from urllib.parse import quote

import httpx

from ._errors import JoblineConnectionError, JoblineError, WaitTimeoutError
from ._schema import (
    OPERATIONS,
    CreatedJob,
    CreateJob,
    Job,
    JobList,
    JobStatus,
    JobType,
    Stats,
)

__version__ = "0.1.0"

#: The statuses a job does not leave by itself (the JobStatus schema says so).
TERMINAL_STATUSES: FrozenSet[JobStatus] = frozenset({"completed", "failed", "cancelled"})

#: Answers worth another attempt: the server is shedding load or a
#: dependency is down for a moment.
RETRY_STATUSES = frozenset({429, 503})

#: A ``Retry-After`` longer than this is not waited for: the error is raised.
MAX_RETRY_AFTER = 60.0


@dataclass(frozen=True)
class Send:
    method: str
    url: str
    params: Optional[Dict[str, Any]] = None
    json: Any = None
    has_body: bool = False
    headers: Dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Sleep:
    seconds: float


Action = Union[Send, Sleep]
T = TypeVar("T")
#: An operation whose result is a T.
Op = Generator[Action, Any, T]

#: The constructors' default timeout, in seconds, marked so that a client
#: given an http_client keeps that client's own timeout unless told one.
DEFAULT_TIMEOUT = 10.0
UNSET: Any = object()

#: How safe a request is to send again:
#: "idempotent": a GET, or a create carrying an idempotency key: every
#:   network error, 429 and 503 is retried;
#: "unsent": a state change without a key (cancel, retry): retried only when
#:   it surely reached no handler: a failed connect, 429, or 503 `overloaded`
#:   (load shedding answers before any handler runs).
Safety = Literal["idempotent", "unsent"]


def retry_after_seconds(value: Optional[str], now: Optional[float] = None) -> Optional[float]:
    """The wait a ``Retry-After`` header asks for (seconds or an HTTP date); None if absent or unreadable."""
    if value is None:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=timezone.utc)
        seconds = when.timestamp() - (time.time() if now is None else now)
    if math.isnan(seconds) or math.isinf(seconds):
        return None
    return max(0.0, seconds)


def backoff_delay(attempt: int, base: float, cap: float, rand: Callable[[], float] = random.random) -> float:
    """Exponential backoff with jitter before retry number ATTEMPT + 1 (0-based).

    The ceiling doubles from BASE up to CAP; the delay is drawn between half
    the ceiling and the ceiling ("equal jitter"), so retries of many clients
    spread out but none retries at once.
    """
    ceiling = min(cap, base * 2.0**attempt)
    return ceiling / 2 + rand() * ceiling / 2


def decode_error(response: httpx.Response) -> JoblineError:
    """The JoblineError for a non-2xx answer: the API's ``{"error": {"code", "message"}}`` when it is that."""
    status = response.status_code
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict) and isinstance(body.get("error"), dict):
        err = body["error"]
        if isinstance(err.get("code"), str):
            return JoblineError(err["code"], str(err.get("message", "")), status, body)
    text = response.text.strip()
    reason = response.reason_phrase or "error"
    return JoblineError(
        "unexpected_response",
        f"HTTP {status} {reason}" + (f": {text[:200]}" if text else ""),
        status,
        body,
    )


def decode_ok(response: httpx.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        raise JoblineError(
            "unexpected_response",
            f"HTTP {response.status_code} with a body that is not JSON: {response.text[:200]!r}",
            response.status_code,
        ) from None


class Core:
    """Configuration and the operations, shared by Client and AsyncClient."""

    def __init__(
        self,
        base_url: str,
        api_key: Optional[str],
        retries: int,
        backoff_base: float,
        backoff_max: float,
    ) -> None:
        if not base_url:
            raise ValueError("base_url is required, e.g. http://127.0.0.1:3000")
        if retries < 0:
            raise ValueError("retries must be >= 0")
        self.base_url = base_url.rstrip("/")
        self.retries = retries
        self.backoff_base = backoff_base
        self.backoff_max = backoff_max
        self.headers = {
            "Accept": "application/json",
            "User-Agent": f"jobline-client-python/{__version__}",
        }
        if api_key:
            self.headers["Authorization"] = f"Bearer {api_key}"

    # -- one request, with its retries --------------------------------------

    def url(self, operation_id: str, **path: str) -> Tuple[str, str]:
        """(method, absolute URL) of an operation of the OpenAPI document, path parameters filled in."""
        method, template = OPERATIONS[operation_id]
        for name, value in path.items():
            template = template.replace("{" + name + "}", quote(str(value), safe=""))
        return method, self.base_url + template

    def request(
        self,
        operation_id: str,
        *,
        path: Optional[Mapping[str, str]] = None,
        params: Optional[Dict[str, Any]] = None,
        body: Any = None,
        has_body: bool = False,
        headers: Optional[Mapping[str, str]] = None,
        safety: Safety = "idempotent",
    ) -> Op[Any]:
        """One operation's request, retried as SAFETY allows; returns the decoded 2xx body."""
        method, url = self.url(operation_id, **(path or {}))
        send = Send(
            method,
            url,
            {k: v for k, v in (params or {}).items() if v is not None} or None,
            body,
            has_body,
            {**self.headers, **(headers or {})},
        )
        attempt = 0
        while True:
            try:
                response = yield send
            except httpx.TransportError as exc:
                unsent = isinstance(exc, (httpx.ConnectError, httpx.ConnectTimeout))
                if attempt >= self.retries or not (safety == "idempotent" or (safety == "unsent" and unsent)):
                    raise JoblineConnectionError(f"{method} {url}: {type(exc).__name__}: {exc}") from exc
                delay = backoff_delay(attempt, self.backoff_base, self.backoff_max)
            else:
                if 200 <= response.status_code < 300:
                    return decode_ok(response)
                error = decode_error(response)
                if attempt >= self.retries or not self.retryable(response, error, safety):
                    raise error
                wait = retry_after_seconds(response.headers.get("Retry-After"))
                if wait is not None and wait > MAX_RETRY_AFTER:
                    raise error
                delay = (
                    wait if wait is not None else backoff_delay(attempt, self.backoff_base, self.backoff_max)
                )
            attempt += 1
            yield Sleep(delay)

    @staticmethod
    def retryable(response: httpx.Response, error: JoblineError, safety: Safety) -> bool:
        if response.status_code not in RETRY_STATUSES:
            return False
        if safety == "idempotent":
            return True
        return response.status_code == 429 or error.code == "overloaded"

    # -- the operations -----------------------------------------------------

    def create_job(self, job: CreateJob, idempotency_key: Optional[str]) -> Op[CreatedJob]:
        body_key = job.get("idempotency_key")
        if idempotency_key is not None and body_key is not None and idempotency_key != body_key:
            raise ValueError("idempotency_key differs from the job's own idempotency_key")
        key = idempotency_key or body_key or str(uuid.uuid4())
        created: CreatedJob = yield from self.request(
            "createJob", body=dict(job), has_body=True, headers={"Idempotency-Key": key}
        )
        return created

    def create_jobs(self, jobs: Sequence[CreateJob]) -> Op[List[CreatedJob]]:
        # A batch has no header key: each job without one gets its own in the
        # body, so resending the batch after a lost answer creates nothing twice.
        items: List[Dict[str, Any]] = []
        for job in jobs:
            item = dict(job)
            item.setdefault("idempotency_key", str(uuid.uuid4()))
            items.append(item)
        batch = yield from self.request("createJobs", body={"jobs": items}, has_body=True)
        created: List[CreatedJob] = batch["jobs"]
        return created

    def get_job(self, job_id: str) -> Op[Job]:
        job: Job = yield from self.request("getJob", path={"id": job_id})
        return job

    def list_jobs_page(
        self,
        status: Optional[JobStatus],
        type: Optional[JobType],
        correlation_id: Optional[str],
        limit: Optional[int],
        cursor: Optional[str],
    ) -> Op[JobList]:
        params = {
            "status": status,
            "type": type,
            "correlation_id": correlation_id,
            "limit": limit,
            "cursor": cursor,
        }
        page: JobList = yield from self.request("listJobs", params=params)
        return page

    def cancel_job(self, job_id: str) -> Op[Job]:
        job: Job = yield from self.request("cancelJob", path={"id": job_id}, safety="unsent")
        return job

    def retry_job(self, job_id: str, max_attempts: Optional[int]) -> Op[Job]:
        body = None if max_attempts is None else {"max_attempts": max_attempts}
        job: Job = yield from self.request(
            "retryJob", path={"id": job_id}, body=body, has_body=body is not None, safety="unsent"
        )
        return job

    def stats(self) -> Op[Stats]:
        stats: Stats = yield from self.request("getStats")
        return stats

    def wait_for_job(
        self, job_id: str, timeout: float, interval: float, clock: Callable[[], float] = time.monotonic
    ) -> Op[Job]:
        if timeout < 0 or interval <= 0:
            raise ValueError("timeout must be >= 0 and interval > 0")
        deadline = clock() + timeout
        while True:
            job: Job = yield from self.get_job(job_id)
            if job["status"] in TERMINAL_STATUSES:
                return job
            left = deadline - clock()
            if left <= 0:
                raise WaitTimeoutError(job_id, timeout, job)
            yield Sleep(min(interval, left))


def encode(send: Send) -> Dict[str, Any]:
    """The keyword arguments of ``httpx.Client.request`` for SEND."""
    kwargs: Dict[str, Any] = {"params": send.params, "headers": send.headers}
    if send.has_body:
        kwargs["content"] = json.dumps(send.json, separators=(",", ":")).encode()
        kwargs["headers"] = {**send.headers, "Content-Type": "application/json"}
    return kwargs
