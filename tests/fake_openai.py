"""The facade's fake OpenAI: a :class:`~trillm.testing.FakeLLM` script on a loopback port,
served from a thread (its own ``trio.run``, real sockets, real clock), so tests that run
their own event loop (``asyncio.run``, ``trio.run`` in a script, the sync facade) can use it.

``POST /v1/chat/completions`` answers ``"An answer about <the last line of the prompt>"``,
or a numbered outline when the system message asks for a numbered list; a prompt holding
``#7`` is answered 429 (``retry-after: 0``) three times first.  ``GET /v1/models`` lists
two models; any other path (Anthropic's ``/v1/messages`` included) is a 404.  Every
request is kept in ``fake.requests`` (:class:`~trillm.testing.FakeRequest`).
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator
from typing import Any

import trio

from trillm.testing import FakeLLM, FakeRequest

__all__ = ["MODELS", "hang_guard", "openai_script", "run_script", "serving", "serving_in_thread"]

#: What ``GET /v1/models`` lists.
MODELS = {"object": "list", "data": [
    {"id": "gpt-4o-mini", "object": "model", "created": 1, "owned_by": "system"},
    {"id": "llama3", "object": "model"}]}
OUTLINE = "1. Why async\n2. The event loop\n3. Structured concurrency"


def _system(req: FakeRequest) -> str:
    return " ".join(str(m["content"]) for m in req.messages if m["role"] == "system")


def _answer(req: FakeRequest) -> str:
    return f"An answer about {(req.text or '').splitlines()[-1][:60]}"


def openai_script(fake: FakeLLM) -> FakeLLM:
    """Script *fake* as the facade's fake OpenAI (see the module's docstring)."""
    fake.on(provider="openai", operation="models").respond(MODELS)
    fake.on(provider="openai", operation="chat",
            when=lambda req: "#7" in (req.text or "")).fail(
        429, retry_after=0).fail(429, retry_after=0).fail(429, retry_after=0).reply(_answer)
    fake.on(provider="openai", operation="chat",
            when=lambda req: "numbered list" in _system(req)).reply(OUTLINE)
    fake.on(provider="openai", operation="chat").reply(_answer)
    fake.on().fail(404, body={"error": {"message": "no such path", "type": "not_found"}})
    return fake


@contextlib.contextmanager
def serving_in_thread(fake: FakeLLM, *, start_timeout: float = 10) -> Iterator[str]:
    """``fake.serve()`` on a thread running its own ``trio.run``; yields the root URL
    (``http://127.0.0.1:PORT``) and stops the server (and its thread) on exit."""
    started = threading.Event()
    box: dict[str, Any] = {}

    async def main() -> None:
        with trio.CancelScope() as scope:
            async with fake.serve() as url:
                box.update(url=url, scope=scope, token=trio.lowlevel.current_trio_token())
                started.set()
                await trio.sleep_forever()

    def run() -> None:
        try:
            trio.run(main)
        except Exception as exc:  # noqa: BLE001 - raised again in the test's thread
            box["error"] = exc
        finally:
            started.set()

    thread = threading.Thread(target=run, name="fake-openai", daemon=True)
    thread.start()
    if not started.wait(start_timeout) or "url" not in box:
        raise RuntimeError("the fake OpenAI server did not start") from box.get("error")
    try:
        yield box["url"]
    finally:
        box["token"].run_sync_soon(box["scope"].cancel)
        thread.join(10)
        if thread.is_alive():
            raise RuntimeError("the fake OpenAI server's thread did not stop")
        if "error" in box:
            raise box["error"]


class FakeOpenAI(FakeLLM):
    """The facade's fake OpenAI, with the ``url`` it is served on (``serving()`` sets it)."""

    url: str


@contextlib.contextmanager
def serving() -> Iterator[FakeOpenAI]:
    """A :class:`FakeOpenAI` (scripted by :func:`openai_script`) served on a thread."""
    fake = FakeOpenAI()
    openai_script(fake)
    with serving_in_thread(fake) as url:
        fake.url = url
        yield fake


@contextlib.contextmanager
def hang_guard(seconds: float) -> Iterator[None]:
    """Fail instead of hanging: the scripts run their own event loop."""

    def expired(signum: int, frame: object) -> None:
        raise TimeoutError(f"an example ran for more than {seconds} s")

    previous = signal.signal(signal.SIGALRM, expired)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def run_script(code: str) -> None:
    """Run an example script (it runs its own event loop) under a 30 s :func:`hang_guard`."""
    with hang_guard(30):
        exec(compile(code, "<example>", "exec"), {"__name__": "__main__"})
