"""A fake OpenAI server on a thread (real sockets, real clock) for the facade's tests.

``POST /v1/chat/completions`` answers whole or streamed: ``"An answer about <the last
line of the prompt>"``, or a numbered outline when the system message asks for a
numbered list; a prompt holding ``#7`` is answered 429 (``retry-after: 0``) three
times first.  ``GET /v1/models`` lists two models; other paths are 404.  Every
request is kept in ``requests`` as ``(method, path, headers, JSON body or None)``.
"""

from __future__ import annotations

import contextlib
import http.server
import json
import signal
import threading
from collections.abc import Iterator
from typing import Any

__all__ = ["FakeOpenAI", "hang_guard", "run_script", "serving"]


class _Handler(http.server.BaseHTTPRequestHandler):
    """Chat completions (whole or streamed) and ``GET /v1/models`` in OpenAI's shape; a
    prompt holding ``#7`` is answered 429 three times first; other paths are 404."""

    protocol_version = "HTTP/1.1"
    server: FakeOpenAI

    def log_message(self, format: str, *args: object) -> None:
        pass

    def _reply(self, status: int, payload: bytes, ctype: str = "application/json",
               headers: tuple[tuple[str, str], ...] = ()) -> None:
        self.send_response(status)
        self.send_header("content-type", ctype)
        self.send_header("content-length", str(len(payload)))
        for name, value in headers:
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(payload)

    def do_GET(self) -> None:
        self.server.record(self, None)
        if self.path == "/v1/models":
            self._reply(200, json.dumps({"object": "list", "data": [
                {"id": "gpt-4o-mini", "object": "model", "created": 1, "owned_by": "system"},
                {"id": "llama3", "object": "model"}]}).encode())
        else:
            self._reply(404, b'{"error": {"message": "no such path"}}')

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["content-length"])))
        self.server.record(self, body)
        if self.path != "/v1/chat/completions":
            self._reply(404, b'{"error": {"message": "no such path", "type": "not_found"}}')
            return
        messages = body["messages"]
        system = " ".join(m["content"] for m in messages if m["role"] == "system")
        user = messages[-1]["content"]
        if "#7" in user and self.server.count_429(user) <= 3:
            self._reply(429, b'{"error": {"message": "Rate limit reached for gpt-4o-mini", '
                             b'"type": "requests", "code": "rate_limit_exceeded"}}',
                        headers=(("retry-after", "0"),))
            return
        if "numbered list" in system:
            text = "1. Why async\n2. The event loop\n3. Structured concurrency"
        else:
            text = f"An answer about {user.splitlines()[-1][:60]}"
        model = body["model"]
        if not body.get("stream"):
            self._reply(200, json.dumps({
                "id": "chatcmpl-1", "object": "chat.completion", "created": 0, "model": model,
                "choices": [{"index": 0, "finish_reason": "stop",
                             "message": {"role": "assistant", "content": text}}],
                "usage": {"prompt_tokens": 3, "completion_tokens": 5, "total_tokens": 8},
            }).encode())
            return
        events = [{"id": "c1", "object": "chat.completion.chunk", "created": 0, "model": model,
                   "choices": [{"index": 0, "delta": {"content": w}, "finish_reason": None}]}
                  for w in text.split(" ")]
        events.append({"id": "c1", "object": "chat.completion.chunk", "created": 0,
                       "model": model,
                       "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})
        sse = "".join(f"data: {json.dumps(e)}\n\n" for e in events) + "data: [DONE]\n\n"
        self._reply(200, sse.encode(), "text/event-stream")


class FakeOpenAI(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.lock = threading.Lock()
        self.requests: list[tuple[str, str, dict[str, str], Any]] = []
        self._429: dict[str, int] = {}

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    def record(self, handler: _Handler, body: Any) -> None:
        headers = {k.lower(): v for k, v in handler.headers.items()}
        with self.lock:
            self.requests.append((handler.command, handler.path, headers, body))

    def count_429(self, key: str) -> int:
        with self.lock:
            self._429[key] = self._429.get(key, 0) + 1
            return self._429[key]


@contextlib.contextmanager
def serving() -> Iterator[FakeOpenAI]:
    """A :class:`FakeOpenAI` on a thread, shut down on exit."""
    fake = FakeOpenAI()
    thread = threading.Thread(target=fake.serve_forever, daemon=True)
    thread.start()
    try:
        yield fake
    finally:
        fake.shutdown()
        fake.server_close()
        thread.join(5)


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
    with hang_guard(30):
        exec(compile(code, "<example>", "exec"), {"__name__": "__main__"})
