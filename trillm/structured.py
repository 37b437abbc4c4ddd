"""Structured output: the JSON schema each provider accepts, and answers parsed into models.

Pure (stdlib and attrs only): a pydantic model is duck-typed through its
``model_json_schema()`` and ``model_validate_json()`` classmethods, so pydantic stays out
of trillm's dependencies.

A call's ``response_format`` is a model class or one of OpenAI's dict forms
(:func:`response_format_kind`); :func:`response_format_body` gives the request-body
fields each provider reads it from, and :func:`parse_response` fills
``message.parsed`` in the answer (or raises a :class:`~trillm.errors.StructuredOutputError`).

:func:`strict_json_schema` returns the schema alone; :func:`structured_output_body` wraps it
in the request-body fields where each provider reads it::

    openai     {"response_format": {"type": "json_schema",
                                    "json_schema": {"name": ..., "schema": ..., "strict": True}}}
    anthropic  {"output_config": {"format": {"type": "json_schema", "schema": ...}}}
    gemini     {"generationConfig": {"responseMimeType": "application/json",
                                     "responseJsonSchema": ...}}
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Literal

import attrs

from . import errors

if TYPE_CHECKING:
    from .response_types import Response
    from .types import ModelResponse

__all__ = ["DIALECTS", "Dialect", "FormatKind", "parse_response", "parse_response_output",
           "response_format_body", "text_format_body",
           "response_format_kind", "strict_json_schema", "structured_output_body"]

Dialect = Literal["openai", "anthropic", "gemini"]
DIALECTS: tuple[Dialect, ...] = ("openai", "anthropic", "gemini")
FormatKind = Literal["model", "json_schema", "json_object", "text"]

# The string formats Anthropic's structured outputs accept; any other moves to the description.
_ANTHROPIC_FORMATS = frozenset({
    "date-time", "time", "date", "duration", "email", "hostname", "uri", "ipv4", "ipv6", "uuid",
})
# Keywords Anthropic accepts as they are (the rest of the schema is rebuilt key by key).
_ANTHROPIC_KEEP = frozenset({
    "$ref", "type", "required", "enum", "const", "default", "description", "title", "pattern",
})
# Keywords that say nothing about the answer's shape to the model: dropped, not described.
_ANTHROPIC_DROP = frozenset({"$schema", "$id", "$comment", "discriminator"})

_ABSENT: Any = object()


def _refuse(message: str) -> errors.BadRequestError:
    return errors.BadRequestError(message)


def strict_json_schema(model_or_schema: Any, dialect: str = "openai") -> dict[str, Any]:
    """The JSON schema *dialect*'s structured output accepts, for a model or a schema.

    *model_or_schema* is a class with ``model_json_schema()`` (a pydantic v2 model), a JSON
    schema as a dict, or OpenAI's ``{"type": "json_schema", "json_schema": {"name": ...,
    "schema": ..., "strict": ...}}`` (its ``schema`` is taken).  The input is never mutated;
    the result is a fresh dict, sharing nothing with it.

    * ``"openai"``: the rules of the OpenAI SDK's ``to_strict_json_schema``.  Through
      ``$defs``, ``definitions``, ``properties``, ``items``, ``anyOf`` and ``allOf``: every
      object gets ``additionalProperties: false`` and lists all its properties in
      ``required``; a one-element ``allOf`` is inlined; ``default: null`` is dropped; a
      ``$ref`` with sibling keys is replaced by its (strict) target under those keys.  Send
      it as ``response_format={"type": "json_schema", "json_schema": {"name": ...,
      "schema": <this>, "strict": True}}``.
    * ``"anthropic"``: objects get ``additionalProperties: false`` (``required`` stays as
      given); ``oneOf`` becomes ``anyOf``; a one-element ``allOf`` is inlined; keywords
      Anthropic refuses (``minimum``, ``maxLength``, ``minItems`` above 1, an unknown
      ``format``, ...) move into the schema's ``description`` as JSON.  Send it as
      ``output_config={"format": {"type": "json_schema", "schema": <this>}}``.
    * ``"gemini"``: standard JSON Schema, ``$defs``/``$ref`` included, as given (a copy).
      Send it as ``generationConfig={"responseMimeType": "application/json",
      "responseJsonSchema": <this>}`` (never the OpenAPI-subset ``responseSchema``).

    :func:`structured_output_body` gives those fields whole::

        >>> schema = {"type": "object", "properties": {"n": {"type": "integer", "minimum": 1}}}
        >>> strict_json_schema(schema, "openai")["required"]
        ['n']
        >>> body = structured_output_body(schema, "anthropic")
        >>> body["output_config"]["format"]["schema"]["properties"]
        {'n': {'type': 'integer', 'description': '{"minimum": 1}'}}

    Raises :class:`~trillm.errors.BadRequestError`, before anything is sent, for an unknown
    dialect, something that is not a schema, or (openai, anthropic) an object that allows
    extra fields (``additionalProperties`` true or a schema: a pydantic model with
    ``extra="allow"``, a ``dict[str, X]`` field), which strict structured output cannot
    express.
    """
    if dialect not in DIALECTS:
        raise _refuse(
            f"unknown structured-output dialect {dialect!r}: use one of {', '.join(DIALECTS)}"
        )
    schema, _ = _schema_and_name(model_or_schema)
    if dialect == "openai":
        result = _openai(schema, schema, "#", ())
    elif dialect == "anthropic":
        result = _anthropic(schema, "#")
    else:
        result = schema
    copied: dict[str, Any] = _copy_json(result)
    return copied


def structured_output_body(
    model_or_schema: Any, dialect: str, *, name: str | None = None
) -> dict[str, Any]:
    """The request-body fields that ask *dialect*'s provider for an answer in this schema.

    ``name`` (OpenAI's ``json_schema.name``) defaults to the name in OpenAI's dict form, else
    the model class's ``__name__``, else ``"response"``; characters OpenAI refuses become
    ``_``.  The schema is :func:`strict_json_schema`'s.  Merge the result into the body
    (``generationConfig`` into Gemini's own, if the body has one).
    """
    schema = strict_json_schema(model_or_schema, dialect)
    if dialect == "anthropic":
        return {"output_config": {"format": {"type": "json_schema", "schema": schema}}}
    if dialect == "gemini":
        return {
            "generationConfig": {
                "responseMimeType": "application/json", "responseJsonSchema": schema,
            }
        }
    given = _schema_and_name(model_or_schema)[1]
    label = re.sub(r"[^A-Za-z0-9_-]", "_", name or given or "response")[:64] or "response"
    return {
        "response_format": {
            "type": "json_schema",
            "json_schema": {"name": label, "schema": schema, "strict": True},
        }
    }


def _schema_and_name(model_or_schema: Any) -> tuple[dict[str, Any], str | None]:
    """The JSON schema (a private copy) and the name a model or OpenAI's dict form gives."""
    if isinstance(model_or_schema, Mapping):
        kind = model_or_schema.get("type")
        if kind == "json_schema" and "json_schema" in model_or_schema:
            inner = model_or_schema["json_schema"]
            if not isinstance(inner, Mapping) or not isinstance(inner.get("schema"), Mapping):
                raise _refuse(
                    "response_format {'type': 'json_schema', ...} needs "
                    "'json_schema': {'name': ..., 'schema': {...}}"
                )
            name = inner.get("name")
            return _copy_json(inner["schema"]), name if isinstance(name, str) else None
        if kind == "json_object" and len(model_or_schema) == 1:
            raise _refuse(
                "{'type': 'json_object'} asks for any JSON object and has no schema to make strict"
            )
        return _copy_json(model_or_schema), None
    method = getattr(model_or_schema, "model_json_schema", None)
    if callable(method):
        schema = method()
        if not isinstance(schema, Mapping):
            raise _refuse(
                f"{model_or_schema!r}.model_json_schema() returned {type(schema).__name__}, "
                "not a JSON schema"
            )
        name = getattr(model_or_schema, "__name__", None)
        return _copy_json(schema), name if isinstance(name, str) else None
    raise _refuse(
        "structured output needs a class with model_json_schema() (a pydantic model), "
        f"a JSON schema dict or OpenAI's json_schema response_format, not {model_or_schema!r}"
    )


def _copy_json(value: Any) -> Any:
    """A deep copy of JSON-like data: mappings become dicts, tuples and lists become lists."""
    if isinstance(value, Mapping):
        return {key: _copy_json(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_copy_json(item) for item in value]
    return value


def _node(schema: Any, where: str) -> dict[str, Any]:
    if not isinstance(schema, dict):
        raise _refuse(f"expected a JSON schema object at {where}, got {schema!r}")
    return schema


def _is_object(schema: dict[str, Any]) -> bool:
    kind = schema.get("type")
    return kind == "object" or (isinstance(kind, list) and "object" in kind)


def _check_closed(schema: dict[str, Any], where: str, dialect: str) -> None:
    extra = schema.get("additionalProperties", _ABSENT)
    if extra is not _ABSENT and extra is not False:
        what = "any extra field" if extra is True else "extra fields of a schema"
        raise _refuse(
            f"{dialect} structured output needs closed objects, but the object at {where} "
            f"allows {what} (additionalProperties: {json.dumps(extra)}); "
            "forbid extra fields (pydantic: extra='forbid' or the default, and no dict[str, X] "
            "fields) or name every property"
        )


def _resolve(root: dict[str, Any], ref: str) -> Any:
    """The schema a local ``$ref`` (``#/$defs/Name``) points at in *root*."""
    if not ref.startswith("#/"):
        raise _refuse(f"only local $refs (#/...) can be inlined, not {ref!r}")
    target: Any = root
    for part in ref[2:].split("/"):
        key = part.replace("~1", "/").replace("~0", "~")
        if not isinstance(target, dict) or key not in target:
            raise _refuse(f"$ref {ref!r} points at nothing in the schema")
        target = target[key]
    return target


# --- openai -------------------------------------------------------------------------------


def _openai(
    schema: Any, root: dict[str, Any], where: str, inlining: tuple[str, ...]
) -> dict[str, Any]:
    node = _node(schema, where)
    out = dict(node)
    for key in ("$defs", "definitions"):
        defs = out.get(key)
        if isinstance(defs, dict):
            out[key] = {
                name: _openai(sub, root, f"{where}/{key}/{name}", inlining)
                for name, sub in defs.items()
            }
    _check_closed(out, where, "openai")
    if _is_object(out) and "additionalProperties" not in out:
        out["additionalProperties"] = False
    properties = out.get("properties")
    if isinstance(properties, dict):
        out["properties"] = {
            name: _openai(sub, root, f"{where}/properties/{name}", inlining)
            for name, sub in properties.items()
        }
        out["required"] = list(properties)
    items = out.get("items")
    if isinstance(items, dict):
        out["items"] = _openai(items, root, f"{where}/items", inlining)
    any_of = out.get("anyOf")
    if isinstance(any_of, list):
        out["anyOf"] = [
            _openai(sub, root, f"{where}/anyOf/{i}", inlining) for i, sub in enumerate(any_of)
        ]
    all_of = out.get("allOf")
    if isinstance(all_of, list):
        parts = [
            _openai(sub, root, f"{where}/allOf/{i}", inlining) for i, sub in enumerate(all_of)
        ]
        if len(parts) == 1:  # the one part's keys win over the outer ones, as in the SDK
            del out["allOf"]
            out.update(parts[0])
        else:
            out["allOf"] = parts
    if "default" in out and out["default"] is None:
        del out["default"]
    ref = out.get("$ref")
    if ref and len(out) > 1:
        # A $ref with sibling keys: the target's keys under the siblings', made strict again.
        if not isinstance(ref, str):
            raise _refuse(f"$ref at {where} is not a string: {ref!r}")
        if ref in inlining:
            raise _refuse(
                f"the recursive $ref {ref!r} at {where} has sibling keys "
                f"({', '.join(k for k in out if k != '$ref')}), so it cannot be inlined; "
                "drop them (e.g. the field's description) or make the field optional"
            )
        target = _node(_resolve(root, ref), ref)
        siblings = {key: value for key, value in out.items() if key != "$ref"}
        return _openai({**target, **siblings}, root, where, (*inlining, ref))
    return out


# --- anthropic ----------------------------------------------------------------------------


def _anthropic_accepts(key: str, value: Any) -> bool:
    if key == "format":
        return isinstance(value, str) and value in _ANTHROPIC_FORMATS
    if key == "minItems":
        return value in (0, 1) and not isinstance(value, bool)
    return key == "additionalProperties" or key in _ANTHROPIC_KEEP


def _anthropic(schema: Any, where: str) -> dict[str, Any]:
    node = _node(schema, where)
    _check_closed(node, where, "anthropic")
    if "oneOf" in node and "anyOf" in node:
        raise _refuse(f"the schema at {where} has both anyOf and oneOf; Anthropic takes anyOf only")
    out: dict[str, Any] = {}
    moved: dict[str, Any] = {}
    for key, value in node.items():
        if key in ("$defs", "definitions", "properties") and isinstance(value, dict):
            out[key] = {
                name: _anthropic(sub, f"{where}/{key}/{name}") for name, sub in value.items()
            }
        elif key == "items" and isinstance(value, dict):
            out[key] = _anthropic(value, f"{where}/items")
        elif key in ("anyOf", "oneOf", "allOf") and isinstance(value, list):
            out["allOf" if key == "allOf" else "anyOf"] = [
                _anthropic(sub, f"{where}/{key}/{i}") for i, sub in enumerate(value)
            ]
        elif _anthropic_accepts(key, value):
            out[key] = value
        elif key not in _ANTHROPIC_DROP:
            moved[key] = value
    if (_is_object(out) or "properties" in out) and "additionalProperties" not in out:
        out["additionalProperties"] = False
    all_of = out.get("allOf")
    if isinstance(all_of, list) and len(all_of) == 1:  # Anthropic refuses allOf with a $ref
        del out["allOf"]
        out = {**all_of[0], **out}
    if moved:
        note = json.dumps(moved, ensure_ascii=False)
        description = out.get("description")
        out["description"] = f"{description}\n\n{note}" if description else note
    return out


# --- response_format: what is sent, and what the answer becomes ---------------------------

_FORMS = (
    "a pydantic model class (anything with model_json_schema() and model_validate_json()), "
    "{'type': 'json_schema', 'json_schema': {'name': ..., 'schema': {...}, 'strict': True}}, "
    "{'type': 'json_object'} or {'type': 'text'}"
)


def response_format_kind(
    fmt: Any, *, provider: str | None = None, model: str | None = None
) -> FormatKind:
    """Which form *fmt*, a call's ``response_format``, takes.

    ``"model"`` (a class with ``model_json_schema()`` and ``model_validate_json()``),
    ``"json_schema"``, ``"json_object"`` or ``"text"`` (OpenAI's dict forms).  Anything
    else is a :class:`~trillm.errors.BadRequestError` (naming *provider* and *model*),
    raised before any traffic.
    """
    try:
        return _kind(fmt)
    except errors.BadRequestError as exc:
        exc.provider, exc.model = provider, model
        raise


def _kind(fmt: Any) -> FormatKind:
    if isinstance(fmt, type):
        if callable(getattr(fmt, "model_json_schema", None)) and callable(
            getattr(fmt, "model_validate_json", None)
        ):
            return "model"
    elif isinstance(fmt, Mapping):
        kind = fmt.get("type")
        if kind == "text" or kind == "json_object":
            return kind  # type: ignore[no-any-return]
        if kind == "json_schema" and isinstance(fmt.get("json_schema"), Mapping):
            return "json_schema"
    elif callable(getattr(fmt, "model_validate_json", None)):
        raise _refuse(f"response_format takes the model class, not an instance: {fmt!r}")
    raise _refuse(f"response_format must be {_FORMS}, not {fmt!r}")


def response_format_body(
    fmt: Any, dialect: str, *, provider: str | None = None, model: str | None = None
) -> dict[str, Any]:
    """The request-body fields that carry *fmt* (a call's ``response_format``) to *dialect*.

    * ``openai`` (Azure and OpenAI-compatible servers too): a model class becomes
      ``{"type": "json_schema", "json_schema": {"name": <class name>, "schema":
      <strict schema>, "strict": True}}``; the dict forms are sent as given.
    * ``anthropic``: a model class or a ``json_schema`` dict becomes
      ``output_config.format`` (the anthropic dialect); ``{"type": "text"}`` sends nothing.
      ``{"type": "json_object"}`` raises: Anthropic has no JSON mode without a schema.
    * ``gemini``: a model class or a ``json_schema`` dict becomes ``generationConfig``'s
      ``responseMimeType`` and ``responseJsonSchema``; ``json_object`` the MIME type only.

    Raises :class:`~trillm.errors.BadRequestError` (with *provider* and *model*) for a
    format that is not one of these, or a schema the dialect cannot express.
    """
    try:
        kind = response_format_kind(fmt)
        if kind == "text":
            return {"response_format": fmt} if dialect == "openai" else {}
        if dialect == "openai":
            return structured_output_body(fmt, dialect) if kind == "model" else {
                "response_format": fmt}
        if kind != "json_object":
            return structured_output_body(fmt, dialect)
        if dialect == "gemini":
            return {"generationConfig": {"responseMimeType": "application/json"}}
        raise _refuse(
            f"{dialect} does not take response_format={{'type': 'json_object'}}: it has no "
            "JSON mode without a schema; pass a pydantic model class or "
            "{'type': 'json_schema', 'json_schema': {'name': ..., 'schema': {...}}}"
        )
    except errors.BadRequestError as exc:
        exc.provider, exc.model = provider, model
        raise


def parse_response(
    response: ModelResponse, fmt: Any, *, provider: str | None = None
) -> ModelResponse:
    """*response* with each choice's ``message.parsed`` filled in from its text.

    Only for a model class (``fmt.model_validate_json(text)``) or the ``json_schema`` and
    ``json_object`` dict forms (``json.loads(text)``: trillm checks no schema); otherwise
    *response* comes back as it is.  As in the OpenAI SDK, every choice is checked first
    (a refusal excepted):
    ``finish_reason`` ``"length"`` raises :class:`~trillm.errors.LengthFinishReasonError`,
    ``"content_filter"`` :class:`~trillm.errors.ContentFilterFinishReasonError`.  A refusal
    (``message.refusal`` set) and a tool-call answer (``tool_calls`` set) leave ``parsed``
    None; any other text that does not validate (an empty answer included) raises
    :class:`~trillm.errors.StructuredOutputError` carrying the text and the error.
    """
    kind = response_format_kind(fmt)
    if kind == "text":
        return response
    model = response.model
    for choice in response.choices:
        if choice.message.refusal:
            continue  # a refusal is an answer: parsed stays None (Anthropic's says content_filter)
        reason = choice.finish_reason
        if reason == "length":
            raise errors.LengthFinishReasonError(
                "the answer was cut off by the length limit (finish_reason 'length') before "
                "its JSON was complete: raise max_tokens (or max_completion_tokens) or ask "
                "for less", text=choice.message.content, completion=response, provider=provider,
                model=model,
            )
        if reason == "content_filter":
            raise errors.ContentFilterFinishReasonError(
                "the provider's content filter stopped the answer (finish_reason "
                "'content_filter'), so there is no structured output to parse; the request "
                "or its answer was judged unsafe: change the request",
                text=choice.message.content, completion=response, provider=provider,
                model=model,
            )
    choices = []
    for choice in response.choices:
        message = choice.message
        if message.refusal or message.tool_calls:
            choices.append(choice)
            continue
        text = message.content or ""
        parsed = _validate(fmt if kind == "model" else None, text, f"choice {choice.index}'s "
                           "answer", response, provider, model)
        choices.append(attrs.evolve(choice, message=attrs.evolve(message, parsed=parsed)))
    return attrs.evolve(response, choices=tuple(choices))


# --- the Responses API's text_format ------------------------------------------------------


def text_format_body(text_format: Any, text: Any = None) -> dict[str, Any]:
    """The Responses API's ``text`` field for ``text_format=`` a model class: *text* (the
    call's own ``text=``, if any) with ``format`` set to the class's strict JSON schema,
    ``{"type": "json_schema", "name": <class name>, "schema": ..., "strict": True}``.

    Raises :class:`~trillm.errors.BadRequestError` before any traffic for anything but a
    model class, and when *text* already has a ``format``.
    """
    if not (isinstance(text_format, type)
            and callable(getattr(text_format, "model_json_schema", None))
            and callable(getattr(text_format, "model_validate_json", None))):
        raise _refuse(
            "text_format takes a pydantic model class (anything with model_json_schema() and "
            f"model_validate_json()), not {text_format!r}; for a schema dict pass "
            "text={'format': {'type': 'json_schema', 'name': ..., 'schema': {...}, "
            "'strict': True}} and parse r.output_text yourself"
        )
    if text is not None and not isinstance(text, Mapping):
        raise _refuse(f"text must be a dict like {{'verbosity': 'low'}}, not {text!r}")
    if text is not None and "format" in text:
        raise _refuse("give text_format= or text={'format': ...}, not both")
    schema = strict_json_schema(text_format, "openai")
    return {**(text or {}), "format": {"type": "json_schema", "name": text_format.__name__,
                                      "schema": schema, "strict": True}}


def parse_response_output(
    response: Response, text_format: Any, *, provider: str | None = None
) -> Response:
    """*response* (a Responses API answer) with ``output_parsed`` set from its
    ``output_text`` by ``text_format.model_validate_json``: the rules of
    :func:`parse_response`.  Cut off by ``max_output_tokens`` raises
    :class:`~trillm.errors.LengthFinishReasonError`, by a content filter
    :class:`~trillm.errors.ContentFilterFinishReasonError`; a refusal, a function-call
    answer and a failed response (its ``error`` set) leave ``output_parsed`` None; any other
    text that does not validate raises :class:`~trillm.errors.StructuredOutputError`.
    """
    from .response_types import ResponseFunctionCall, ResponseOutputMessage, ResponseOutputRefusal

    model = response.model
    if response.status == "failed" or response.error is not None:
        return response
    text = response.output_text
    if response.status == "incomplete":
        reason = (response.incomplete_details or {}).get("reason")
        if reason == "content_filter":
            raise errors.ContentFilterFinishReasonError(
                "the provider's content filter stopped the response (incomplete_details.reason "
                "'content_filter'), so there is no structured output to parse: change the "
                "request", text=text, completion=response, provider=provider, model=model)
        raise errors.LengthFinishReasonError(
            f"the response is incomplete ({reason or 'no reason given'}) before its JSON was "
            "complete: raise max_output_tokens (reasoning tokens count against it) or ask for "
            "less", text=text, completion=response, provider=provider, model=model)
    refused = any(isinstance(part, ResponseOutputRefusal)
                  for item in response.output if isinstance(item, ResponseOutputMessage)
                  for part in item.content)
    calls = any(isinstance(item, ResponseFunctionCall) for item in response.output)
    if refused or (calls and not text):
        return response
    parsed = _validate(text_format, text, "the response's output_text", response, provider,
                       model)
    return attrs.evolve(response, output_parsed=parsed)


def _validate(cls: Any, text: str, what: str, completion: Any, provider: str | None,
              model: str | None) -> Any:
    """``cls.model_validate_json(text)`` (``json.loads`` when *cls* is None), or a
    :class:`~trillm.errors.StructuredOutputError` saying *what* did not validate."""
    try:
        return json.loads(text) if cls is None else cls.model_validate_json(text)
    except Exception as exc:  # the validator is the caller's code: any error it raises
        first = str(exc).strip().splitlines()[:1] or [type(exc).__name__]
        raise errors.StructuredOutputError(
            f"{what} is not valid {'JSON' if cls is None else cls.__name__} ({first[0]}); its "
            "text is in the error's .text, the validation error in .validation_error",
            text=text, validation_error=exc, completion=completion, provider=provider,
            model=model,
        ) from exc
