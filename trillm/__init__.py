"""trillm: a trio-native, structured-concurrency client for LLM APIs.

``await trillm.acompletion(model=..., messages=...)`` and ``async with
trillm.stream(...) as s:`` use a default :class:`Client` kept per trio run;
``async with trillm.Client(...) as client:`` gives you your own, with its own
limits.  See the README and ``docs/`` for the guarantees and the recipes.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Literal, overload

from . import errors as errors
from ._default import default_client
from ._outside import run_outside_trio_with as _run_outside_trio_with
from .client import Client as Client
from .client import StreamOpener as StreamOpener
from .errors import APIConnectionError as APIConnectionError
from .errors import APIError as APIError
from .errors import APIStatusError as APIStatusError
from .errors import APITimeoutError as APITimeoutError
from .errors import AuthenticationError as AuthenticationError
from .errors import BadRequestError as BadRequestError
from .errors import ConflictError as ConflictError
from .errors import ContentFilterFinishReasonError as ContentFilterFinishReasonError
from .errors import InternalServerError as InternalServerError
from .errors import LengthFinishReasonError as LengthFinishReasonError
from .errors import NotFoundError as NotFoundError
from .errors import PermissionDeniedError as PermissionDeniedError
from .errors import RateLimitError as RateLimitError
from .errors import StructuredOutputError as StructuredOutputError
from .errors import UnprocessableEntityError as UnprocessableEntityError
from .retry import RetryPolicy as RetryPolicy
from .types import ChatRequest as ChatRequest
from .types import Choice as Choice
from .types import Message as Message
from .types import ModelResponse as ModelResponse
from .types import Usage as Usage

if TYPE_CHECKING:
    from ._files import SpeechResponse as SpeechResponse
    from ._response_stream import ResponseStream as ResponseStream
    from ._responses import ResponseStreamOpener as ResponseStreamOpener
    from ._statistics import ClientStatistics as ClientStatistics
    from ._stream import AudioStream as AudioStream
    from ._stream import Stream as Stream
    from ._sync import SyncResponseStream as SyncResponseStream
    from ._sync import SyncStream as SyncStream
    from ._sync import completion as completion
    from ._sync import embedding as embedding
    from ._sync import image_generation as image_generation
    from ._sync import responses as responses
    from ._sync import speech as speech
    from ._sync import transcription as transcription
    from .accumulate import stream_chunk_builder as stream_chunk_builder
    from .batch import Batches as Batches
    from .batch import BatchResults as BatchResults
    from .batch_types import BatchItem as BatchItem
    from .batch_types import BatchJob as BatchJob
    from .batch_types import BatchRequestCounts as BatchRequestCounts
    from .concurrency import amap as amap
    from .concurrency import as_completed as as_completed
    from .concurrency import gather as gather
    from .concurrency import gather_settled as gather_settled
    from .concurrency import hedge as hedge
    from .concurrency import race as race
    from .hooks import AttemptInfo as AttemptInfo
    from .hooks import CallInfo as CallInfo
    from .hooks import CallResult as CallResult
    from .hooks import Hook as Hook
    from .limits import RateLimit as RateLimit
    from .limits import RateLimiter as RateLimiter
    from .openai_compat import AsyncOpenAI as AsyncOpenAI
    from .openai_compat import OpenAI as OpenAI
    from .response_types import Response as Response
    from .response_types import ResponseEvent as ResponseEvent
    from .response_types import ResponseFunctionCall as ResponseFunctionCall
    from .response_types import ResponseOutputMessage as ResponseOutputMessage
    from .response_types import ResponseOutputRefusal as ResponseOutputRefusal
    from .response_types import ResponseOutputText as ResponseOutputText
    from .response_types import ResponseReasoning as ResponseReasoning
    from .response_types import ResponseUsage as ResponseUsage
    from .structured import strict_json_schema as strict_json_schema
    from .tools import run_tool_calls as run_tool_calls
    from .types import Delta as Delta
    from .types import Embedding as Embedding
    from .types import EmbeddingResponse as EmbeddingResponse
    from .types import FunctionCall as FunctionCall
    from .types import FunctionDelta as FunctionDelta
    from .types import ImageObject as ImageObject
    from .types import ImageResponse as ImageResponse
    from .types import StreamChoice as StreamChoice
    from .types import StreamChunk as StreamChunk
    from .types import ToolCall as ToolCall
    from .types import ToolCallDelta as ToolCallDelta
    from .types import TranscriptionResponse as TranscriptionResponse
    from .usage import ModelTotals as ModelTotals
    from .usage import Prices as Prices
    from .usage import cost as cost

__version__ = "0.1.0"

# Imported on first use, to keep `import trillm` cheap (every attrs class costs a compile
# at import): what a plain chat call does not need.  The sync API starts a thread
# machinery, the Responses API, batches, the fan-out helpers (gather, amap, ...), hooks
# and prices, rate limits, the media records and the OpenAI SDK's call shape (AsyncOpenAI,
# OpenAI) are for those who use them, a stream's chunk records for streams.
# tests/test_imports.py checks that every name resolves and what stays unloaded.
_LAZY = {
    "SpeechResponse": "_files",
    "ResponseStream": "_response_stream", "ClientStatistics": "_statistics",
    "AudioStream": "_stream", "Stream": "_stream", "stream_chunk_builder": "accumulate",
    "ResponseStreamOpener": "_responses",
    "SyncStream": "_sync", "SyncResponseStream": "_sync", "completion": "_sync",
    "embedding": "_sync", "image_generation": "_sync", "responses": "_sync",
    "speech": "_sync", "transcription": "_sync",
    "Batches": "batch", "BatchResults": "batch",
    "amap": "concurrency", "as_completed": "concurrency", "gather": "concurrency",
    "gather_settled": "concurrency", "hedge": "concurrency", "race": "concurrency",
    "BatchItem": "batch_types", "BatchJob": "batch_types", "BatchRequestCounts": "batch_types",
    "AttemptInfo": "hooks", "CallInfo": "hooks", "CallResult": "hooks", "Hook": "hooks",
    "RateLimit": "limits", "RateLimiter": "limits",
    "AsyncOpenAI": "openai_compat", "OpenAI": "openai_compat",
    "Response": "response_types", "ResponseEvent": "response_types",
    "ResponseFunctionCall": "response_types", "ResponseOutputMessage": "response_types",
    "ResponseOutputRefusal": "response_types", "ResponseOutputText": "response_types",
    "ResponseReasoning": "response_types", "ResponseUsage": "response_types",
    "run_tool_calls": "tools", "strict_json_schema": "structured",
    "Embedding": "types", "EmbeddingResponse": "types", "ImageObject": "types",
    "Delta": "types", "FunctionDelta": "types", "StreamChoice": "types",
    "StreamChunk": "types", "ToolCallDelta": "types", "FunctionCall": "types",
    "ToolCall": "types",
    "ImageResponse": "types", "TranscriptionResponse": "types",
    "ModelTotals": "usage", "Prices": "usage", "cost": "usage",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'trillm' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))


def _outside_trio(call: Callable[[], Any]) -> Any:
    """The asyncio bridge, imported the first time a call is awaited outside trio (it then
    registers itself in this runner's place)."""
    from ._bridge import call_in_trio

    return call_in_trio(call)


_run_outside_trio_with(_outside_trio)

__all__ = [
    "APIConnectionError",
    "APIError",
    "APIStatusError",
    "APITimeoutError",
    "AsyncOpenAI",
    "AttemptInfo",
    "AudioStream",
    "AuthenticationError",
    "BadRequestError",
    "CallInfo",
    "CallResult",
    "ChatRequest",
    "Choice",
    "Client",
    "ClientStatistics",
    "ConflictError",
    "ContentFilterFinishReasonError",
    "Delta",
    "Embedding",
    "EmbeddingResponse",
    "FunctionCall",
    "FunctionDelta",
    "Hook",
    "ImageObject",
    "ImageResponse",
    "InternalServerError",
    "LengthFinishReasonError",
    "Message",
    "ModelResponse",
    "ModelTotals",
    "NotFoundError",
    "OpenAI",
    "PermissionDeniedError",
    "Prices",
    "RateLimit",
    "RateLimitError",
    "RateLimiter",
    "Response",
    "ResponseEvent",
    "ResponseFunctionCall",
    "ResponseOutputMessage",
    "ResponseOutputRefusal",
    "ResponseOutputText",
    "ResponseReasoning",
    "ResponseStream",
    "ResponseStreamOpener",
    "ResponseUsage",
    "RetryPolicy",
    "SpeechResponse",
    "Stream",
    "StreamChoice",
    "StreamChunk",
    "StreamOpener",
    "StructuredOutputError",
    "SyncResponseStream",
    "SyncStream",
    "ToolCall",
    "ToolCallDelta",
    "TranscriptionResponse",
    "UnprocessableEntityError",
    "Usage",
    "BatchItem",
    "BatchJob",
    "BatchRequestCounts",
    "BatchResults",
    "Batches",
    "abatch_cancel",
    "abatch_completion",
    "abatch_completion_models",
    "abatch_completion_models_all_responses",
    "abatch_results",
    "abatch_status",
    "abatch_submit",
    "abatch_wait",
    "acompletion",
    "acount_tokens",
    "aembedding",
    "aimage_generation",
    "aresponses",
    "aspeech",
    "atranscription",
    "amap",
    "completion",
    "cost",
    "embedding",
    "as_completed",
    "errors",
    "gather",
    "gather_settled",
    "hedge",
    "image_generation",
    "race",
    "responses",
    "responses_stream",
    "run_tool_calls",
    "speech",
    "stream",
    "stream_chunk_builder",
    "strict_json_schema",
    "transcription",
]


@overload
async def acompletion(
    model: str, messages: Sequence[Mapping[str, Any]], *,
    stream: Literal[False] = False, **kwargs: Any,
) -> ModelResponse: ...


@overload
async def acompletion(
    model: str, messages: Sequence[Mapping[str, Any]], *, stream: Literal[True], **kwargs: Any,
) -> Stream: ...


async def acompletion(
    model: str, messages: Sequence[Mapping[str, Any]], *, stream: bool = False, **kwargs: Any
) -> ModelResponse | Stream:
    """:meth:`Client.acompletion` on this trio run's default client."""
    return await default_client().acompletion(  # type: ignore[call-overload,no-any-return]
        model, messages, stream=stream, **kwargs
    )


def stream(model: str, messages: Sequence[Mapping[str, Any]], **kwargs: Any) -> StreamOpener:
    """``async with trillm.stream(model=..., messages=...) as s:`` on the default client."""
    return StreamOpener(default_client, model, messages, kwargs)


async def abatch_completion(
    requests: Sequence[Mapping[str, Any]], *, limit: int | None = None,
    return_exceptions: bool = False, progress: Callable[[int, int], None] | None = None,
) -> list[Any]:
    """:meth:`Client.abatch_completion` on this trio run's default client."""
    return await default_client().abatch_completion(
        requests, limit=limit, return_exceptions=return_exceptions, progress=progress
    )


async def abatch_completion_models(
    *, models: Sequence[str], messages: Sequence[Mapping[str, Any]], **kwargs: Any
) -> ModelResponse:
    """:meth:`Client.abatch_completion_models` on this trio run's default client."""
    return await default_client().abatch_completion_models(
        models=models, messages=messages, **kwargs
    )


async def abatch_completion_models_all_responses(
    *, models: Sequence[str], messages: Sequence[Mapping[str, Any]], **kwargs: Any
) -> list[Any]:
    """:meth:`Client.abatch_completion_models_all_responses` on the default client."""
    return await default_client().abatch_completion_models_all_responses(
        models=models, messages=messages, **kwargs
    )


async def aembedding(
    model: str, input: str | Sequence[str], **kwargs: Any
) -> EmbeddingResponse:
    """:meth:`Client.aembedding` on this trio run's default client."""
    return await default_client().aembedding(model, input, **kwargs)


async def acount_tokens(
    model: str, messages: Sequence[Mapping[str, Any]], *,
    tools: Sequence[Mapping[str, Any]] | None = None, system: str | None = None, **kwargs: Any,
) -> int:
    """:meth:`Client.acount_tokens` on this trio run's default client."""
    return await default_client().acount_tokens(model, messages, tools=tools, system=system,
                                                **kwargs)


async def aimage_generation(model: str, prompt: str, **kwargs: Any) -> ImageResponse:
    """:meth:`Client.aimage_generation` on this trio run's default client."""
    return await default_client().aimage_generation(model, prompt, **kwargs)


async def atranscription(model: str, file: Any, **kwargs: Any) -> TranscriptionResponse:
    """:meth:`Client.atranscription` on this trio run's default client."""
    return await default_client().atranscription(model, file, **kwargs)


async def aspeech(
    model: str, input: str, voice: str | None = None, **kwargs: Any
) -> SpeechResponse | AudioStream:
    """:meth:`Client.aspeech` on this trio run's default client."""
    return await default_client().aspeech(model, input, voice, **kwargs)


@overload
async def aresponses(
    model: str, input: str | Sequence[Mapping[str, Any]], *,
    stream: Literal[False] = False, **kwargs: Any,
) -> Response: ...


@overload
async def aresponses(
    model: str, input: str | Sequence[Mapping[str, Any]], *, stream: Literal[True],
    **kwargs: Any,
) -> ResponseStream: ...


async def aresponses(
    model: str, input: str | Sequence[Mapping[str, Any]], *, stream: bool = False,
    **kwargs: Any,
) -> Response | ResponseStream:
    """:meth:`Client.aresponses` (OpenAI's Responses API) on this trio run's default client."""
    return await default_client().aresponses(  # type: ignore[call-overload,no-any-return]
        model, input, stream=stream, **kwargs
    )


def responses_stream(
    model: str, input: str | Sequence[Mapping[str, Any]], **kwargs: Any
) -> ResponseStreamOpener:
    """``async with trillm.responses_stream(model, input) as s:`` on the default client."""
    from ._responses import ResponseStreamOpener

    return ResponseStreamOpener(default_client, model, input, kwargs, name="trillm")


# ---------------------------------------------------------------- provider batch APIs


async def abatch_submit(
    model: str, requests: Iterable[Mapping[str, Any]], *,
    custom_ids: Iterable[str] | None = None, metadata: Mapping[str, str] | None = None,
    client: Client | None = None, **kwargs: Any,
) -> BatchJob:
    """Submit *requests* to *model*'s provider batch API (:meth:`Batches.submit`), on
    *client* or this trio run's default client."""
    return await (client or default_client()).batches.submit(
        model, requests, custom_ids=custom_ids, metadata=metadata, **kwargs)


async def abatch_status(job: BatchJob | str, *, client: Client | None = None,
                        **kwargs: Any) -> BatchJob:
    """The batch *job* as its provider reports it now (:meth:`Batches.status`)."""
    return await (client or default_client()).batches.status(job, **kwargs)


async def abatch_cancel(job: BatchJob | str, *, client: Client | None = None,
                        **kwargs: Any) -> BatchJob:
    """Cancel the batch *job* (:meth:`Batches.cancel`)."""
    return await (client or default_client()).batches.cancel(job, **kwargs)


async def abatch_wait(job: BatchJob | str, *, poll: float = 30.0,
                      client: Client | None = None, **kwargs: Any) -> BatchJob:
    """Poll the batch *job* every *poll* seconds until it is done (:meth:`Batches.wait`)."""
    return await (client or default_client()).batches.wait(job, poll=poll, **kwargs)


def abatch_results(job: BatchJob | str, *, client: Client | None = None,
                   **kwargs: Any) -> BatchResults:
    """``async for item in trillm.abatch_results(job)``: each request's
    :class:`BatchItem` (:meth:`Batches.results`)."""
    return (client or default_client()).batches.results(job, **kwargs)
