"""AsyncClient used as an async program would: async with, await, async for (test_api.py runs
every call of it too, through the Blocking facade)."""

import asyncio
from typing import List

import pytest

from jobline_client import AsyncClient, JoblineError, WaitTimeoutError

pytestmark = pytest.mark.anyio


@pytest.fixture
def url_key(server: "tuple[str, str]") -> "tuple[str, str]":
    return server


async def test_async_with_await_and_async_for(url_key: "tuple[str, str]", tag: str) -> None:
    url, key = url_key
    async with AsyncClient(url, key) as jobline:
        created = await asyncio.gather(
            *(
                jobline.create_job({"type": "noop", "payload": {"i": i}, "correlation_id": tag})
                for i in range(5)
            )
        )
        assert len({job["id"] for job in created}) == 5
        seen: List[str] = [job["id"] async for job in jobline.list_jobs(correlation_id=tag, page_size=2)]
        assert sorted(seen) == sorted(job["id"] for job in created)
        done = await asyncio.gather(
            *(jobline.wait_for_job(job["id"], timeout=60, interval=0.1) for job in created)
        )
        assert {job["status"] for job in done} == {"completed"}
        with pytest.raises(JoblineError) as caught:
            await jobline.get_job("00000000-0000-4000-8000-000000000000")
        assert caught.value.code == "not_found"
    assert jobline._http.is_closed


async def test_async_wait_timeout(url_key: "tuple[str, str]", tag: str) -> None:
    url, key = url_key
    async with AsyncClient(url, key) as jobline:
        job = await jobline.create_job({"type": "noop", "correlation_id": tag, "delay_seconds": 86400})
        with pytest.raises(WaitTimeoutError):
            await jobline.wait_for_job(job["id"], timeout=0.3, interval=0.1)
        await jobline.cancel_job(job["id"])
