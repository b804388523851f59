"""Fixtures: a real `jobline serve` (JOBLINE_URL, JOBLINE_API_KEY; scripts/test-client-py starts it
and a worker), and each test body run against both Client and AsyncClient."""

import os
import uuid
from typing import Any, Callable, Iterator, List

import pytest
from support import Blocking, LoopThread

from jobline_client import AsyncClient, Client


@pytest.fixture(scope="session")
def server() -> "tuple[str, str]":
    url, key = os.environ.get("JOBLINE_URL"), os.environ.get("JOBLINE_API_KEY")
    if not url or not key:
        pytest.fail(
            "JOBLINE_URL and JOBLINE_API_KEY must name a running jobline serve (scripts/test-client-py does)"
        )
    return url, key


@pytest.fixture(scope="session")
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="session")
def loop_thread() -> Iterator[LoopThread]:
    loop = LoopThread()
    yield loop
    loop.stop()


@pytest.fixture(params=["sync", "async"])
def flavour(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def make_client(
    flavour: str, server: "tuple[str, str]", loop_thread: LoopThread
) -> Iterator[Callable[..., Any]]:
    """make_client(api_key=..., **Client options) -> a Client, or an AsyncClient behind Blocking."""
    made: List[Any] = []
    url, key = server

    def make(**kwargs: Any) -> Any:
        kwargs.setdefault("api_key", key)
        if flavour == "sync":
            client: Any = Client(url, **kwargs)
            made.append(client)
            return client
        async_client = loop_thread.run(_make_async(url, kwargs))
        made.append(async_client)
        return Blocking(async_client, loop_thread)

    yield make
    for client in made:
        if isinstance(client, Client):
            client.close()
        else:
            loop_thread.run(client.aclose())


async def _make_async(url: str, kwargs: Any) -> AsyncClient:
    return AsyncClient(url, **kwargs)


@pytest.fixture
def client(make_client: Callable[..., Any]) -> Any:
    return make_client()


@pytest.fixture
def tag() -> str:
    """A correlation id of this test alone, to find its jobs among every other test's."""
    return f"pytest-{uuid.uuid4()}"
