"""One worker process of the Redis acceptance tests (tests/test_redis_acceptance.py).

``python tests/redis_worker.py URL TASKS SECONDS fail|allow``: opens a Client whose
rate limit ``openai/gpt-4o-mini: RateLimit(rpm=3000)`` lives in a RedisRateStore at
URL, connects to the store, prints ``ready``, reads the common start time
(``time.time()``, a float) from stdin, and from then on runs TASKS tasks that each
send one request after another for SECONDS.  Requests go to an
``httpx.MockTransport`` answering after 10 ms, which notes the wall-clock time each
one arrived (the moment it left the Client).  A task whose call raises
``RateStoreError`` notes it and stops.  At the end it prints one JSON line:
``{"sends": [times], "store_errors": [times], "other_errors": [reprs]}``.
"""

from __future__ import annotations

import json
import math
import sys
import time

import httpx
import trio

import trillm
from trillm import errors
from trillm.redis import RedisRateStore

MODEL = "openai/gpt-4o-mini"
ANSWER = {
    "id": "1", "object": "chat.completion", "created": 0, "model": "gpt-4o-mini",
    "choices": [{"index": 0, "finish_reason": "stop",
                 "message": {"role": "assistant", "content": "ok"}}],
    "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
}


async def main(url: str, tasks: int, seconds: float, on_error: str) -> None:
    sends: list[float] = []
    store_errors: list[float] = []
    other_errors: list[str] = []

    async def handler(request: httpx.Request) -> httpx.Response:
        sends.append(time.time())
        await trio.sleep(0.01)
        return httpx.Response(200, json=ANSWER)

    store = RedisRateStore(url, on_store_error=on_error, timeout=0.5)  # type: ignore[arg-type]
    limits = {MODEL: trillm.RateLimit(rpm=3000)}
    async with trillm.Client(transport=httpx.MockTransport(handler), api_key="sk-test",
                             rate_limits=limits, rate_store=store, max_retries=0) as client:
        # Warm: the store's connection is made and its script loaded before the start
        # (a probe books nothing), as in a worker that has been running a while.
        await store.reserve_many([MODEL], {}, math.inf)
        print("ready", flush=True)
        start_at = float(await trio.to_thread.run_sync(sys.stdin.readline))
        await trio.sleep(max(0.0, start_at - time.time()))
        end = trio.current_time() + seconds

        async def one_task() -> None:
            while trio.current_time() < end:
                try:
                    await client.acompletion(MODEL, [{"role": "user", "content": "hi"}])
                except errors.RateStoreError:
                    store_errors.append(time.time())
                    return
                except Exception as exc:  # noqa: BLE001 - reported to the test, never dropped
                    other_errors.append(repr(exc))
                    return

        # Requests booked past the end are given back when cancelled.
        with trio.move_on_at(end + 0.5):
            async with trio.open_nursery() as nursery:
                for _ in range(tasks):
                    nursery.start_soon(one_task)
    print(json.dumps({"sends": sends, "store_errors": store_errors,
                      "other_errors": other_errors}), flush=True)


if __name__ == "__main__":
    trio.run(main, sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), sys.argv[4])
