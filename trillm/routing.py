"""Which provider a model name goes to, where it is sent, and with which key: pure functions.

``"provider/model"`` splits at the first ``/`` (the model part may hold more:
``openrouter/meta-llama/llama-3-70b``).  Bare names are inferred from their
shape (``gpt-*``, ``o1*``, ``claude-*``, ``gemini-*``, ...).  :data:`PRESETS`
holds every provider trillm knows by name: its default base URL, the
environment variables its key (and a base-URL override) may come from, and
whether it needs a key at all.

With ``api_base`` given, a name trillm cannot place (an unknown prefix, as in a
Hugging Face id ``meta-llama/Llama-3.1-8B-Instruct``, or an unknown bare name) is
sent whole, as the model, to an OpenAI-compatible server: the route's provider is
``"openai_compatible"`` (:data:`OPENAI_COMPATIBLE`), which reads no key from the
environment (an OpenAI key is never sent to a server that is not OpenAI's); pass
``api_key=`` when that server wants one.  A known prefix keeps its meaning with
``api_base`` (``openai/gpt-oss-20b`` sends ``gpt-oss-20b``; write
``openai/openai/gpt-oss-20b`` for a server that names its model ``openai/gpt-oss-20b``).

No function here does I/O: a missing key is found, and reported, before any
traffic.
"""

from __future__ import annotations

import ipaddress
import types
import urllib.parse
from collections.abc import Mapping
from typing import TypeVar

import attrs

from . import errors
from ._records import record_repr
from ._wire import ProviderConfig

__all__ = [
    "ALIASES",
    "OPENAI_COMPATIBLE",
    "PRESETS",
    "Preset",
    "Route",
    "is_local_url",
    "mock_route",
    "parse_model",
    "rate_limit_keys",
    "resolve_config",
]


@attrs.frozen(repr=False)
class Preset:
    """One named provider: which module speaks it, where it lives, where its key comes from.

    ``kind`` names the provider module (``"openai"``, ``"anthropic"``,
    ``"gemini"``, ``"azure"``, ``"mock"``); ``api_base`` is the default base URL
    (OpenAI-style bases include the version, ``.../v1``); ``key_vars`` are the
    environment variables for the key, the first one set wins; ``base_vars``
    override the base URL for this preset only; ``version_vars`` give the API
    version (Azure); ``keyless`` presets (local servers) need no key.
    """

    __repr__ = record_repr

    name: str
    kind: str
    api_base: str | None
    key_vars: tuple[str, ...]
    base_vars: tuple[str, ...] = ()
    keyless: bool = False
    version_vars: tuple[str, ...] = ()


@attrs.frozen(repr=False)
class Route:
    """Where a model name goes: the preset's name, the model name sent, and the preset."""

    __repr__ = record_repr

    provider: str
    model: str
    preset: Preset


def _compatible(name: str, base: str, *key_vars: str) -> Preset:
    return Preset(name, "openai", base, key_vars)


def _local(name: str, base: str) -> Preset:
    return Preset(name, "openai", base, (), keyless=True)


#: Where mocked requests "go": never a socket, the transport answers them in-process.
MOCK_BASE = "mock://"

_PRESET_LIST = (
    Preset(
        "openai", "openai", "https://api.openai.com/v1", ("OPENAI_API_KEY",),
        base_vars=("OPENAI_BASE_URL", "OPENAI_API_BASE"),
    ),
    Preset(
        "anthropic", "anthropic", "https://api.anthropic.com", ("ANTHROPIC_API_KEY",),
        base_vars=("ANTHROPIC_BASE_URL",),
    ),
    Preset(
        "gemini", "gemini", "https://generativelanguage.googleapis.com",
        ("GEMINI_API_KEY", "GOOGLE_API_KEY"), base_vars=("GEMINI_API_BASE",),
    ),
    Preset(
        "azure", "azure", None, ("AZURE_API_KEY", "AZURE_OPENAI_API_KEY"),
        base_vars=("AZURE_API_BASE", "AZURE_OPENAI_ENDPOINT"),
        version_vars=("AZURE_API_VERSION", "OPENAI_API_VERSION"),
    ),
    # The mock speaks OpenAI's wire format, answered in-process (providers/mock.py).
    Preset("mock", "openai", MOCK_BASE, (), keyless=True),
    # Hosted OpenAI-compatible services.
    _compatible("groq", "https://api.groq.com/openai/v1", "GROQ_API_KEY"),
    _compatible("mistral", "https://api.mistral.ai/v1", "MISTRAL_API_KEY"),
    _compatible("deepseek", "https://api.deepseek.com/v1", "DEEPSEEK_API_KEY"),
    _compatible(
        "together_ai", "https://api.together.xyz/v1",
        "TOGETHER_API_KEY", "TOGETHERAI_API_KEY", "TOGETHER_AI_API_KEY",
    ),
    _compatible("openrouter", "https://openrouter.ai/api/v1", "OPENROUTER_API_KEY"),
    _compatible(
        "fireworks_ai", "https://api.fireworks.ai/inference/v1",
        "FIREWORKS_API_KEY", "FIREWORKS_AI_API_KEY", "FIREWORKSAI_API_KEY",
    ),
    _compatible(
        "perplexity", "https://api.perplexity.ai", "PERPLEXITY_API_KEY", "PERPLEXITYAI_API_KEY"
    ),
    _compatible("xai", "https://api.x.ai/v1", "XAI_API_KEY"),
    _compatible("deepinfra", "https://api.deepinfra.com/v1/openai", "DEEPINFRA_API_KEY"),
    _compatible("cerebras", "https://api.cerebras.ai/v1", "CEREBRAS_API_KEY"),
    # Local servers: no key.
    _local("ollama", "http://localhost:11434/v1"),
    _local("vllm", "http://localhost:8000/v1"),
    _local("lm_studio", "http://localhost:1234/v1"),
    _local("llamafile", "http://localhost:8080/v1"),
)

#: Every named provider, by the prefix written in ``"provider/model"``.
PRESETS: Mapping[str, Preset] = types.MappingProxyType({p.name: p for p in _PRESET_LIST})

#: Other spellings accepted as a prefix (LiteLLM's and the vendors'); routes use the canonical name.
ALIASES: Mapping[str, str] = types.MappingProxyType(
    {
        "hosted_vllm": "vllm",
        "ollama_chat": "ollama",
        "together": "together_ai",
        "fireworks": "fireworks_ai",
        "lmstudio": "lm_studio",
    }
)

#: The route for a name sent whole to the OpenAI-compatible server at ``api_base``.
OPENAI_COMPATIBLE = Preset("openai_compatible", "openai", None, (), keyless=True)

# Bare-name prefixes, tried in order.
_INFER = (
    ("gpt-", "openai"), ("chatgpt-", "openai"), ("o1", "openai"), ("o3", "openai"),
    ("o4", "openai"), ("text-embedding-", "openai"), ("dall-e-", "openai"),
    ("gpt-image-", "openai"), ("whisper-", "openai"), ("tts-", "openai"),
    ("ft:gpt-", "openai"), ("omni-moderation-", "openai"), ("text-moderation-", "openai"),
    ("claude-", "anthropic"),
    ("gemini-", "gemini"),
)


def mock_route(model: str) -> Route:
    """The route of a call the mock answers: ``mock/<name>``, or any model with
    ``mock_response=`` (its whole name is kept, as LiteLLM does)."""
    name = model.partition("/")[2] if model.startswith("mock/") else model
    return Route("mock", name, PRESETS["mock"])


def _bad(message: str, model: object) -> errors.BadRequestError:
    return errors.BadRequestError(message, model=model if isinstance(model, str) else None)


def parse_model(model: str, *, api_base: str | None = None) -> Route:
    """Split *model* into provider and model name, inferring the provider of a bare name.

    Raises :class:`~trillm.errors.BadRequestError` for an empty or non-string
    name, an unknown prefix or an unrecognised bare name, except when
    *api_base* is given: then such a name is sent whole to that
    OpenAI-compatible server (provider ``"openai_compatible"``).
    """
    if not isinstance(model, str) or not model.strip():
        raise _bad(f"model must be a non-empty string like 'openai/gpt-4o-mini', not {model!r}",
                   model)
    prefix, slash, rest = model.partition("/")
    if slash:
        key = prefix.lower()
        preset = PRESETS.get(ALIASES.get(key, key))
        if preset is not None:
            if not rest:
                raise _bad(f"model {model!r} names no model after {prefix + '/'!r}", model)
            return Route(preset.name, rest, preset)
        if api_base:
            return Route(OPENAI_COMPATIBLE.name, model, OPENAI_COMPATIBLE)
        known = ", ".join(sorted(PRESETS))
        raise _bad(
            f"unknown provider {prefix!r} in model {model!r}; known providers: {known} "
            "(or pass api_base= to send the whole name to an OpenAI-compatible server)",
            model,
        )
    lowered = model.lower()
    for start, name in _INFER:
        if lowered.startswith(start):
            return Route(name, model, PRESETS[name])
    if api_base:
        return Route(OPENAI_COMPATIBLE.name, model, OPENAI_COMPATIBLE)
    raise _bad(
        f"cannot tell which provider serves {model!r}: write 'provider/model' "
        f"(for example 'groq/{model}' or 'ollama/{model}'), or pass api_base=",
        model,
    )


_V = TypeVar("_V")


def rate_limit_keys(limits: Mapping[str, _V], *, api_base: str | None = None) -> dict[str, _V]:
    """*limits* with every key checked and written as the calls it paces are routed.

    A key names a provider (``"openai"``; an alias such as ``"together"`` becomes
    ``"together_ai"``) or a model, read as :func:`parse_model` reads a model argument
    with *api_base* (the Client's): ``"openai/gpt-4o-mini"``, or a bare name it
    infers (``"gpt-4o-mini"`` becomes ``"openai/gpt-4o-mini"``).  A key that routes
    nowhere (``"opnai"``, ``"opnai/gpt-4o"``) is a ``ValueError`` suggesting the
    nearest provider name; two keys for one model or provider are a ``ValueError``.
    """
    out: dict[str, _V] = {}
    given: dict[str, str] = {}
    for key, limit in limits.items():
        if not isinstance(key, str) or not key.strip():
            raise TypeError(f"rate_limits keys must be non-empty strings, not {key!r}")
        name = _rate_limit_key(key, api_base)
        if name in out:
            raise ValueError(
                f"rate_limits keys {given[name]!r} and {key!r} both name {name!r}: keep one")
        out[name] = limit
        given[name] = key
    return out


def _rate_limit_key(key: str, api_base: str | None) -> str:
    prefix, slash, _ = key.partition("/")
    lowered = prefix.lower()
    known = PRESETS.keys() | ALIASES.keys()
    if lowered == OPENAI_COMPATIBLE.name:
        return key if slash else lowered
    if not slash and lowered in known:
        return ALIASES.get(lowered, lowered)
    try:
        route = parse_model(key, api_base=api_base)
    except errors.BadRequestError as exc:
        if slash and lowered in known:  # 'openai/': the provider is fine, the model is not
            raise ValueError(f"rate_limits key {key!r}: {exc.message}") from None
    else:
        return f"{route.provider}/{route.model}"
    import difflib  # only for this error's suggestion: keeps `import trillm` cheap

    near = difflib.get_close_matches(lowered, sorted(known), n=1)
    did_you_mean = f" (did you mean {near[0]!r}?)" if near else ""
    if slash:
        what = f"unknown provider {prefix!r}{did_you_mean}"
    else:
        what = (f"unknown provider{did_you_mean}, and no model trillm can place "
                f"(for a model, write 'provider/{key}')")
    raise ValueError(
        f"rate_limits key {key!r}: {what}; a key is a provider "
        f"({', '.join(sorted(PRESETS))}) or a model ('openai/gpt-4o-mini', 'gpt-4o-mini')"
    )


def is_local_url(url: str) -> bool:
    """True when *url*'s host is ``localhost``, in 127.0.0.0/8 or ``::1`` (no key needed)."""
    try:
        host = urllib.parse.urlsplit(url).hostname
    except ValueError:
        return False
    if not host:
        return False
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped.is_loopback
    return ip.is_loopback


def _first(environ: Mapping[str, str], names: tuple[str, ...]) -> tuple[str | None, str | None]:
    for name in names:
        value = environ.get(name)
        if value:
            return value, name
    return None, None


def _clean_key(value: str | None, source: str, route: Route) -> str | None:
    """*value* stripped of surrounding whitespace (None when nothing is left).

    A key that still holds a control character, a space or a non-ASCII
    character cannot go into a header: that is an
    :class:`~trillm.errors.AuthenticationError` naming *source*, never the key.
    """
    if not value:
        return None
    key = value.strip()
    if not key:
        return None
    if key.isascii() and key.isprintable() and " " not in key:
        return key
    i, ch = next((i, c) for i, c in enumerate(key) if not "!" <= c <= "~")
    what = ("a space" if ch == " " else "a control character" if ch.isascii()
            else "a non-ASCII character")
    raise errors.AuthenticationError(
        f"the API key from {source} contains {what} at position {i + 1} and cannot be sent "
        "in a header: API keys are printable ASCII without spaces",
        provider=route.provider, model=route.model,
    )


def resolve_config(
    route: Route,
    *,
    api_key: str | None,
    api_base: str | None,
    environ: Mapping[str, str],
    api_version: str | None = None,
) -> ProviderConfig:
    """Where and as whom to send *route*'s requests, from arguments, then *environ*, then defaults.

    The base URL is *api_base*, else the preset's own ``base_vars`` (so
    ``OPENAI_BASE_URL`` moves ``openai`` only, never ``groq``), else its default;
    a trailing ``/`` is removed.  The key is *api_key*, else the first of the
    preset's ``key_vars`` set in *environ*.  A missing key raises
    :class:`~trillm.errors.AuthenticationError` naming the variable to set,
    unless the preset is keyless or the base URL is on this machine.  Empty
    strings count as unset.  Keys are stripped of surrounding whitespace (a key
    read from a file keeps its newline); one that still holds a control, space
    or non-ASCII character raises :class:`~trillm.errors.AuthenticationError`
    naming where it came from (``api_key=`` or the variable), never the key.
    """
    preset = route.preset
    base = api_base or _first(environ, preset.base_vars)[0] or preset.api_base
    if not base:
        if preset.base_vars:
            where = f"set {' or '.join(preset.base_vars)} or pass api_base="
        else:
            where = "pass api_base="
        raise errors.BadRequestError(
            f"no API base URL for {route.provider}: {where}",
            provider=route.provider, model=route.model,
        )
    if not base.endswith("://"):  # "mock://" has nothing to strip
        base = base.rstrip("/")
    key_var = preset.key_vars[0] if preset.key_vars else None
    key = _clean_key(api_key, "api_key=", route)
    if key is None:
        found = None
        for name in preset.key_vars:
            key = _clean_key(environ.get(name), name, route)
            if key is not None:
                found = name
                break
        key_var = found or key_var
        if key is None and not preset.keyless and not is_local_url(base):
            if preset.key_vars:
                names = preset.key_vars[0]
                if len(preset.key_vars) > 1:
                    names += f" (or {', '.join(preset.key_vars[1:])})"
                hint = f"set {names} or pass api_key="
            else:
                hint = "pass api_key="
            raise errors.AuthenticationError(
                f"no API key for {route.provider}: {hint}",
                provider=route.provider, model=route.model,
            )
    version = api_version or _first(environ, preset.version_vars)[0]
    # Azure has no default base: its resource endpoint is always the user's own.
    custom = base != preset.api_base and preset.kind != "azure"
    return ProviderConfig(
        name=route.provider, api_base=base, api_key=key, key_var=key_var, api_version=version,
        custom_base=custom,
    )
