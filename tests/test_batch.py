"""The Client's batch helpers: abatch_completion and the several-models pair (virtual time)."""

from __future__ import annotations

import pytest
import trio
import trio.testing

import trillm
from trillm import errors


def req(text: str, **kw: object) -> dict[str, object]:
    return {"model": "mock/m", "messages": [{"role": "user", "content": text}], **kw}


async def test_results_in_order_with_progress_and_limit(
    autojump_clock: trio.testing.MockClock,
) -> None:
    seen: list[tuple[int, int]] = []
    async with trillm.Client() as client:
        requests = [req(f"q{i}", mock_latency=10 - i) for i in range(6)]
        out = await client.abatch_completion(requests, limit=2,
                                             progress=lambda d, t: seen.append((d, t)))
    assert [r.choices[0].message.content for r in out] == [f"q{i}" for i in range(6)]
    assert seen == [(i, 6) for i in range(1, 7)]
    # two at a time: 10 and 9 start at 0; 8 at 9 and 7 at 10 (both end at 17); 6 and 5 at 17
    assert trio.current_time() == 23.0


async def test_return_exceptions_keeps_failures_in_place(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with trillm.Client(max_retries=0) as client:
        out = await client.abatch_completion(
            [req("a"), req("b", mock_response=errors.RateLimitError("slow")), req("c")],
            return_exceptions=True,
        )
    assert isinstance(out[1], errors.RateLimitError)
    assert [out[0].choices[0].message.content, out[2].choices[0].message.content] == ["a", "c"]


async def test_without_return_exceptions_the_first_failure_cancels_the_rest(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with trillm.Client(max_retries=0) as client:
        with pytest.RaisesGroup(errors.RateLimitError):
            await client.abatch_completion([
                req("a", mock_response=errors.RateLimitError("slow"), mock_latency=1),
                req("b", mock_response=errors.AuthenticationError("key"), mock_latency=2),
                req("c", mock_latency=100),  # both cancelled by the first failure
            ])
        assert trio.current_time() == 1.0


async def test_bad_requests_are_refused_before_anything_runs() -> None:
    async with trillm.Client() as client:
        with pytest.raises(errors.BadRequestError, match=r"requests\[1\]"):
            await client.abatch_completion([req("a"), {"messages": []}])
        with pytest.raises(errors.BadRequestError, match="stream"):
            await client.abatch_completion([req("a", stream=True)])
        with pytest.raises(errors.BadRequestError, match="at least one"):
            await client.abatch_completion_models(models=[], messages=[])


async def test_first_model_to_answer_wins_and_the_others_are_cancelled(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with trillm.Client() as client:
        first = await client.abatch_completion_models(
            models=["mock/slow", "mock/fast"], messages=[{"role": "user", "content": "hi"}],
            mock_latency=None,
        )
        assert first.model in ("slow", "fast")
        r = await trillm.race(
            lambda: client.acompletion("mock/slow", [{"role": "user", "content": "s"}],
                                       mock_latency=5),
            lambda: client.acompletion("mock/fast", [{"role": "user", "content": "f"}],
                                       mock_latency=1),
        )
    assert r.model == "fast"
    assert trio.current_time() == 1.0  # the slow one did not hold the call


async def test_all_responses_in_model_order(autojump_clock: trio.testing.MockClock) -> None:
    models = ["mock/gpt", "mock/claude", "mock/gemini"]
    out = await trillm.abatch_completion_models_all_responses(
        models=models, messages=[{"role": "user", "content": "hi"}])
    assert [r.model for r in out] == ["gpt", "claude", "gemini"]


async def test_module_level_batch(autojump_clock: trio.testing.MockClock) -> None:
    out = await trillm.abatch_completion([req("x"), req("y")])
    assert [r.choices[0].message.content for r in out] == ["x", "y"]
