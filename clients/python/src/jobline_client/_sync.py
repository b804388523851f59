"""Client: the blocking client (httpx.Client)."""

import time
from types import TracebackType
from typing import Any, Iterator, List, Optional, Sequence, Type, Union

import httpx

from ._core import DEFAULT_TIMEOUT, UNSET, Core, Op, Send, Sleep, T, encode
from ._schema import CreatedJob, CreateJob, Job, JobList, JobStatus, JobType, Stats


class Client:
    """A blocking client of the jobline API.

    ``base_url`` is the API's root (``http://127.0.0.1:3000``); ``api_key``
    is sent as ``Authorization: Bearer``. ``transport`` (an
    ``httpx.BaseTransport``) or ``http_client`` (an ``httpx.Client`` you
    own and close) replace the default connection handling. ``retries`` is
    how many times a retryable request is sent again (so ``retries + 1``
    attempts at most); ``timeout`` is each attempt's timeout in seconds
    (default 10; None: none; ``http_client``'s own when that is given and
    timeout is not). ``backoff_base`` and ``backoff_max`` bound the waits between
    attempts. Use it as a context manager, or call :meth:`close`.
    """

    def __init__(
        self,
        base_url: str,
        api_key: Optional[str] = None,
        *,
        transport: Optional[httpx.BaseTransport] = None,
        http_client: Optional[httpx.Client] = None,
        retries: int = 3,
        timeout: Union[float, None, httpx.Timeout] = UNSET,
        backoff_base: float = 0.5,
        backoff_max: float = 8.0,
    ) -> None:
        if transport is not None and http_client is not None:
            raise ValueError("give transport or http_client, not both")
        self._core = Core(base_url, api_key, retries, backoff_base, backoff_max)
        self._owns_http = http_client is None
        self._timeout: Any  # a float, None, an httpx.Timeout or httpx.USE_CLIENT_DEFAULT
        if http_client is not None:
            self._http = http_client
            self._timeout = httpx.USE_CLIENT_DEFAULT if timeout is UNSET else timeout
        else:
            self._timeout = DEFAULT_TIMEOUT if timeout is UNSET else timeout
            self._http = httpx.Client(transport=transport, timeout=self._timeout)

    def _run(self, op: Op[T]) -> T:
        """Runs an operation of Core: sends its requests, sleeps its sleeps, returns its result."""
        try:
            action = next(op)
            while True:
                if isinstance(action, Sleep):
                    time.sleep(action.seconds)
                    action = op.send(None)
                    continue
                assert isinstance(action, Send)
                try:
                    response = self._http.request(
                        action.method, action.url, timeout=self._timeout, **encode(action)
                    )
                except httpx.TransportError as exc:
                    action = op.throw(exc)
                else:
                    action = op.send(response)
        except StopIteration as done:
            result: T = done.value
            return result

    # -- the API ------------------------------------------------------------

    def create_job(self, job: CreateJob, *, idempotency_key: Optional[str] = None) -> CreatedJob:
        """Enqueues JOB (``{"type": ..., "payload": ...}``); see the README for the fields.

        It is sent with an ``Idempotency-Key``: IDEMPOTENCY_KEY, else the
        job's own ``idempotency_key``, else a new uuid4. Network errors, 429
        and 503 are retried with that same key, so the job is created once.
        ``already_existed`` is True when the key named a job already (the
        same body; another body raises ``idempotency_conflict``).
        """
        return self._run(self._core.create_job(job, idempotency_key))

    def create_jobs(self, jobs: Sequence[CreateJob]) -> List[CreatedJob]:
        """Enqueues 1 to 100 jobs, all or nothing; returns them in order.

        Each job without an ``idempotency_key`` is given a uuid4 one, so the
        batch is retried like :meth:`create_job`.
        """
        return self._run(self._core.create_jobs(jobs))

    def get_job(self, job_id: str) -> Job:
        """The job; JoblineError ``not_found`` (404) when there is none."""
        return self._run(self._core.get_job(job_id))

    def list_jobs_page(
        self,
        *,
        status: Optional[JobStatus] = None,
        type: Optional[JobType] = None,
        correlation_id: Optional[str] = None,
        limit: Optional[int] = None,
        cursor: Optional[str] = None,
    ) -> JobList:
        """One page of jobs, newest first, and the ``next_cursor`` (None on the last page)."""
        return self._run(self._core.list_jobs_page(status, type, correlation_id, limit, cursor))

    def list_jobs(
        self,
        *,
        status: Optional[JobStatus] = None,
        type: Optional[JobType] = None,
        correlation_id: Optional[str] = None,
        page_size: Optional[int] = None,
        cursor: Optional[str] = None,
    ) -> Iterator[Job]:
        """Every job matching the filters, newest first, fetched page by page (PAGE_SIZE each, 1-500)."""
        while True:
            page = self.list_jobs_page(
                status=status, type=type, correlation_id=correlation_id, limit=page_size, cursor=cursor
            )
            yield from page["jobs"]
            cursor = page["next_cursor"]
            if not cursor:
                return

    def wait_for_job(self, job_id: str, timeout: float = 60.0, interval: float = 0.5) -> Job:
        """Polls the job every INTERVAL seconds until it is completed, failed or cancelled; returns it.

        Raises WaitTimeoutError (a JoblineError and a TimeoutError, with the
        last seen ``job``) when it is not terminal after TIMEOUT seconds.
        """
        return self._run(self._core.wait_for_job(job_id, timeout, interval))

    def cancel_job(self, job_id: str) -> Job:
        """Cancels a job that is not terminal yet (else ``invalid_state``, 409); needs an admin key."""
        return self._run(self._core.cancel_job(job_id))

    def retry_job(self, job_id: str, *, max_attempts: Optional[int] = None) -> Job:
        """Puts a failed or cancelled job back to pending; needs an admin key.

        MAX_ATTEMPTS, when given, allows that many attempts beyond those made.
        """
        return self._run(self._core.retry_job(job_id, max_attempts))

    def stats(self) -> Stats:
        """The tenant's queue statistics; needs an admin key."""
        return self._run(self._core.stats())

    # -- lifetime -----------------------------------------------------------

    def close(self) -> None:
        """Closes the connections (not those of an ``http_client`` given to the constructor)."""
        if self._owns_http:
            self._http.close()

    def __enter__(self) -> "Client":
        return self

    def __exit__(
        self,
        exc_type: Optional[Type[BaseException]],
        exc: Optional[BaseException],
        tb: Optional[TracebackType],
    ) -> None:
        self.close()
