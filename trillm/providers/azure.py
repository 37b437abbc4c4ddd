"""Azure OpenAI: the OpenAI wire format at a deployment URL, with an ``api-key`` header.

``azure/<deployment>`` sends to
``{AZURE_API_BASE}/openai/deployments/<deployment>/chat/completions?api-version=...``
with the key (``AZURE_API_KEY``) in ``api-key``.  The Responses API
(``aresponses``) goes to the v1 route, ``{AZURE_API_BASE}/openai/v1/responses``,
with the deployment as the body's ``model``.  The API version comes from
``api_version=``, ``AZURE_API_VERSION`` (or ``OPENAI_API_VERSION``), else
:data:`DEFAULT_API_VERSION`.  Everything else (bodies, streams, errors) is
:mod:`trillm.providers.openai`'s.
"""

from __future__ import annotations

from typing import TYPE_CHECKING
from urllib.parse import quote

from ..types import ChatRequest, EmbeddingRequest
from .base import AnyRequest, ProviderConfig
from .openai import OpenAIProvider

if TYPE_CHECKING:
    from ..response_types import ResponsesRequest
    from .openai_batch import OpenAIBatches

__all__ = ["DEFAULT_API_VERSION", "PROVIDER", "AzureProvider"]

#: The GA version used when none is configured.
DEFAULT_API_VERSION = "2024-10-21"
#: The only api-version values the v1 route (the Responses API's) takes.
_V1_VERSIONS = frozenset({"preview", "latest"})


class AzureProvider(OpenAIProvider):
    """OpenAI's translation with Azure's URL and key header."""

    name = "azure"
    #: Azure serves images and audio at other paths, not offered here yet.
    operations = frozenset({"chat", "embeddings", "responses", "batch"})

    @property
    def batches(self) -> OpenAIBatches:
        """The Batch API at ``{base}/openai/files`` and ``{base}/openai/batches``."""
        from .openai_batch import AZURE_BATCHES

        return AZURE_BATCHES

    def chat_url(self, req: ChatRequest, cfg: ProviderConfig) -> str:
        """The deployment's chat-completions URL, with its ``api-version``."""
        return _deployment_url(req, cfg, "chat/completions")

    def embedding_url(self, req: EmbeddingRequest, cfg: ProviderConfig) -> str:
        """The deployment's embeddings URL, with its ``api-version``."""
        return _deployment_url(req, cfg, "embeddings")

    def responses_url(self, req: ResponsesRequest, cfg: ProviderConfig) -> str:
        """The v1 route, ``{api_base}/openai/v1/responses``: no deployment in the path (it is
        the body's ``model``), and no dated ``api-version`` (the v1 API takes none); a
        configured ``preview`` or ``latest`` is sent as ``?api-version=...``."""
        url = f"{cfg.api_base}/openai/v1/responses"
        if cfg.api_version in _V1_VERSIONS:
            url += f"?api-version={cfg.api_version}"
        return url

    def auth_headers(self, cfg: ProviderConfig) -> tuple[tuple[str, str], ...]:
        """``api-key: <key>`` (Azure's header), or nothing without a key."""
        return (("api-key", cfg.api_key),) if cfg.api_key else ()

    def include_usage(self, req: ChatRequest) -> bool:
        """Azure streams the usage chunk too when asked."""
        return True


def _deployment_url(req: AnyRequest, cfg: ProviderConfig, path: str) -> str:
    version = quote(cfg.api_version or DEFAULT_API_VERSION, safe="")
    deployment = quote(req.model, safe="")
    return f"{cfg.api_base}/openai/deployments/{deployment}/{path}?api-version={version}"


#: The module's provider instance.
PROVIDER = AzureProvider()
