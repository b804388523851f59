"""Test helpers: Blocking (AsyncClient behind a blocking facade) and Flaky (a failing transport)."""

import asyncio
import threading
from typing import Any, Callable, Coroutine, List, Optional, TypeVar

import httpx

from jobline_client import AsyncClient

T = TypeVar("T")


class LoopThread:
    """An asyncio loop in a thread of its own, so that blocking test code can await AsyncClient calls."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="asyncio-loop", daemon=True)
        self.thread.start()

    def run(self, coro: "Coroutine[Any, Any, T]") -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout=120)

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=10)
        self.loop.close()


class Blocking:
    """AsyncClient seen through Client's blocking interface: each coroutine is run to its end on the
    loop thread, an async iterator is collected into a list. One test body exercises both clients."""

    def __init__(self, client: AsyncClient, loop: LoopThread) -> None:
        self._client = client
        self._loop = loop

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._client, name)
        if not callable(attr):
            return attr

        def call(*args: Any, **kwargs: Any) -> Any:
            result = attr(*args, **kwargs)
            if hasattr(result, "__aiter__"):

                async def collect() -> List[Any]:
                    return [item async for item in result]

                return self._loop.run(collect())
            return self._loop.run(result)

        return call


class Flaky(httpx.BaseTransport, httpx.AsyncBaseTransport):
    """A transport in front of the real one that fails the first matching requests as PLAN says.

    Each step of PLAN is used by one matching request, in order:
      "503", "429": answer that status (with Retry-After: RETRY_AFTER) without forwarding;
      "overloaded": 503 with the code of the server's load shedding;
      "connect": raise httpx.ConnectError without forwarding;
      "drop": forward it (the server acts on it), then lose the answer (httpx.ReadError).
    Then every request is forwarded. It records each matching request's Idempotency-Key.
    """

    def __init__(
        self,
        plan: List[str],
        matches: Callable[[httpx.Request], bool],
        retry_after: str = "0",
    ) -> None:
        self.plan = list(plan)
        self.matches = matches
        self.retry_after = retry_after
        self.keys: List[Optional[str]] = []
        self.sync_inner = httpx.HTTPTransport()
        self.async_inner = httpx.AsyncHTTPTransport()

    @property
    def attempts(self) -> int:
        return len(self.keys)

    def _step(self, request: httpx.Request) -> Optional[str]:
        if not self.matches(request):
            return None
        self.keys.append(request.headers.get("Idempotency-Key"))
        return self.plan.pop(0) if self.plan else None

    def _canned(self, step: str, request: httpx.Request) -> Optional[httpx.Response]:
        if step == "connect":
            raise httpx.ConnectError("injected: connection refused", request=request)
        codes = {"503": (503, "unavailable"), "429": (429, "rate_limited"), "overloaded": (503, "overloaded")}
        if step in codes:
            status, code = codes[step]
            return httpx.Response(
                status,
                headers={"Retry-After": self.retry_after},
                json={"error": {"code": code, "message": f"injected {step}"}},
                request=request,
            )
        return None

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        step = self._step(request)
        canned = self._canned(step, request) if step else None
        if canned is not None:
            return canned
        response = self.sync_inner.handle_request(request)
        if step == "drop":
            response.read()
            response.close()
            raise httpx.ReadError("injected: the answer was lost", request=request)
        return response

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        step = self._step(request)
        canned = self._canned(step, request) if step else None
        if canned is not None:
            return canned
        response = await self.async_inner.handle_async_request(request)
        if step == "drop":
            await response.aread()
            await response.aclose()
            raise httpx.ReadError("injected: the answer was lost", request=request)
        return response

    def close(self) -> None:
        self.sync_inner.close()

    async def aclose(self) -> None:
        await self.async_inner.aclose()


def creates(request: httpx.Request) -> bool:
    return request.method == "POST" and request.url.path == "/v1/jobs"
