"""Client-side fan-out: many requests at once, or one prompt to many models.

LiteLLM users know these as ``abatch_completion`` / ``batch_completion_models``;
here they are thin layers over :mod:`trillm.concurrency`, so they inherit its
guarantees: every failure surfaces (an ``ExceptionGroup``, or in place with
``return_exceptions=True``), nothing outlives the call, and ``limit`` is the
helper's own limiter, never the Client's (which still caps requests on the wire).
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import outcome
import trio

from . import errors
from .concurrency import gather, gather_settled, race

if TYPE_CHECKING:
    from .types import ModelResponse

#: What answers one request: a Client's ``acompletion`` (passed in, so this module
#: never imports the Client that uses it).
Complete = Callable[..., Awaitable[Any]]

__all__ = ["abatch_completion", "abatch_completion_models",
           "abatch_completion_models_all_responses"]

Progress = Callable[[int, int], None]


def _request_fns(
    complete: Complete, requests: Sequence[Mapping[str, Any]], progress: Progress | None
) -> list[Callable[[], Any]]:
    total = len(requests)
    for i, req in enumerate(requests):
        if not isinstance(req, Mapping) or "model" not in req or "messages" not in req:
            raise errors.BadRequestError(
                f"requests[{i}] must be a dict with 'model' and 'messages' (and any other "
                "acompletion keyword)"
            )
        if req.get("stream"):
            raise errors.BadRequestError(
                f"requests[{i}] asks for stream=True: batch helpers return whole answers"
            )
    done = 0

    def finished() -> None:
        nonlocal done
        done += 1
        if progress is not None:
            progress(done, total)

    async def one(req: Mapping[str, Any]) -> ModelResponse:
        try:
            response: ModelResponse = await complete(**req)
        except Exception:  # a failure is "done" too; a cancellation is not
            finished()
            raise
        finished()
        return response

    return [functools.partial(one, req) for req in requests]


async def abatch_completion(
    complete: Complete,
    requests: Sequence[Mapping[str, Any]],
    *,
    limit: int | None = None,
    return_exceptions: bool = False,
    progress: Progress | None = None,
) -> list[Any]:
    """Run every request (a dict of :meth:`Client.acompletion` keywords), results in order."""
    try:
        fns = _request_fns(complete, requests, progress)
    except errors.APIError as exc:
        failure = exc
    else:
        if not return_exceptions:
            return await gather(*fns, limit=limit)
        settled = await gather_settled(*fns, limit=limit)
        return [_value_or_error(o) for o in settled]
    await trio.lowlevel.checkpoint()
    raise failure


async def abatch_completion_models(
    complete: Complete, *, models: Sequence[str], messages: Sequence[Mapping[str, Any]],
    **kwargs: Any,
) -> ModelResponse:
    """The first successful answer among *models*; the others are cancelled at once."""
    if not models:
        await trio.lowlevel.checkpoint()
        raise errors.BadRequestError("models must name at least one model")
    fns = [functools.partial(complete, m, messages, **kwargs) for m in models]
    return await race(*fns)


async def abatch_completion_models_all_responses(
    complete: Complete, *, models: Sequence[str], messages: Sequence[Mapping[str, Any]],
    return_exceptions: bool = False, progress: Progress | None = None, **kwargs: Any,
) -> list[Any]:
    """Every model's answer to the same *messages*, in the order of *models*."""
    requests = [{"model": m, "messages": messages, **kwargs} for m in models]
    return await abatch_completion(complete, requests, return_exceptions=return_exceptions,
                                   progress=progress)


def _value_or_error(result: outcome.Outcome[Any]) -> Any:
    if isinstance(result, outcome.Error):
        return result.error
    assert isinstance(result, outcome.Value)
    return result.value
