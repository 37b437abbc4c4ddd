"""``Client.alist_models``: ``GET /models``, a provider step (openai), the mock's list, refusals."""

from __future__ import annotations

import json

import pytest
import trio

import trillm
from tests.fakeserver import Reply, Request, open_fake_server
from trillm import errors
from trillm._wire import ProviderConfig
from trillm.providers import mock
from trillm.providers.openai import PROVIDER
from trillm.testing import FakeLLM
from trillm.types import ModelInfo, ModelList, ModelsRequest

LISTING = {"object": "list", "data": [
    {"id": "gpt-4o-mini", "object": "model", "created": 1721172741, "owned_by": "system"},
    {"id": "text-embedding-3-small", "object": "model", "created": 1705948997,
     "owned_by": "system", "extra": "kept in raw"},
]}
CFG = ProviderConfig(name="openai", api_base="https://api.openai.com/v1",
                     api_key="sk-test-12345678")
REQ = ModelsRequest("openai", "*")


def test_build_models_is_a_get_without_a_body() -> None:
    spec = PROVIDER.build_models(ModelsRequest("openai", "*", extra_headers={"x-a": "1"}), CFG)
    assert (spec.method, spec.url, spec.json, spec.content) == (
        "GET", "https://api.openai.com/v1/models", None, None)
    assert dict(spec.headers) == {"authorization": "Bearer sk-test-12345678", "x-a": "1"}
    assert "models" in PROVIDER.operations


def test_parse_models() -> None:
    r = PROVIDER.parse_models(json.dumps(LISTING).encode(), REQ, CFG)
    assert isinstance(r, ModelList)
    assert [m.id for m in r.data] == ["gpt-4o-mini", "text-embedding-3-small"]
    assert r.data[0] == ModelInfo("gpt-4o-mini", 1721172741, "system")
    assert r["data"][1]["owned_by"] == "system" and r.object == "list"
    assert r.raw["data"][1]["extra"] == "kept in raw"
    assert r.to_dict()["data"][0] == {"id": "gpt-4o-mini", "created": 1721172741,
                                      "owned_by": "system", "object": "model"}
    # the fields a server leaves out get defaults (llama.cpp and Ollama list ids alone)
    bare = PROVIDER.parse_models(b'{"data": [{"id": "llama3"}]}', REQ, CFG)
    assert bare.data == (ModelInfo("llama3"),) and bare.data[0].object == "model"


@pytest.mark.parametrize("body", [b"[]", b'{"data": {}}', b'{"data": [{"name": "x"}]}',
                                  b'{"data": [{"id": 7}]}', b'{"data": ["gpt"]}', b"{}"])
def test_parse_models_refuses_other_shapes(body: bytes) -> None:
    with pytest.raises(errors.APIError, match="unexpected answer from openai: models"):
        PROVIDER.parse_models(body, REQ, CFG)


def test_the_mock_lists_fixed_models() -> None:
    assert [m.id for m in mock.MODELS.data] == ["mock-chat", "mock-embedding"]


async def test_alist_models_over_http() -> None:
    fake = FakeLLM(strict=True)
    fake.on(operation="models").respond(LISTING)
    async with trillm.Client(transport=fake.transport(), api_key="sk-test") as c:
        r = await c.alist_models()
        local = await c.alist_models(api_base="http://localhost:8000/v1/", api_key=None)
    assert [m.id for m in r.data] == ["gpt-4o-mini", "text-embedding-3-small"]
    seen = fake.requests
    assert [(q.parsed.method, q.url) for q in seen] == [
        ("GET", "https://api.openai.com/v1/models"), ("GET", "http://localhost:8000/v1/models")]
    assert seen[0].body == b"" and "content-type" not in seen[0].headers
    assert seen[0].sent_secret("authorization", "Bearer sk-test")
    assert local.data == r.data


async def test_alist_models_on_a_real_socket() -> None:
    def handler(request: Request) -> Reply:
        return Reply.json(LISTING)

    with trio.fail_after(10):
        async with open_fake_server(handler) as server, trillm.Client() as c:
            r = await c.alist_models(api_base=server.base_url + "/v1")
            await c.aclose()
            await server.wait_all_closed()
    assert [m.id for m in r.data] == ["gpt-4o-mini", "text-embedding-3-small"]
    (req,) = server.requests
    assert (req.method, req.path, req.body) == ("GET", "/v1/models", b"")


async def test_alist_models_on_the_mock() -> None:
    async with trillm.Client() as c:
        r = await c.alist_models("mock")
        assert [m.id for m in r.data] == ["mock-chat", "mock-embedding"]
        with pytest.raises(errors.RateLimitError):
            await c.alist_models("mock", mock_response=errors.RateLimitError("slow"),
                                 max_retries=0)


async def test_alist_models_errors_and_refusals() -> None:
    fake = FakeLLM()
    fake.on().fail(401, body={"error": {"message": "bad key", "code": "invalid_api_key"}})
    async with trillm.Client(transport=fake.transport(), api_key="k-bad") as c:
        with pytest.raises(errors.AuthenticationError, match="bad key") as info:
            await c.alist_models()
        assert info.value.provider == "openai"
        for provider in ("anthropic", "gemini", "azure"):
            with pytest.raises(errors.BadRequestError, match="model lists are not available"):
                await c.alist_models(provider, api_base="https://example.test")
        with pytest.raises(errors.BadRequestError, match="unknown provider"):
            await c.alist_models("nosuch")
    assert [(r.operation, r.status) for r in fake.requests] == [("models", 401)]
