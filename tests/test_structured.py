"""trillm.strict_json_schema: the schema each provider's structured output accepts.

A corpus of pydantic models is made strict for OpenAI both by trillm and by the OpenAI
SDK's own ``to_strict_json_schema`` (when the ``openai`` package is installed), and the
results must agree; explicit expected schemas check each dialect without it.
"""

from __future__ import annotations

import copy
import datetime
import enum
import json
from typing import Annotated, Any, Literal

import pytest
from pydantic import BaseModel, ConfigDict, Field

import trillm
from trillm import BadRequestError, strict_json_schema
from trillm.structured import structured_output_body

# --- the corpus ---------------------------------------------------------------------------


class Color(enum.Enum):
    RED = "red"
    GREEN = "green"


class Level(enum.IntEnum):
    LOW = 1
    HIGH = 2


class Plain(BaseModel):
    name: str
    age: int
    score: float
    ok: bool


class WithOptionals(BaseModel):
    nickname: str | None = None
    count: int | None
    tags: list[str] | None = None


class WithDefaults(BaseModel):
    name: str = "anon"
    retries: int = 3
    ratio: float = Field(0.5, description="a ratio")


class WithEnums(BaseModel):
    color: Color
    level: Level = Level.LOW
    mode: Literal["fast", "slow"]


class Address(BaseModel):
    street: str
    city: str = Field(description="the city")


class Person(BaseModel):
    name: str
    address: Address


class PersonDescribedRef(BaseModel):
    """A $ref with sibling keys (the field's description): inlined and made strict."""

    home: Address = Field(description="where they live")
    work: Address | None = Field(None, description="where they work")


class ListOfModels(BaseModel):
    people: list[Person]
    addresses: list[Address] = Field(default_factory=list)


class Nested3(BaseModel):
    value: int


class Nested2(BaseModel):
    inner: Nested3
    inners: list[Nested3]


class Nested1(BaseModel):
    middle: Nested2
    maybe: Nested2 | None = None


class Node(BaseModel):
    value: int
    children: list[Node]


class LinkedList(BaseModel):
    head: int
    tail: LinkedList | None = None


class Tree(BaseModel):
    root: Node
    size: int


class Cat(BaseModel):
    kind: Literal["cat"]
    meows: int


class Dog(BaseModel):
    kind: Literal["dog"]
    barks: float


class Pets(BaseModel):
    pet: Annotated[Cat | Dog, Field(discriminator="kind")]


class PetList(BaseModel):
    pets: list[Annotated[Cat | Dog, Field(discriminator="kind")]]


class PlainUnion(BaseModel):
    value: int | str | Address


class Constrained(BaseModel):
    n: int = Field(ge=1, le=10)
    s: str = Field(min_length=2, max_length=5, pattern=r"^[a-z]+$")
    xs: list[int] = Field(min_length=2, max_length=4)


class Dates(BaseModel):
    when: datetime.datetime
    day: datetime.date
    at: datetime.time | None = None


class Documented(BaseModel):
    """A model with a docstring and titled fields."""

    model_config = ConfigDict(title="DocumentedThing")
    x: int = Field(title="The X", description="an x", examples=[1, 2])


class Forbidding(BaseModel):
    model_config = ConfigDict(extra="forbid")
    a: str


class Deep(BaseModel):
    matrix: list[list[float]]
    grid: list[list[Address]]


class Everything(BaseModel):
    person: Person
    pets: PetList
    tree: Tree | None = None
    color: Color = Color.RED
    notes: list[str] = []


class Mixed(BaseModel):
    a: Literal[1, 2, 3]
    b: Literal["x"] = "x"
    c: tuple[int, ...] = ()
    d: set[str] | None = None


CORPUS: list[type[BaseModel]] = [
    Plain, WithOptionals, WithDefaults, WithEnums, Address, Person, PersonDescribedRef,
    ListOfModels, Nested1, Node, LinkedList, Tree, Pets, PetList, PlainUnion, Constrained,
    Dates, Documented, Forbidding, Deep, Everything, Mixed, Cat,
]


@pytest.mark.parametrize("model", CORPUS, ids=lambda m: m.__name__)
def test_openai_dialect_agrees_with_openai_sdk(model: type[BaseModel]) -> None:
    sdk = pytest.importorskip("openai.lib._pydantic")
    expected = sdk.to_strict_json_schema(model)
    assert strict_json_schema(model, "openai") == expected
    # The OpenAI dict form and a plain dict schema give the same.
    as_dict = model.model_json_schema()
    assert strict_json_schema(as_dict, "openai") == expected
    form = {"type": "json_schema", "json_schema": {"name": "x", "schema": as_dict, "strict": True}}
    assert strict_json_schema(form, "openai") == expected


def test_corpus_is_large_enough() -> None:
    assert len(CORPUS) >= 20


# --- explicit expectations (no openai package needed) --------------------------------------

ADDRESS = {
    "type": "object",
    "properties": {"street": {"type": "string"}, "city": {"type": "string"}},
}
STRICT_ADDRESS = {**ADDRESS, "required": ["street", "city"], "additionalProperties": False}


def test_openai_objects_closed_and_every_property_required() -> None:
    schema = {
        "type": "object",
        "properties": {
            "name": {"type": "string"},
            "nick": {"anyOf": [{"type": "string"}, {"type": "null"}], "default": None},
            "tags": {"type": "array", "items": ADDRESS, "default": []},
            "address": {"$ref": "#/$defs/Address"},
        },
        "required": ["name"],
        "$defs": {"Address": ADDRESS},
    }
    assert strict_json_schema(schema, "openai") == {
        "type": "object",
        "properties": {
            "name": {"type": "string"},
            "nick": {"anyOf": [{"type": "string"}, {"type": "null"}]},  # default null dropped
            "tags": {"type": "array", "items": STRICT_ADDRESS, "default": []},
            "address": {"$ref": "#/$defs/Address"},  # a bare $ref stays
        },
        "required": ["name", "nick", "tags", "address"],
        "additionalProperties": False,
        "$defs": {"Address": STRICT_ADDRESS},
    }


def test_openai_ref_with_siblings_and_one_element_allof_are_inlined() -> None:
    schema = {
        "type": "object",
        "properties": {
            "home": {"$ref": "#/$defs/Address", "description": "where they live"},
            "work": {"allOf": [{"$ref": "#/$defs/Address"}], "description": "where they work"},
            "both": {"allOf": [{"type": "object"}, {"$ref": "#/$defs/Address"}]},
        },
        "$defs": {"Address": ADDRESS},
    }
    result = strict_json_schema(schema, "openai")
    assert result["properties"] == {
        "home": {**STRICT_ADDRESS, "description": "where they live"},
        "work": {**STRICT_ADDRESS, "description": "where they work"},
        "both": {"allOf": [
            {"type": "object", "additionalProperties": False}, {"$ref": "#/$defs/Address"},
        ]},
    }
    assert result["required"] == ["home", "work", "both"]


def test_openai_recursive_model_keeps_its_refs() -> None:
    result = strict_json_schema(Node, "openai")
    assert result["properties"]["children"]["items"] == {"$ref": "#/$defs/Node"}
    node = result["$defs"]["Node"]
    assert node["additionalProperties"] is False
    assert node["required"] == ["value", "children"]


def test_anthropic_moves_unsupported_keywords_into_the_description() -> None:
    schema = {
        "type": "object",
        "description": "a thing",
        "properties": {
            "n": {"type": "integer", "minimum": 1, "maximum": 10},
            "s": {"type": "string", "maxLength": 5, "pattern": "^[a-z]+$",
                  "description": "short"},
            "when": {"type": "string", "format": "date-time"},
            "ref": {"type": "string", "format": "uri-reference"},
            "one": {"type": "array", "items": {"type": "integer"}, "minItems": 1},
            "two": {"type": "array", "items": ADDRESS, "minItems": 2, "uniqueItems": True},
        },
        "required": ["n"],
        "minProperties": 1,
    }
    assert strict_json_schema(schema, "anthropic") == {
        "type": "object",
        "description": 'a thing\n\n{"minProperties": 1}',
        "properties": {
            "n": {"type": "integer", "description": '{"minimum": 1, "maximum": 10}'},
            "s": {"type": "string", "pattern": "^[a-z]+$",
                  "description": 'short\n\n{"maxLength": 5}'},
            "when": {"type": "string", "format": "date-time"},
            "ref": {"type": "string", "description": '{"format": "uri-reference"}'},
            "one": {"type": "array", "items": {"type": "integer"}, "minItems": 1},
            "two": {"type": "array", "items": {**ADDRESS, "additionalProperties": False},
                    "description": '{"minItems": 2, "uniqueItems": true}'},
        },
        "required": ["n"],  # as given: Anthropic does not ask for every property
        "additionalProperties": False,
    }


def test_anthropic_discriminated_union_becomes_anyof() -> None:
    schema = {
        "type": "object",
        "properties": {"pet": {
            "oneOf": [{"$ref": "#/$defs/Cat"}, {"$ref": "#/$defs/Dog"}],
            "discriminator": {"propertyName": "kind",
                              "mapping": {"cat": "#/$defs/Cat", "dog": "#/$defs/Dog"}},
        }},
        "required": ["pet"],
        "$defs": {
            "Cat": {"type": "object", "properties": {"kind": {"const": "cat"}}},
            "Dog": {"type": "object", "properties": {"kind": {"const": "dog"}}},
        },
    }
    assert strict_json_schema(schema, "anthropic") == {
        "type": "object",
        "properties": {"pet": {"anyOf": [{"$ref": "#/$defs/Cat"}, {"$ref": "#/$defs/Dog"}]}},
        "required": ["pet"],
        "$defs": {
            "Cat": {"type": "object", "properties": {"kind": {"const": "cat"}},
                    "additionalProperties": False},
            "Dog": {"type": "object", "properties": {"kind": {"const": "dog"}},
                    "additionalProperties": False},
        },
        "additionalProperties": False,
    }


def test_anthropic_one_element_allof_inlined_outer_keys_win() -> None:
    schema = {"allOf": [{"$ref": "#/$defs/A", "description": "inner"}], "description": "outer"}
    assert strict_json_schema(schema, "anthropic") == {"$ref": "#/$defs/A", "description": "outer"}


def test_anthropic_pydantic_model() -> None:
    result = strict_json_schema(Constrained, "anthropic")
    assert result["additionalProperties"] is False
    n = result["properties"]["n"]
    assert "minimum" not in n and "maximum" not in n
    assert json.loads(n["description"]) == {"minimum": 1, "maximum": 10}
    assert "maxItems" not in result["properties"]["xs"]


def test_gemini_is_standard_json_schema_as_given() -> None:
    schema = {
        "type": "object",
        "properties": {
            "a": {"$ref": "#/$defs/A", "description": "d"},
            "m": {"type": "object", "additionalProperties": {"type": "integer"}},
            "n": {"type": "integer", "minimum": 0},
        },
        "$defs": {"A": ADDRESS},
    }
    assert strict_json_schema(schema, "gemini") == schema
    assert strict_json_schema(Node, "gemini") == Node.model_json_schema()


def test_body_placement_per_dialect() -> None:
    assert structured_output_body(Address, "openai") == {
        "response_format": {"type": "json_schema", "json_schema": {
            "name": "Address", "schema": strict_json_schema(Address, "openai"), "strict": True,
        }},
    }
    form = {"type": "json_schema", "json_schema": {"name": "my schema!", "schema": ADDRESS}}
    assert structured_output_body(form, "openai")["response_format"]["json_schema"]["name"] == (
        "my_schema_"
    )
    assert structured_output_body(ADDRESS, "openai", name="addr")["response_format"][
        "json_schema"]["name"] == "addr"
    assert structured_output_body(ADDRESS, "openai")["response_format"]["json_schema"][
        "name"] == "response"
    assert structured_output_body(Address, "anthropic") == {
        "output_config": {"format": {
            "type": "json_schema", "schema": strict_json_schema(Address, "anthropic"),
        }},
    }
    assert structured_output_body(ADDRESS, "gemini") == {
        "generationConfig": {"responseMimeType": "application/json",
                             "responseJsonSchema": ADDRESS},
    }


# --- the input is never mutated, the output shares nothing with it -------------------------


@pytest.mark.parametrize("dialect", ["openai", "anthropic", "gemini"])
@pytest.mark.parametrize("model", [PersonDescribedRef, Everything, Constrained, Pets, Node])
def test_input_not_mutated(model: type[BaseModel], dialect: str) -> None:
    schema = model.model_json_schema()
    before = copy.deepcopy(schema)
    form = {"type": "json_schema", "json_schema": {"name": "n", "schema": schema}}
    form_before = copy.deepcopy(form)
    first = strict_json_schema(schema, dialect)
    strict_json_schema(form, dialect)
    assert schema == before
    assert form == form_before
    # Changing the result changes neither the input nor the next result.
    second = copy.deepcopy(first)
    for value in first.values():
        if isinstance(value, dict):
            value.clear()
    assert schema == before
    assert strict_json_schema(schema, dialect) == second


def test_exported_from_trillm() -> None:
    assert trillm.strict_json_schema is strict_json_schema
    assert "strict_json_schema" in trillm.__all__


# --- errors, before anything is sent -------------------------------------------------------


class AllowsExtra(BaseModel):
    model_config = ConfigDict(extra="allow")
    a: int


class HasDictField(BaseModel):
    counts: dict[str, int]


class InnerAllows(BaseModel):
    inner: AllowsExtra


@pytest.mark.parametrize("dialect", ["openai", "anthropic"])
@pytest.mark.parametrize("model", [AllowsExtra, HasDictField, InnerAllows])
def test_extra_fields_are_refused(model: type[BaseModel], dialect: str) -> None:
    with pytest.raises(BadRequestError, match="additionalProperties"):
        strict_json_schema(model, dialect)


def test_extra_fields_are_fine_for_gemini() -> None:
    assert strict_json_schema(AllowsExtra, "gemini")["additionalProperties"] is True


def test_unknown_dialect() -> None:
    with pytest.raises(BadRequestError, match="unknown structured-output dialect 'mistral'"):
        strict_json_schema(Address, "mistral")


class NotAModel:
    @classmethod
    def model_json_schema(cls) -> Any:
        return "nope"


@pytest.mark.parametrize(
    "thing",
    [42, "a string", None, [ADDRESS], object(), BaseModel.__init__, NotAModel,
     {"type": "json_object"},
     {"type": "json_schema", "json_schema": {"name": "x"}},
     {"type": "json_schema", "json_schema": "schema"}],
)
def test_not_a_schema(thing: Any) -> None:
    with pytest.raises(BadRequestError):
        strict_json_schema(thing, "openai")


@pytest.mark.parametrize(
    ("schema", "message"),
    [
        ({"type": "object", "properties": {"a": 3}}, "expected a JSON schema object"),
        ({"properties": {"a": {"$ref": "#/$defs/Nope", "description": "d"}}}, "points at nothing"),
        ({"properties": {"a": {"$ref": "other.json#/X", "description": "d"}}}, "only local"),
        ({"properties": {"a": {"$ref": 5, "description": "d"}}}, "not a string"),
    ],
)
def test_broken_schemas(schema: dict[str, Any], message: str) -> None:
    with pytest.raises(BadRequestError, match=message):
        strict_json_schema(schema, "openai")


def test_recursive_ref_with_siblings_is_refused() -> None:
    schema = {
        "$ref": "#/$defs/Node",
        "$defs": {"Node": {"type": "object", "properties": {
            "next": {"$ref": "#/$defs/Node", "description": "the next node"},
        }}},
    }
    with pytest.raises(BadRequestError, match="recursive"):
        strict_json_schema(schema, "openai")


def test_error_is_never_retried_and_says_what() -> None:
    with pytest.raises(BadRequestError) as info:
        strict_json_schema(AllowsExtra, "openai")
    assert info.value.status_code == 400
    assert "extra" in info.value.message
    assert not trillm.retry.is_retryable(info.value)
