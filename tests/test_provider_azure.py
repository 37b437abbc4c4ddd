"""Azure OpenAI: deployment URL, api-version, api-key header (through the Client, against
the kit's FakeLLM in memory)."""

from __future__ import annotations

import pytest

import trillm
from trillm import errors
from trillm.providers.azure import DEFAULT_API_VERSION
from trillm.testing import FakeLLM

MSGS = [{"role": "user", "content": "hi"}]
KEY = "0123456789abcdef0123456789abcdef"  # Azure keys: 32 hex digits


@pytest.fixture
def azure_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ("AZURE_API_KEY", "AZURE_OPENAI_API_KEY", "AZURE_API_BASE",
                "AZURE_OPENAI_ENDPOINT", "AZURE_API_VERSION", "OPENAI_API_VERSION"):
        monkeypatch.delenv(var, raising=False)


async def test_deployment_url_version_and_key_header(
    azure_env: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake = FakeLLM()
    fake.on(provider="azure", model="my-gpt4o").reply("from azure")
    monkeypatch.setenv("AZURE_API_KEY", KEY)
    monkeypatch.setenv("AZURE_API_BASE", "https://my-resource.openai.azure.com/")
    async with trillm.Client(transport=fake.transport()) as client:
        r = await client.acompletion("azure/my-gpt4o", MSGS)
        monkeypatch.setenv("AZURE_API_VERSION", "2025-01-01-preview")
        await client.acompletion("azure/my-gpt4o", MSGS, api_version="2024-06-01")
        await client.acompletion("azure/my-gpt4o", MSGS)
    assert r.choices[0].message.content == "from azure"
    urls = [req.url for req in fake.requests]
    base = "https://my-resource.openai.azure.com/openai/deployments/my-gpt4o/chat/completions"
    assert urls == [f"{base}?api-version={DEFAULT_API_VERSION}",
                    f"{base}?api-version=2024-06-01",
                    f"{base}?api-version=2025-01-01-preview"]
    assert fake.requests[0].sent_secret("api-key", KEY)
    assert "authorization" not in fake.requests[0].headers


async def test_missing_base_or_key_fails_before_any_traffic(
    azure_env: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake = FakeLLM()
    async with trillm.Client(transport=fake.transport()) as client:
        with pytest.raises(errors.BadRequestError, match="AZURE_API_BASE"):
            await client.acompletion("azure/dep", MSGS, api_key=KEY)
        monkeypatch.setenv("AZURE_API_BASE", "https://r.openai.azure.com")
        with pytest.raises(errors.AuthenticationError, match="AZURE_API_KEY"):
            await client.acompletion("azure/dep", MSGS)
    assert fake.requests == []  # nothing was sent


async def test_key_is_scrubbed_from_an_azure_error(
    azure_env: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake = FakeLLM()
    fake.on().fail(401, body={"error": {
        "code": "401", "message": f"Access denied: invalid key {KEY} for this resource"}})
    monkeypatch.setenv("AZURE_API_BASE", "https://r.openai.azure.com")
    async with trillm.Client(transport=fake.transport(), api_key=KEY) as client:
        with pytest.raises(errors.AuthenticationError) as info:
            await client.acompletion("azure/dep", MSGS)
    assert KEY not in f"{info.value} {info.value!r} {info.value.body}"
    assert fake.requests[0].status == 401  # the error came from the wire
