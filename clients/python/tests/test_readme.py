"""The README's Python examples, run against the server, so they stay true.

A block that makes its own client (``Client(os.environ[...])``) runs alone; the others are
fragments that use ``jobline`` (a Client) or ``ajobline`` (an AsyncClient, top-level await) and
run in order in one namespace per client, as a reader would type them one after the other.
"""

import ast
import asyncio
import inspect
import re
from pathlib import Path
from typing import Any, Dict, List

import pytest

from jobline_client import AsyncClient, Client

README = Path(__file__).resolve().parent.parent / "README.md"
BLOCKS = re.findall(r"^```python\n(.*?)^```", README.read_text(encoding="utf-8"), flags=re.S | re.M)
STANDALONE = [b for b in BLOCKS if 'Client(os.environ["JOBLINE_URL"]' in b]
SYNC = [b for b in BLOCKS if b not in STANDALONE and "ajobline" not in b]
ASYNC = [b for b in BLOCKS if b not in STANDALONE and "ajobline" in b]


def test_the_readme_has_examples_of_each_kind() -> None:
    assert len(STANDALONE) >= 4 and len(SYNC) >= 8 and len(ASYNC) >= 8


@pytest.mark.parametrize("block", STANDALONE, ids=[f"standalone-{i}" for i in range(len(STANDALONE))])
def test_a_standalone_example(block: str, server: "tuple[str, str]", monkeypatch: pytest.MonkeyPatch) -> None:
    url, key = server
    monkeypatch.setenv("JOBLINE_URL", url)
    monkeypatch.setenv("JOBLINE_API_KEY", key)
    exec(compile(block, str(README), "exec"), {"__name__": "readme"})


def test_the_sync_fragments_in_order(server: "tuple[str, str]") -> None:
    url, key = server
    with Client(url, key) as jobline:
        namespace: Dict[str, Any] = {"jobline": jobline}
        for block in SYNC:
            exec(compile(block, str(README), "exec"), namespace)


def test_the_async_fragments_in_order(server: "tuple[str, str]") -> None:
    url, key = server

    async def run(blocks: List[str]) -> None:
        async with AsyncClient(url, key) as ajobline:
            namespace: Dict[str, Any] = {"ajobline": ajobline}
            for block in blocks:
                code = compile(block, str(README), "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT)
                result = eval(code, namespace)
                if inspect.iscoroutine(result):
                    await result

    asyncio.run(run(ASYNC))
