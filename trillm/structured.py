"""Structured output: the JSON schema each provider accepts, made from a model or a schema.

Pure (stdlib only): a pydantic model is duck-typed through its ``model_json_schema()``
classmethod, so pydantic stays out of trillm's dependencies.

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
from typing import Any, Literal

from . import errors

__all__ = ["DIALECTS", "Dialect", "strict_json_schema", "structured_output_body"]

Dialect = Literal["openai", "anthropic", "gemini"]
DIALECTS: tuple[Dialect, ...] = ("openai", "anthropic", "gemini")

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
