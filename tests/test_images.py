"""``aimage_generation``: request shape, parsing, the mock's valid PNGs, errors."""

from __future__ import annotations

import base64
import json

import pytest

import trillm
from trillm import errors
from trillm.testing import FakeLLM


async def test_request_shape_and_parsing() -> None:
    fake = FakeLLM(strict=True)
    fake.on(operation="images").respond({"created": 1700000000, "data": [
        {"url": "https://img.example/1.png", "revised_prompt": "a cat, detailed"}]})
    async with trillm.Client(transport=fake.transport(), api_key="sk-test") as c:
        r = await c.aimage_generation("dall-e-3", "a cat", n=1, size="1024x1024",
                                      quality="hd", style="vivid")
    (sent,) = fake.requests
    assert sent.url == "https://api.openai.com/v1/images/generations"
    assert json.loads(sent.body) == {"model": "dall-e-3", "prompt": "a cat", "n": 1,
                                           "size": "1024x1024", "quality": "hd",
                                           "style": "vivid"}
    assert r.data[0].url == "https://img.example/1.png"
    assert r["data"][0]["revised_prompt"] == "a cat, detailed"
    assert r.created == 1700000000


async def test_mock_images_are_valid_pngs() -> None:
    r = await trillm.aimage_generation("mock/dall-e-3", "a cat", n=2,
                                       response_format="b64_json")
    assert len(r.data) == 2
    png = base64.b64decode(r.data[0].b64_json or "")
    assert png.startswith(b"\x89PNG\r\n\x1a\n") and png.endswith(b"IEND\xaeB`\x82")
    u = await trillm.aimage_generation("mock/dall-e-3", "a dog")
    assert (u.data[0].url or "").startswith("data:image/png;base64,")


async def test_errors_and_refusals() -> None:
    fake = FakeLLM()
    fake.on().fail(400, body={"error": {
        "message": "Your request was rejected by the safety system",
        "code": "content_policy_violation"}})
    async with trillm.Client(transport=fake.transport(), api_key="k") as client:
        with pytest.raises(errors.ContentPolicyViolationError):
            await client.aimage_generation("dall-e-3", "something")
        with pytest.raises(errors.BadRequestError, match="prompt"):
            await client.aimage_generation("dall-e-3", "  ")
        with pytest.raises(errors.BadRequestError, match="not available"):
            await client.aimage_generation("claude-3-5-haiku-latest", "x")
    assert [r.operation for r in fake.requests] == ["images"]  # the others never left
