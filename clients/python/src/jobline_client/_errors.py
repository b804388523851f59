"""The exceptions the client raises: every failure is a JoblineError."""

from typing import Any, Optional

from ._schema import Job


class JoblineError(Exception):
    """A request failed.

    ``code`` is the API's stable error code (``not_found``,
    ``validation_failed``, ``idempotency_conflict``, ...; see the ``Error``
    schema) or one of the client's own: ``connection_error`` (no answer),
    ``unexpected_response`` (an answer that is not the API's JSON) and
    ``wait_timeout`` (:class:`WaitTimeoutError`). ``status`` is the HTTP
    status, None when there was no answer. ``body`` is the decoded error
    body when there was one.
    """

    def __init__(self, code: str, message: str, status: Optional[int] = None, body: Any = None) -> None:
        super().__init__(f"{code}: {message}" if status is None else f"{status} {code}: {message}")
        self.code = code
        self.message = message
        self.status = status
        self.body = body

    def __repr__(self) -> str:
        return f"{type(self).__name__}(code={self.code!r}, status={self.status!r}, message={self.message!r})"


class JoblineConnectionError(JoblineError):
    """No answer: the connection failed or timed out (after the retries, when the call retries)."""

    def __init__(self, message: str) -> None:
        super().__init__("connection_error", message)


class WaitTimeoutError(JoblineError, TimeoutError):
    """:meth:`Client.wait_for_job` gave up: the job was not terminal within ``timeout`` seconds.

    ``job`` is the job as last seen, ``job_id`` its id.
    """

    def __init__(self, job_id: str, timeout: float, job: Job) -> None:
        super().__init__(
            "wait_timeout",
            f"job {job_id} is still {job['status']} after {timeout:g}s",
        )
        self.job_id = job_id
        self.timeout = timeout
        self.job = job
