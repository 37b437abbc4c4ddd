"""Values of OpenAI's Responses API: the request record, ``Response``, its items, its events.

Every record has attribute access and read-only ``Mapping`` access over its
public, non-None fields, like the chat records of :mod:`trillm.types`::

    r.output_text                        # all output text, joined
    r.output[0].content[0].text          # a message item's first text part
    r["usage"]["output_tokens"]
    r.usage.input_tokens_details.cached_tokens

``Response.output`` holds typed items for ``message``, ``function_call`` and
``reasoning``; an item of any other type (``web_search_call``,
``file_search_call``, ...) is kept as its raw JSON dict.  The provider's raw
JSON stays reachable as ``.raw``, the redacted response headers as ``.headers``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import attrs

from ._records import HIDDEN, Record, record, record_repr

__all__ = [
    "OutputItem",
    "Response",
    "ResponseEvent",
    "ResponseFunctionCall",
    "ResponseInputTokensDetails",
    "ResponseOutputMessage",
    "ResponseOutputRefusal",
    "ResponseOutputText",
    "ResponseOutputTokensDetails",
    "ResponseReasoning",
    "ResponseUsage",
    "ResponsesRequest",
    "TERMINAL_EVENTS",
]

#: The events a Responses stream ends with (``response.failed`` and ``error`` raise instead).
TERMINAL_EVENTS = frozenset({"response.completed", "response.incomplete"})


# ---------------------------------------------------------------- output items


@record
@attrs.frozen(repr=False)
class ResponseOutputText(Record):
    """A text part of a message item (``type`` ``"output_text"``)."""

    text: str
    annotations: tuple[Any, ...] = ()
    type: str = "output_text"
    logprobs: Any = None


@record
@attrs.frozen(repr=False)
class ResponseOutputRefusal(Record):
    """A refusal part of a message item (``type`` ``"refusal"``)."""

    refusal: str
    type: str = "refusal"


@record
@attrs.frozen(repr=False)
class ResponseOutputMessage(Record):
    """A ``message`` item: the model's answer as content parts (text or refusal; a part
    of another type is kept as its raw dict)."""

    id: str
    content: tuple[ResponseOutputText | ResponseOutputRefusal | Mapping[str, Any], ...] = ()
    role: str = "assistant"
    status: str | None = None
    type: str = "message"


@record
@attrs.frozen(repr=False)
class ResponseFunctionCall(Record):
    """A ``function_call`` item: answer it with a ``function_call_output`` input item of the
    same ``call_id``; ``arguments`` is a JSON string."""

    call_id: str
    name: str
    arguments: str = ""
    id: str | None = None
    status: str | None = None
    type: str = "function_call"


@record
@attrs.frozen(repr=False)
class ResponseReasoning(Record):
    """A ``reasoning`` item: its ``summary`` parts (``{"type": "summary_text", "text": ...}``),
    and its ``content`` or ``encrypted_content`` when the server sends them."""

    id: str
    summary: tuple[Mapping[str, Any], ...] = ()
    content: tuple[Mapping[str, Any], ...] | None = None
    encrypted_content: str | None = None
    status: str | None = None
    type: str = "reasoning"


#: One item of ``Response.output``: a typed item, or the raw dict of any other type.
OutputItem = ResponseOutputMessage | ResponseFunctionCall | ResponseReasoning | Mapping[str, Any]


# ---------------------------------------------------------------- usage


@record
@attrs.frozen(repr=False)
class ResponseInputTokensDetails(Record):
    """The input tokens served from the prompt cache."""

    cached_tokens: int = 0


@record
@attrs.frozen(repr=False)
class ResponseOutputTokensDetails(Record):
    """The output tokens spent on reasoning."""

    reasoning_tokens: int = 0


@record
@attrs.frozen(repr=False)
class ResponseUsage(Record):
    """Token counts of one response; the details are zero when the server leaves them out."""

    input_tokens: int = 0
    output_tokens: int = 0
    total_tokens: int = 0
    input_tokens_details: ResponseInputTokensDetails = attrs.field(
        factory=ResponseInputTokensDetails)
    output_tokens_details: ResponseOutputTokensDetails = attrs.field(
        factory=ResponseOutputTokensDetails)


# ---------------------------------------------------------------- the response


@record
@attrs.frozen(repr=False)
class Response(Record):
    """A response of the Responses API, whichever server answered.

    ``status`` is ``"completed"``, ``"incomplete"`` (see ``incomplete_details``),
    ``"failed"`` (see ``error``), or ``"in_progress"`` / ``"queued"`` in a stream's
    early events and for background responses.  ``output_text`` joins every
    ``output_text`` part of every message item.
    """

    id: str
    model: str
    output: tuple[OutputItem, ...] = ()
    status: str | None = None
    usage: ResponseUsage | None = None
    incomplete_details: Mapping[str, Any] | None = None
    error: Mapping[str, Any] | None = None
    created_at: float | None = None
    previous_response_id: str | None = None
    object: str = "response"
    #: The answer parsed into ``text_format=`` (structured output; None without it).
    output_parsed: Any = None
    #: What the answer cost at the Client's ``prices=`` (None without a price for the model).
    cost: float | None = attrs.field(default=None, kw_only=True)
    raw: Any = attrs.field(default=None, repr=False, eq=False, metadata=HIDDEN)
    headers: Mapping[str, str] = attrs.field(factory=dict, repr=False, eq=False,
                                             metadata=HIDDEN)

    @property
    def output_text(self) -> str:
        """All ``output_text`` parts of the message items, joined ("" when there are none)."""
        return "".join(
            part.text
            for item in self.output if isinstance(item, ResponseOutputMessage)
            for part in item.content if isinstance(part, ResponseOutputText)
        )


# ---------------------------------------------------------------- stream events


@record
@attrs.frozen(repr=False)
class ResponseEvent(Record):
    """One event of a streamed response.

    ``type`` is the event's type (``"response.output_text.delta"``, ...; an
    unknown one is passed through as it came), ``data`` the event's whole JSON
    object, ``delta`` the text of a ``*.delta`` event (None for others).
    ``response`` is the parsed :class:`Response` of the events that carry one
    (``response.created``, ``response.in_progress``, ``response.completed``,
    ``response.incomplete``); it is not part of the Mapping view (``data`` holds
    its JSON).
    """

    type: str
    sequence_number: int | None = None
    data: Mapping[str, Any] = attrs.field(factory=dict)
    delta: str | None = None
    response: Response | None = attrs.field(default=None, repr=False, eq=False,
                                            metadata=HIDDEN)


# ---------------------------------------------------------------- the request


@attrs.frozen(repr=False)
class ResponsesRequest:
    """A normalized Responses API request, before a provider translates it.

    ``input`` is the caller's string, or its list of input items as plain
    dicts; ``params`` holds the other body fields the caller gave
    (``instructions``, ``tools``, ``text``, ``max_output_tokens``, ``reasoning``,
    ``previous_response_id``, ``store``, and any other keyword), None values removed.
    """

    __repr__ = record_repr

    provider: str
    model: str
    input: str | tuple[Mapping[str, Any], ...]
    stream: bool = False
    params: Mapping[str, Any] = attrs.field(factory=dict)
    extra_body: Mapping[str, Any] | None = None
    extra_headers: Mapping[str, str] | None = attrs.field(default=None, repr=False)
    #: ``text_format=``'s model class: not sent (``params["text"]`` carries its schema), it
    #: parses the answer into ``Response.output_parsed``.
    text_format: Any = attrs.field(default=None, repr=False)
