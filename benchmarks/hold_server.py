"""A server that holds every request for a few seconds, then answers the canned JSON.

nginx cannot delay an answer without a module Debian does not ship by default, so
the ``hN`` phases (N requests in flight at once) talk to this: a bare asyncio
protocol in its own process (pinned to the server CPU), HTTP/1.1 keep-alive,
``Content-Length`` bodies only, nothing parsed beyond what framing needs, so one
CPU serves 10,000 held requests with room to spare.  It stops with its parent.

    python benchmarks/hold_server.py PORT HOLD_SECONDS
"""

from __future__ import annotations

import asyncio
import socket
import sys

import canned

_BODY = canned.completion_body()
_ANSWER = (
    b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
    b"Content-Length: " + str(len(_BODY)).encode() + b"\r\n\r\n" + _BODY
)
_HEAD_END = b"\r\n\r\n"


class Held(asyncio.Protocol):
    """One connection: each complete request is answered *hold* seconds after it arrived."""

    def __init__(self, loop: asyncio.AbstractEventLoop, hold: float, stats: dict[str, int]):
        self.loop, self.hold, self.stats = loop, hold, stats
        self.buf = b""
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.stats["connections"] += 1

    def data_received(self, data: bytes) -> None:
        self.buf += data
        while True:
            end = self.buf.find(_HEAD_END)
            if end < 0:
                return
            head = self.buf[:end].lower()
            length = 0
            at = head.find(b"content-length:")
            if at >= 0:
                length = int(head[at + 15:].split(b"\r\n", 1)[0])
            total = end + 4 + length
            if len(self.buf) < total:
                return
            self.buf = self.buf[total:]
            self.stats["requests"] += 1
            self.loop.call_later(self.hold, self.answer)

    def answer(self) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(_ANSWER)
            self.stats["answered"] += 1

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None


async def serve(port: int, hold: float) -> None:
    loop = asyncio.get_running_loop()
    stats = {"connections": 0, "requests": 0, "answered": 0}
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", port))
    server = await loop.create_server(lambda: Held(loop, hold, stats), sock=sock, backlog=4096)
    print("ready", flush=True)
    async with server:
        await server.serve_forever()


def main() -> None:
    import resource

    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    asyncio.run(serve(int(sys.argv[1]), float(sys.argv[2])))


if __name__ == "__main__":
    main()
