"""The providers' batch APIs: each wire format against a fake server on 127.0.0.1 (real
clock, ``fail_after``), waiting and splitting on virtual time (in-memory transport), the
mock's batches, and the checks made before anything is sent."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
import trio
import trio.testing

import trillm
from tests.fake_batches import FakeAnthropicBatches, FakeGeminiBatches, FakeOpenAIBatches
from tests.fakeserver import open_fake_server, openai_chat_json
from trillm import errors
from trillm.batch_types import BatchJob, combine_parts, job_from_ref, unix_seconds
from trillm.providers.anthropic_batch import AnthropicBatches
from trillm.providers.openai_batch import OpenAIBatches

TEXTS = ["alpha", "please FAIL", "gamma"]


def requests_for(texts: list[str], **params: Any) -> list[dict[str, Any]]:
    return [{"messages": [{"role": "user", "content": t}], **params} for t in texts]


async def collect(job: BatchJob | str, client: trillm.Client) -> dict[str, trillm.BatchItem]:
    items = {}
    async with trillm.abatch_results(job, client=client) as results:
        async for item in results:
            assert item.custom_id not in items
            items[item.custom_id] = item
    return items


# ---------------------------------------------------------------- OpenAI and Azure


async def test_openai_batch_wire_format_end_to_end() -> None:
    fake = FakeOpenAIBatches(polls=2)
    with trio.fail_after(10):
        async with open_fake_server(fake) as server, trillm.Client(
                api_key="sk-test", api_base=server.base_url + "/v1") as client:
            job = await trillm.abatch_submit(
                "openai/gpt-4o-mini", requests_for(TEXTS, temperature=0.5),
                metadata={"run": "t1"}, client=client)
            assert (job.provider, job.status, job.request_counts.total) == (
                "openai", "validating", 3)
            assert job.created_at == 1_711_471_533 and job.ref == "openai:batch_0"
            lines = fake.created[0]
            assert [x["custom_id"] for x in lines] == ["0", "1", "2"]
            assert lines[0] == {"custom_id": "0", "method": "POST", "url": "/v1/chat/completions",
                                "body": {"model": "gpt-4o-mini", "temperature": 0.5,
                                         "messages": [{"role": "user", "content": "alpha"}]}}
            assert fake.jobs["batch_0"]["metadata"] == {"run": "t1"}
            running = await trillm.abatch_status(job, client=client)
            assert running.status == "in_progress" and not running.done
            with pytest.raises(errors.BadRequestError, match="in_progress, not done"):
                await collect(job, client)
            done = await trillm.abatch_wait(job.ref, poll=0.01, client=client)
            assert done.status == "completed" and done.request_counts.completed == 2
            items = await collect(done, client)
            assert items["0"].response is not None and items["0"].error is None
            assert items["0"].response.choices[0].message.content == "alpha"
            assert items["0"].response.usage.total_tokens == 6
            assert isinstance(items["1"].error, errors.BadRequestError)
            assert items["1"].error.status_code == 400 and "bad request" in str(items["1"].error)
            assert items["2"].response.choices[0].message.content == "gamma"
            assert items["1"].to_dict()["error"]["type"] == "BadRequestError"


async def test_openai_batch_result_matches_the_direct_calls_parse() -> None:
    body = openai_chat_json("same", model="gpt-4o-mini")
    line = json.dumps({"custom_id": "a", "response": {"status_code": 200, "body": body}})
    from trillm._wire import ProviderConfig
    from trillm.providers.openai import PROVIDER

    cfg = ProviderConfig("openai", "http://x")
    job = BatchJob("b", "openai", "completed", model="gpt-4o-mini")
    item = PROVIDER.batches.parse_line(PROVIDER, line.encode(), job, cfg)
    direct = PROVIDER.parse_chat(json.dumps(body).encode(),
                                 trillm.ChatRequest("openai", "gpt-4o-mini", ()), cfg)
    assert item.response == direct and item.response.raw == body


async def test_openai_expired_request_is_a_timeout_error_and_cancel() -> None:
    fake = FakeOpenAIBatches(polls=0)
    with trio.fail_after(10):
        async with open_fake_server(fake) as server, trillm.Client(
                api_key="sk-test", api_base=server.base_url + "/v1") as client:
            job = await client.batches.submit("openai/gpt-4o-mini", requests_for(["EXPIRE"]),
                                              custom_ids=["only"])
            items = await collect(await client.batches.wait(job, poll=0.01), client)
            assert isinstance(items["only"].error, errors.RequestTimeoutError)
            other = await client.batches.submit("openai/gpt-4o-mini", requests_for(["x"]))
            cancelled = await client.batches.cancel(other)
            assert cancelled.status == "cancelling"
            assert [r.path for r in server.requests][-2:] == [
                f"/v1/batches/{other.id}/cancel", f"/v1/batches/{other.id}"]


async def test_azure_batch_paths_version_and_key(monkeypatch: pytest.MonkeyPatch) -> None:
    fake = FakeOpenAIBatches(polls=0, azure=True)
    with trio.fail_after(10):
        async with open_fake_server(fake) as server, trillm.Client() as client:
            monkeypatch.setenv("AZURE_API_KEY", "az-key")
            monkeypatch.setenv("AZURE_API_BASE", server.base_url)
            job = await client.batches.submit("azure/my-deployment", requests_for(["hi"]))
            assert fake.created[0][0]["url"] == "/chat/completions"
            assert fake.created[0][0]["body"]["model"] == "my-deployment"
            items = await collect(await client.batches.wait(job, poll=0.01), client)
            assert items["0"].response.choices[0].message.content == "hi"


# ---------------------------------------------------------------- Anthropic


async def test_anthropic_batch_wire_format_end_to_end() -> None:
    fake = FakeAnthropicBatches(polls=1)
    with trio.fail_after(10):
        async with open_fake_server(fake) as server, trillm.Client(
                api_key="sk-ant-test", api_base=server.base_url) as client:
            fake.base = server.base_url
            job = await trillm.abatch_submit("anthropic/claude-3-5-haiku-latest",
                                             requests_for(TEXTS, max_tokens=50), client=client)
            assert job.status == "in_progress" and job.request_counts.total == 3
            assert job.created_at == unix_seconds("2024-08-20T18:37:24Z")
            sent = fake.created[0]
            assert sent[0] == {"custom_id": "0", "params": {
                "model": "claude-3-5-haiku-latest", "max_tokens": 50,
                "messages": [{"role": "user", "content": "alpha"}]}}
            done = await trillm.abatch_wait(job, poll=0.01, client=client)
            assert done.status == "completed"
            assert (done.request_counts.completed, done.request_counts.failed) == (2, 1)
            items = await collect(done, client)
            assert items["0"].response.choices[0].message.content == "alpha"
            assert items["0"].response.choices[0].finish_reason == "stop"
            assert items["0"].response.usage.total_tokens == 5
            assert isinstance(items["1"].error, errors.BadRequestError)
            assert "bad please FAIL" in str(items["1"].error)
            results = [r.path for r in server.requests if r.path.endswith("/results")]
            assert results == [f"/v1/messages/batches/{job.id}/results"]


async def test_anthropic_cancel_and_cancelled_lines() -> None:
    fake = FakeAnthropicBatches(polls=5)
    with trio.fail_after(10):
        async with open_fake_server(fake) as server, trillm.Client(
                api_key="sk-ant-test", api_base=server.base_url) as client:
            job = await client.batches.submit("anthropic/claude-3-5-haiku-latest",
                                              requests_for(["x"]))
            assert (await client.batches.cancel(job)).status == "cancelling"
    batches = AnthropicBatches("2023-06-01")
    ended = batches.job({"id": "m", "processing_status": "ended",
                         "cancel_initiated_at": "2024-08-20T18:38:00Z",
                         "request_counts": {"canceled": 2, "succeeded": 1}}, "anthropic", "c")
    assert ended.status == "cancelled" and ended.request_counts.failed == 2
    from trillm._wire import ProviderConfig
    from trillm.providers.anthropic import PROVIDER

    item = batches.parse_line(PROVIDER, b'{"custom_id": "z", "result": {"type": "canceled"}}',
                              ended, ProviderConfig("anthropic", "http://x"))
    assert item.custom_id == "z" and "cancelled" in str(item.error)


# ---------------------------------------------------------------- Gemini


async def test_gemini_batch_wire_format_end_to_end() -> None:
    fake = FakeGeminiBatches(polls=1)
    with trio.fail_after(10):
        async with open_fake_server(fake) as server, trillm.Client(
                api_key="g-test", api_base=server.base_url) as client:
            job = await trillm.abatch_submit("gemini/gemini-2.0-flash", requests_for(TEXTS),
                                             custom_ids=["a", "b", "c"], client=client)
            assert job.id == "batches/b0" and job.status == "validating"
            assert job.ref == "gemini:batches/b0"
            sent = fake.created[0]
            assert sent[0]["metadata"] == {"key": "a"}
            assert sent[0]["request"]["contents"] == [
                {"role": "user", "parts": [{"text": "alpha"}]}]
            done = await trillm.abatch_wait(job.ref, poll=0.01, client=client)
            assert done.status == "completed" and done.request_counts.failed == 1
            assert done.created_at == unix_seconds("2025-07-01T10:00:00Z")
            items = await collect(done, client)
            assert items["a"].response.choices[0].message.content == "alpha"
            assert items["a"].response.usage.total_tokens == 5
            assert isinstance(items["b"].error, errors.BadRequestError)
            assert items["c"].response.choices[0].message.content == "gamma"
            other = await client.batches.submit("gemini/gemini-2.0-flash", requests_for(["x"]))
            assert (await client.batches.cancel(other)).status == "cancelled"
            assert server.requests[-2].path == f"/v1beta/{other.id}:cancel"


async def test_a_provider_error_is_raised_as_its_class() -> None:
    fake = FakeGeminiBatches()
    with trio.fail_after(10):
        async with open_fake_server(fake) as server, trillm.Client(
                api_key="g-test", api_base=server.base_url, max_retries=0) as client:
            with pytest.raises(errors.NotFoundError):
                await client.batches.status("gemini:batches/nope-missing")


# ---------------------------------------------------------------- virtual time


def batch_handler(times: list[float], *, running_polls: int) -> Any:
    state = {"gets": 0}

    def handler(request: httpx.Request) -> httpx.Response:
        path = request.url.path
        if path == "/v1/files":
            return httpx.Response(200, json={"id": "file-1"})
        if path == "/v1/batches":
            return httpx.Response(200, json={"id": "batch_1", "status": "validating"})
        times.append(trio.current_time())
        state["gets"] += 1
        status = "in_progress" if state["gets"] <= running_polls else "completed"
        return httpx.Response(200, json={"id": "batch_1", "status": status})

    return handler


async def test_wait_polls_on_virtual_time(autojump_clock: trio.testing.MockClock) -> None:
    times: list[float] = []
    transport = httpx.MockTransport(batch_handler(times, running_polls=3))
    async with trillm.Client(api_key="sk-test", transport=transport) as client:
        job = await client.batches.submit("openai/gpt-4o-mini", requests_for(["a"]))
        done = await client.batches.wait(job)  # poll=30.0 by default
    assert done.status == "completed"
    assert times == [0.0, 30.0, 60.0, 90.0]


async def test_wait_is_cancellable(autojump_clock: trio.testing.MockClock) -> None:
    times: list[float] = []
    transport = httpx.MockTransport(batch_handler(times, running_polls=10**6))
    async with trillm.Client(api_key="sk-test", transport=transport) as client:
        with trio.move_on_after(100) as scope:
            await client.batches.wait("openai:batch_1", poll=45)
    assert scope.cancelled_caught and times == [0.0, 45.0, 90.0]


async def test_mock_batches_finish_after_a_virtual_delay(
        autojump_clock: trio.testing.MockClock) -> None:
    reqs = [*requests_for(["one", "two"]),
            {"messages": [{"role": "user", "content": "x"}], "mock_response": "fixed"},
            {"messages": [{"role": "user", "content": "y"}],
             "mock_response": errors.RateLimitError("slow down")}]
    job = await trillm.abatch_submit("mock/m", reqs, mock_batch_delay=100)
    assert job.status == "in_progress" and job.provider == "mock"
    assert (await trillm.abatch_status(job)).status == "in_progress"
    done = await trillm.abatch_wait(job, poll=30)
    assert trio.current_time() == 120.0
    assert done.request_counts == trillm.BatchRequestCounts(4, 3, 1)
    items = [item async for item in trillm.abatch_results(done)]
    assert [i.custom_id for i in items] == ["0", "1", "2", "3"]
    direct = await trillm.acompletion("mock/m", [{"role": "user", "content": "one"}])
    assert items[0].response.choices[0].message.content == direct.choices[0].message.content
    assert items[2].response.choices[0].message.content == "fixed"
    assert isinstance(items[3].error, errors.RateLimitError)
    other = await trillm.abatch_submit("mock/m", reqs[:1])
    assert (await trillm.abatch_cancel(other)).status == "cancelled"
    with pytest.raises(errors.NotFoundError, match="trio run"):
        await trillm.abatch_status("mock:batch_unknown")


class _Counting:
    """An in-memory OpenAI batch server that counts what it was sent."""

    def __init__(self) -> None:
        self.files: list[bytes] = []
        self.jobs = 0

    def __call__(self, request: httpx.Request) -> httpx.Response:
        path = request.url.path
        if path == "/v1/files":
            body = request.content
            start = body.index(b"\r\n\r\n", body.index(b'filename=')) + 4
            self.files.append(body[start:body.rindex(b"\r\n--")])
            return httpx.Response(200, json={"id": f"file-{len(self.files)}"})
        if path == "/v1/batches":
            self.jobs += 1
            return httpx.Response(200, json={"id": f"batch_{self.jobs}", "status": "validating",
                                             "created_at": 100 + self.jobs,
                                             "request_counts": {"total": 0}})
        return httpx.Response(200, json={"id": path.rsplit("/", 1)[1], "status": "completed"})


async def test_inputs_over_the_limits_are_split_behind_one_handle(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(OpenAIBatches, "max_requests", 2)
    server = _Counting()
    async with trillm.Client(api_key="sk-test", transport=httpx.MockTransport(server)) as client:
        job = await client.batches.submit("openai/gpt-4o-mini", requests_for(list("abcde")))
        assert job.id == "batch_1+batch_2+batch_3" and len(job.parts) == 3
        assert job.created_at == 101 and job.ref == "openai:batch_1+batch_2+batch_3"
        assert [f.count(b"\n") for f in server.files] == [2, 2, 1]
        ids = [json.loads(line)["custom_id"] for f in server.files for line in f.splitlines()]
        assert ids == ["0", "1", "2", "3", "4"]
        again = await client.batches.status(job.ref)
        assert again.part_ids == ("batch_1", "batch_2", "batch_3") and again.done
        monkeypatch.setattr(OpenAIBatches, "max_requests", 50_000)
        monkeypatch.setattr(OpenAIBatches, "max_bytes", 300)  # about two lines a file
        job = await client.batches.submit("openai/gpt-4o-mini", requests_for(list("vwxyz")))
        assert len(job.parts) >= 2
        assert all(len(f) <= 300 for f in server.files[3:])


def test_combined_status_and_refs() -> None:
    a = BatchJob("a", "openai", "completed", trillm.BatchRequestCounts(2, 2, 0), 5)
    b = BatchJob("b", "openai", "in_progress", trillm.BatchRequestCounts(3, 1, 0), 4)
    both = combine_parts([a, b], provider="openai", model="m")
    assert (both.status, both.request_counts.total, both.created_at) == ("in_progress", 5, 4)
    assert combine_parts([a, attrs_evolve(b, "failed")], provider="openai",
                         model=None).status == "completed"
    assert job_from_ref("gemini:batches/x+batches/y") == ("gemini", ("batches/x", "batches/y"))
    with pytest.raises(errors.BadRequestError, match="not a batch job reference"):
        job_from_ref("batch_abc")


def attrs_evolve(job: BatchJob, status: str) -> BatchJob:
    import attrs

    return attrs.evolve(job, status=status)


async def test_requests_are_checked_before_anything_is_sent() -> None:
    def never(request: httpx.Request) -> httpx.Response:
        raise AssertionError("sent")

    async with trillm.Client(api_key="sk-test", transport=httpx.MockTransport(never)) as c:
        with pytest.raises(errors.BadRequestError, match="given twice"):
            await c.batches.submit("openai/gpt-4o", requests_for(["a", "b"]), custom_ids="xx")
        with pytest.raises(errors.BadRequestError, match="one model"):
            await c.batches.submit("openai/gpt-4o", requests_for(["a"], model="gpt-4o-mini"))
        with pytest.raises(errors.BadRequestError, match="only a direct call"):
            await c.batches.submit("openai/gpt-4o", requests_for(["a"], stream=True))
        with pytest.raises(errors.BadRequestError, match="at least one request"):
            await c.batches.submit("openai/gpt-4o", [])
        with pytest.raises(errors.BadRequestError, match="messages"):
            await c.batches.submit("openai/gpt-4o", [{"prompt": "x"}])
        with pytest.raises(errors.BadRequestError, match="unknown keyword"):
            await c.batches.submit("openai/gpt-4o", requests_for(["a"]), temperature=1)
