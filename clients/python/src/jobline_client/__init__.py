"""jobline_client: typed sync and async clients of the jobline job-queue API.

    from jobline_client import Client

    with Client("http://127.0.0.1:3000", api_key="...") as jobline:
        job = jobline.create_job({"type": "noop", "payload": {"n": 1}})
        done = jobline.wait_for_job(job["id"], timeout=30)

The request and response types (Job, CreateJob, Stats, ...) are TypedDicts
generated from the API's OpenAPI document (``_schema.py``).
"""

from ._async import AsyncClient
from ._core import TERMINAL_STATUSES, __version__
from ._errors import JoblineConnectionError, JoblineError, WaitTimeoutError
from ._schema import (
    CreatedJob,
    CreatedJobsBatch,
    CreateJob,
    CreateJobsBatch,
    Error,
    Job,
    JobList,
    JobStatus,
    JobType,
    Priority,
    RetryJob,
    Stats,
)
from ._sync import Client

__all__ = [
    "AsyncClient",
    "Client",
    "CreateJob",
    "CreateJobsBatch",
    "CreatedJob",
    "CreatedJobsBatch",
    "Error",
    "Job",
    "JobList",
    "JobStatus",
    "JobType",
    "JoblineConnectionError",
    "JoblineError",
    "Priority",
    "RetryJob",
    "Stats",
    "TERMINAL_STATUSES",
    "WaitTimeoutError",
    "__version__",
]
