"""routing.py: model-name parsing, bare-name inference, presets, base URLs and keys."""

from __future__ import annotations

import socket
from typing import Any

import pytest

from trillm import errors
from trillm.providers.base import ProviderConfig
from trillm.routing import (
    ALIASES,
    OPENAI_COMPATIBLE,
    PRESETS,
    Preset,
    Route,
    is_local_url,
    parse_model,
    resolve_config,
)

EXPECTED_BASES = {
    "openai": "https://api.openai.com/v1",
    "anthropic": "https://api.anthropic.com",
    "gemini": "https://generativelanguage.googleapis.com",
    "mock": "mock://",
    "groq": "https://api.groq.com/openai/v1",
    "mistral": "https://api.mistral.ai/v1",
    "deepseek": "https://api.deepseek.com/v1",
    "together_ai": "https://api.together.xyz/v1",
    "openrouter": "https://openrouter.ai/api/v1",
    "fireworks_ai": "https://api.fireworks.ai/inference/v1",
    "perplexity": "https://api.perplexity.ai",
    "xai": "https://api.x.ai/v1",
    "deepinfra": "https://api.deepinfra.com/v1/openai",
    "cerebras": "https://api.cerebras.ai/v1",
    "ollama": "http://localhost:11434/v1",
    "vllm": "http://localhost:8000/v1",
    "lm_studio": "http://localhost:1234/v1",
    "llamafile": "http://localhost:8080/v1",
}

KEY_VARS = {
    "openai": "OPENAI_API_KEY",
    "anthropic": "ANTHROPIC_API_KEY",
    "gemini": "GEMINI_API_KEY",
    "azure": "AZURE_API_KEY",
    "groq": "GROQ_API_KEY",
    "mistral": "MISTRAL_API_KEY",
    "deepseek": "DEEPSEEK_API_KEY",
    "together_ai": "TOGETHER_API_KEY",
    "openrouter": "OPENROUTER_API_KEY",
    "fireworks_ai": "FIREWORKS_API_KEY",
    "perplexity": "PERPLEXITY_API_KEY",
    "xai": "XAI_API_KEY",
    "deepinfra": "DEEPINFRA_API_KEY",
    "cerebras": "CEREBRAS_API_KEY",
}

KEYLESS = {"mock", "ollama", "vllm", "lm_studio", "llamafile"}

# The mock speaks OpenAI's wire format (answered in-process), so its kind is "openai".
KINDS = {"openai": "openai", "anthropic": "anthropic", "gemini": "gemini", "azure": "azure"}


def resolve(model: str, environ: dict[str, str] | None = None, **kw: Any) -> ProviderConfig:
    api_base = kw.pop("api_base", None)
    route = parse_model(model, api_base=api_base)
    return resolve_config(
        route, api_key=kw.pop("api_key", None), api_base=api_base, environ=environ or {}, **kw
    )


# ---------------------------------------------------------------- the table


def test_presets_table_is_complete() -> None:
    assert set(PRESETS) == set(EXPECTED_BASES) | {"azure"}
    for name, preset in PRESETS.items():
        assert preset.name == name
        assert preset.kind == KINDS.get(name, "openai")
        assert preset.keyless == (name in KEYLESS)
        if name in KEY_VARS:
            assert preset.key_vars[0] == KEY_VARS[name]
    assert PRESETS["azure"].api_base is None
    assert PRESETS["gemini"].key_vars == ("GEMINI_API_KEY", "GOOGLE_API_KEY")


def test_presets_are_read_only() -> None:
    with pytest.raises(TypeError):
        PRESETS["evil"] = PRESETS["openai"]  # type: ignore[index]


@pytest.mark.parametrize("name", sorted(EXPECTED_BASES))
def test_every_preset_routes(name: str) -> None:
    route = parse_model(f"{name}/some-model")
    assert route == Route(name, "some-model", PRESETS[name])
    environ = {KEY_VARS[name]: "k-123456"} if name in KEY_VARS else {}
    cfg = resolve_config(route, api_key=None, api_base=None, environ=environ)
    assert cfg.name == name
    assert cfg.api_base == EXPECTED_BASES[name]
    assert cfg.api_key == ("k-123456" if name in KEY_VARS else None)


def test_azure_routes_with_its_variables() -> None:
    environ = {
        "AZURE_API_BASE": "https://my-res.openai.azure.com/",
        "AZURE_API_KEY": "az-key-1234",
        "AZURE_API_VERSION": "2024-10-21",
    }
    cfg = resolve("azure/my-deployment", environ)
    assert cfg == ProviderConfig(
        name="azure", api_base="https://my-res.openai.azure.com", api_key="az-key-1234",
        key_var="AZURE_API_KEY", api_version="2024-10-21",
    )
    # the api_version argument wins over the environment
    assert resolve("azure/d", environ, api_version="2025-01-01").api_version == "2025-01-01"


def test_azure_without_a_base_names_azure_api_base() -> None:
    with pytest.raises(errors.BadRequestError, match="AZURE_API_BASE") as info:
        resolve("azure/my-deployment", {"AZURE_API_KEY": "az-key-1234"})
    assert info.value.provider == "azure"
    assert info.value.model == "my-deployment"


def test_model_part_keeps_its_slashes() -> None:
    route = parse_model("openrouter/meta-llama/llama-3-70b-instruct")
    assert route.provider == "openrouter"
    assert route.model == "meta-llama/llama-3-70b-instruct"
    assert parse_model("together_ai/a/b/c").model == "a/b/c"


def test_prefix_is_case_insensitive_and_aliases_map_to_canonical_names() -> None:
    assert parse_model("OpenAI/gpt-4o").provider == "openai"
    for alias, name in ALIASES.items():
        route = parse_model(f"{alias}/m")
        assert route.provider == name
        assert route.preset is PRESETS[name]


# ---------------------------------------------------------------- bare names


@pytest.mark.parametrize(
    ("model", "provider"),
    [
        ("gpt-4o-mini", "openai"),
        ("gpt-4.1", "openai"),
        ("o1", "openai"),
        ("o1-mini", "openai"),
        ("o3-mini", "openai"),
        ("o4-mini", "openai"),
        ("chatgpt-4o-latest", "openai"),
        ("text-embedding-3-small", "openai"),
        ("dall-e-3", "openai"),
        ("gpt-image-1", "openai"),
        ("whisper-1", "openai"),
        ("tts-1-hd", "openai"),
        ("ft:gpt-4o-mini-2024-07-18:org::abc123", "openai"),
        ("claude-3-5-sonnet-20241022", "anthropic"),
        ("claude-sonnet-4-5", "anthropic"),
        ("gemini-2.0-flash", "gemini"),
    ],
)
def test_bare_names_are_inferred(model: str, provider: str) -> None:
    route = parse_model(model)
    assert route.provider == provider
    assert route.model == model
    assert route.preset is PRESETS[provider]


def test_unknown_bare_name_says_to_write_provider_slash_model() -> None:
    with pytest.raises(errors.BadRequestError, match="provider/model") as info:
        parse_model("llama3.1")
    assert info.value.status_code == 400
    assert info.value.model == "llama3.1"


@pytest.mark.parametrize("model", ["", "   ", None, 42, b"gpt-4o"])
def test_empty_or_non_string_model_is_a_bad_request(model: Any) -> None:
    with pytest.raises(errors.BadRequestError, match="non-empty string"):
        parse_model(model)


def test_known_prefix_without_a_model_is_a_bad_request() -> None:
    with pytest.raises(errors.BadRequestError, match="names no model"):
        parse_model("openai/")


def test_unknown_prefix_names_the_known_providers() -> None:
    with pytest.raises(errors.BadRequestError) as info:
        parse_model("acme/model-x")
    message = str(info.value)
    assert "'acme'" in message
    for name in ("openai", "anthropic", "groq", "ollama", "vllm"):
        assert name in message
    assert "api_base=" in message


# ---------------------------------------------------------------- api_base


def test_api_base_with_unknown_prefix_sends_the_whole_name_openai_compatibly() -> None:
    route = parse_model("meta-llama/Llama-3.1-8B-Instruct", api_base="http://gpu-box:8000/v1")
    assert route == Route("openai_compatible", "meta-llama/Llama-3.1-8B-Instruct",
                          OPENAI_COMPATIBLE)
    assert route.preset.kind == "openai"
    cfg = resolve_config(
        route, api_key=None, api_base="http://gpu-box:8000/v1/",
        environ={"OPENAI_API_KEY": "sk-never-sent-elsewhere"},
    )
    # a remote OpenAI-compatible server never gets the OpenAI key from the environment
    assert cfg == ProviderConfig(name="openai_compatible", api_base="http://gpu-box:8000/v1",
                                 custom_base=True)
    cfg = resolve_config(route, api_key="tok-1234", api_base="http://gpu-box:8000/v1", environ={})
    assert cfg.api_key == "tok-1234"


def test_api_base_with_unknown_bare_name_is_openai_compatible() -> None:
    route = parse_model("llama3.1", api_base="http://localhost:11434/v1")
    assert route.provider == "openai_compatible"
    assert route.model == "llama3.1"


def test_api_base_keeps_a_known_prefix() -> None:
    cfg = resolve("groq/llama-3.1-8b-instant", {"GROQ_API_KEY": "gsk_123456"},
                  api_base="https://proxy.example.com/groq/v1/")
    assert cfg.name == "groq"
    assert cfg.api_base == "https://proxy.example.com/groq/v1"
    assert cfg.api_key == "gsk_123456"


# ---------------------------------------------------------------- environment


@pytest.mark.parametrize("var", ["OPENAI_BASE_URL", "OPENAI_API_BASE"])
def test_openai_base_from_environment(var: str) -> None:
    cfg = resolve("gpt-4o-mini", {var: "http://localhost:4000/v1/", "OPENAI_API_KEY": "sk-x"})
    assert cfg.api_base == "http://localhost:4000/v1"


def test_openai_base_url_wins_over_openai_api_base() -> None:
    environ = {"OPENAI_BASE_URL": "http://a:1/v1", "OPENAI_API_BASE": "http://b:2/v1",
               "OPENAI_API_KEY": "sk-x"}
    assert resolve("openai/gpt-4o", environ).api_base == "http://a:1/v1"


def test_api_base_argument_wins_over_environment() -> None:
    environ = {"OPENAI_BASE_URL": "http://a:1/v1", "OPENAI_API_KEY": "sk-x"}
    assert resolve("openai/gpt-4o", environ, api_base="http://c:3/v1").api_base == "http://c:3/v1"


def test_custom_base_says_whether_the_base_url_is_the_providers_default() -> None:
    key = {"OPENAI_API_KEY": "sk-x", "ANTHROPIC_API_KEY": "a-1234", "GROQ_API_KEY": "gsk_1234"}
    assert not resolve("openai/gpt-4o", key).custom_base
    assert not resolve("openai/gpt-4o", key, api_base="https://api.openai.com/v1/").custom_base
    assert not resolve("groq/llama3", {**key, "OPENAI_BASE_URL": "http://x:1/v1"}).custom_base
    assert not resolve("ollama/llama3").custom_base
    assert not resolve("mock/x").custom_base
    assert resolve("openai/gpt-4o", key, api_base="http://localhost:4000/v1").custom_base
    assert resolve("openai/gpt-4o", {**key, "OPENAI_BASE_URL": "http://proxy:4000/v1"}).custom_base
    assert resolve("anthropic/claude-x", {**key, "ANTHROPIC_BASE_URL": "http://p:1"}).custom_base
    assert resolve("my-model", api_base="http://localhost:8000/v1").custom_base
    azure = {"AZURE_API_KEY": "k" * 32, "AZURE_API_BASE": "https://r.openai.azure.com"}
    assert not resolve("azure/dep", azure).custom_base


def test_base_vars_apply_only_to_their_own_preset() -> None:
    environ = {"OPENAI_BASE_URL": "http://localhost:4000/v1", "GROQ_API_KEY": "gsk_1234"}
    assert resolve("groq/llama3", environ).api_base == "https://api.groq.com/openai/v1"


@pytest.mark.parametrize(
    ("model", "var", "default"),
    [
        ("anthropic/claude-3-5-haiku-latest", "ANTHROPIC_BASE_URL", "https://api.anthropic.com"),
        ("gemini/gemini-2.0-flash", "GEMINI_API_BASE", "https://generativelanguage.googleapis.com"),
    ],
)
def test_anthropic_and_gemini_base_vars(model: str, var: str, default: str) -> None:
    key = {"ANTHROPIC_API_KEY": "a-1234", "GEMINI_API_KEY": "g-1234"}
    assert resolve(model, key).api_base == default
    assert resolve(model, {**key, var: "https://proxy.example.com/"}).api_base == (
        "https://proxy.example.com"
    )


def test_gemini_key_falls_back_to_google_api_key() -> None:
    cfg = resolve("gemini-2.0-flash", {"GOOGLE_API_KEY": "AIza-google"})
    assert cfg.api_key == "AIza-google"
    assert cfg.key_var == "GOOGLE_API_KEY"
    both = resolve("gemini-2.0-flash", {"GOOGLE_API_KEY": "g2", "GEMINI_API_KEY": "g1"})
    assert both.api_key == "g1"
    assert both.key_var == "GEMINI_API_KEY"


def test_api_key_argument_wins_and_empty_env_counts_as_unset() -> None:
    cfg = resolve("gpt-4o", {"OPENAI_API_KEY": "sk-env"}, api_key="sk-arg")
    assert cfg.api_key == "sk-arg"
    assert cfg.key_var == "OPENAI_API_KEY"
    with pytest.raises(errors.AuthenticationError):
        resolve("gpt-4o", {"OPENAI_API_KEY": ""})


# ---------------------------------------------------------------- keys


@pytest.fixture
def no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("network I/O attempted")

    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket.socket, "connect", refuse)


@pytest.mark.usefixtures("no_network")
@pytest.mark.parametrize(
    ("model", "message"),
    [
        ("groq/llama3", "no API key for groq: set GROQ_API_KEY or pass api_key="),
        ("gpt-4o-mini", "no API key for openai: set OPENAI_API_KEY or pass api_key="),
        ("claude-3-5-haiku-latest",
         "no API key for anthropic: set ANTHROPIC_API_KEY or pass api_key="),
        ("gemini-2.0-flash",
         "no API key for gemini: set GEMINI_API_KEY (or GOOGLE_API_KEY) or pass api_key="),
    ],
)
def test_missing_key_names_the_variable_before_any_traffic(model: str, message: str) -> None:
    route = parse_model(model)
    with pytest.raises(errors.AuthenticationError) as info:
        resolve_config(route, api_key=None, api_base=None, environ={})
    assert info.value.message == message
    assert info.value.status_code == 401
    assert info.value.provider == route.provider
    assert info.value.model == route.model


@pytest.mark.parametrize(
    "raw", ["sk-proj-KEYVALUE42\n", "  sk-proj-KEYVALUE42\r\n", "\tsk-proj-KEYVALUE42 "]
)
def test_keys_are_stripped_of_surrounding_whitespace(raw: str) -> None:
    # api_key=open(f).read() keeps the file's newline
    assert resolve("gpt-4o", {}, api_key=raw).api_key == "sk-proj-KEYVALUE42"
    cfg = resolve("gpt-4o", {"OPENAI_API_KEY": raw})
    assert (cfg.api_key, cfg.key_var) == ("sk-proj-KEYVALUE42", "OPENAI_API_KEY")
    both = resolve("gemini-2.0-flash", {"GEMINI_API_KEY": " \n", "GOOGLE_API_KEY": raw})
    assert (both.api_key, both.key_var) == ("sk-proj-KEYVALUE42", "GOOGLE_API_KEY")
    with pytest.raises(errors.AuthenticationError, match="no API key for openai"):
        resolve("gpt-4o", {"OPENAI_API_KEY": "\n"}, api_key="  ")


BAD_KEYS = {
    "newline": "sk-LEFTHALF\nRIGHTHALF",
    "space": "sk-LEFTHALF RIGHTHALF",
    "nul": "sk-LEFTHALF\x00RIGHTHALF",
    "del": "sk-LEFTHALF\x7fRIGHTHALF",
    "non-ascii": "sk-LEFTHALF\u00e9RIGHTHALF",
    "zero-width space": "sk-LEFTHALF\u200bRIGHTHALF",
}


@pytest.mark.usefixtures("no_network")
@pytest.mark.parametrize("bad", BAD_KEYS.values(), ids=list(BAD_KEYS))
@pytest.mark.parametrize("source", ["api_key=", "OPENAI_API_KEY", "AZURE_API_KEY"])
def test_a_key_that_cannot_go_in_a_header_is_refused_naming_its_source(
    bad: str, source: str
) -> None:
    model = "azure/dep" if source == "AZURE_API_KEY" else "gpt-4o"
    environ = {"AZURE_API_BASE": "https://r.openai.azure.com"}
    api_key = None
    if source == "api_key=":
        api_key = bad + "\n"
    else:
        environ[source] = bad + "\n"
    with pytest.raises(errors.AuthenticationError) as info:
        resolve(model, environ, api_key=api_key)
    err = info.value
    assert err.status_code == 401
    assert f"the API key from {source} contains " in err.message
    text = f"{err} {err!r} {err.body} {err.headers}"
    assert "LEFTHALF" not in text and "RIGHTHALF" not in text


def test_missing_azure_key_names_azure_api_key() -> None:
    with pytest.raises(errors.AuthenticationError, match="set AZURE_API_KEY"):
        resolve("azure/dep", {"AZURE_API_BASE": "https://r.openai.azure.com"})


@pytest.mark.parametrize("name", sorted(KEYLESS))
def test_keyless_presets_need_no_key(name: str) -> None:
    cfg = resolve(f"{name}/m", {})
    assert cfg.api_key is None


def test_keyless_preset_on_a_remote_host_still_needs_no_key() -> None:
    cfg = resolve("vllm/m", {}, api_base="http://gpu-box.internal:8000/v1")
    assert cfg.api_key is None


@pytest.mark.parametrize(
    "base",
    [
        "http://localhost:4000/v1",
        "http://LOCALHOST:4000",
        "http://127.0.0.1:8000/v1",
        "http://127.3.2.1/v1",
        "http://[::1]:8080/v1",
        "https://api.localhost/v1",
    ],
)
def test_localhost_base_needs_no_key(base: str) -> None:
    cfg = resolve("openai/gpt-4o", {}, api_base=base)
    assert cfg.api_key is None
    assert cfg.api_base == base.rstrip("/")
    env_cfg = resolve("openai/gpt-4o", {"OPENAI_BASE_URL": base})
    assert env_cfg.api_key is None


@pytest.mark.parametrize(
    "base",
    ["http://10.0.0.5:8000/v1", "http://gpu-box:8000/v1", "https://localhost.example.com/v1",
     "http://128.0.0.1/v1", "not a url"],
)
def test_remote_base_needs_a_key(base: str) -> None:
    assert not is_local_url(base)
    with pytest.raises(errors.AuthenticationError, match="OPENAI_API_KEY"):
        resolve("openai/gpt-4o", {}, api_base=base)


def test_is_local_url() -> None:
    assert is_local_url("http://[::ffff:127.0.0.1]:80/")
    assert not is_local_url("http://[::2]/")
    assert not is_local_url("")


def test_config_repr_hides_the_key() -> None:
    cfg = resolve("gpt-4o", {"OPENAI_API_KEY": "sk-secret-value-123"})
    assert "sk-secret-value-123" not in repr(cfg)


def test_preset_defaults() -> None:
    p = Preset("x", "openai", "http://x", ("X_KEY",))
    assert p.base_vars == ()
    assert p.keyless is False
