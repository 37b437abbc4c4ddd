"""Synthetic packages for the tests of tests/test_layering.py (file name -> source).

``make_package`` writes one to ``tmp_path/trillm`` (with an empty ``__init__.py``
and ``providers/__init__.py`` unless given).  ``BROKEN`` packages break one rule:
each expected problem is a tuple of strings that one message must contain, and
nothing else may be reported.  ``FOLLOWED`` packages keep a rule and must pass.
"""

from __future__ import annotations

TC = "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n"

#: A package that keeps every rule, using most import forms.
CLEAN = {
    "__init__.py": """
        from . import errors as errors
        from .client import Client as Client
    """,
    "errors.py": "import re\nfrom typing import Any\n",
    "types.py": "import attrs\nimport attr\nfrom collections.abc import Mapping\n",
    "retry.py": """
        from . import errors
        from .errors import APIError
        import trillm.errors
    """,
    "sse.py": "from __future__ import annotations\n",
    "providers/base.py": """
        from .. import errors
        from ..retry import x
        from typing import TYPE_CHECKING
        if TYPE_CHECKING:
            from ..sse import SSEEvent
    """,
    "providers/openai.py": """
        from .base import x
        from . import base
        from .. import types
    """,
    "providers/azure.py": "from . import openai\nfrom .openai import build\n",
    "limits.py": "import trio\nimport outcome\nfrom . import errors\n",
    "concurrency.py": "import trio\n",
    "_transport.py": "import httpx\nimport httpcore\nimport trio\nfrom . import errors\n",
    "_stream.py": """
        import trio
        from . import _transport
        from typing import TYPE_CHECKING
        if TYPE_CHECKING:
            import httpx
    """,
    "client.py": """
        import typing
        from . import _stream, limits
        from .providers import openai
        if typing.TYPE_CHECKING:
            import httpx
        def f():
            from .providers import azure
    """,
    "_default.py": "from .client import Client\n",
    "_sync.py": "from . import _default\n",
    "cli.py": "import trillm\nfrom trillm import Client\n",
    "testing.py": "from . import client\n",
}

IO_NEVER = "the I/O layer never imports providers/"
L0_PURE = "L0 is pure"
NO_HTTP = "knows nothing about HTTP"
HTTPX_OWNERS = "only _transport, testing, testing.* may"
HINT = "make it public there, or move this code into that module"

BROKEN: dict[str, tuple[dict[str, str], list[tuple[str, ...]]]] = {
    # ---- layers: dependencies point down; L1 imports no providers; providers stay apart
    "l1_importing_client": (
        {
            "client.py": "",
            "limits.py": "import trillm.client\n",
            "concurrency.py": "from . import client\n",
        },
        [("trillm/limits.py:1:", "'client'"), ("trillm/concurrency.py:1:", "'client'")],
    ),
    "l1_importing_l2_or_providers": (
        {
            "_stream.py": "",
            "providers/openai.py": "",
            "limits.py": "from ._stream import Stream\n",
            "concurrency.py": "from .providers import openai\nfrom .providers import x\n",
        },
        [
            ("trillm/limits.py:1:", "_stream"),
            ("trillm/concurrency.py:1:", "providers.openai"),
            ("trillm/concurrency.py:2:", "'providers'"),
        ],
    ),
    "httpx_outside_type_checking": (
        {
            "_transport.py": "import httpx\n",
            "client.py": "import httpx\n",
            "_stream.py": "from httpx import Response\n",
            "limits.py": "def f():\n    import httpcore\n",
        },
        [
            ("trillm/client.py:1:", "httpx"),
            ("trillm/_stream.py:1:", "httpx"),
            ("trillm/limits.py:2:", "httpcore"),
        ],
    ),
    "upward_imports": (
        {
            "client.py": "from . import _default\n",
            "_default.py": "",
            "_transport.py": "from .client import Client\n",
            "errors.py": "from trillm import __version__\n",
            "providers/mock.py": "from .. import _stream\n",
            "_stream.py": "",
        },
        [
            ("trillm/client.py:1:", "'_default'", "(dependencies point down)"),
            ("trillm/_transport.py:1:", "'client'"),
            ("trillm/errors.py:1:", "'__init__'"),
            ("trillm/providers/mock.py:1:", "'_stream'"),
        ],
    ),
    "providers_importing_one_another": (
        {
            "providers/base.py": "",
            "providers/openai.py": "from .base import x\n",
            "providers/azure.py": "from .openai import x\n",
            "providers/anthropic.py": "from .openai import x\n",
            "providers/gemini.py": "from trillm.providers import anthropic\n",
            "providers/mock.py": "from . import openai\n",
        },
        [
            ("trillm/providers/anthropic.py:1:", "provider 'providers.openai'"),
            ("trillm/providers/gemini.py:1:", "provider 'providers.anthropic'"),
            ("trillm/providers/mock.py:1:", "provider 'providers.openai'"),
        ],
    ),
    "modules_not_written_yet_checked_by_their_layer": (
        {
            "client.py": "from ._transport import Transport\nfrom . import _stream\n",
            "errors.py": "from .limits import RateLimit\n",
            "retry.py": "from . import client\n",
        },
        [("trillm/errors.py:1:", "'limits'"), ("trillm/retry.py:1:", "'client'")],
    ),
    # ---- the "nevers" of DESIGN.md
    "io_imports_providers": (
        {
            "providers/openai.py": "",
            "_stream.py": "from .providers import openai\n",
            "redis.py": "import trio\nfrom .providers.base import Provider\n",
            "_transport.py": "def build():\n    from . import providers\n",
        },
        [
            ("trillm/_stream.py:1:", "'providers.openai'", IO_NEVER),
            ("trillm/redis.py:2:", "'providers.base'", IO_NEVER),
            ("trillm/_transport.py:2:", "'providers'", IO_NEVER),
        ],
    ),
    "l0_imports_async": (
        {"_wire.py": "import attrs\nimport sniffio\n", "structured.py": TC + "    import anyio\n"},
        [("trillm/_wire.py:2:", "sniffio", L0_PURE), ("trillm/structured.py:3:", "anyio", L0_PURE)],
    ),
    "coredis_outside_redis": (
        {"limits.py": "import coredis\n", "client.py": TC + "    from coredis import Redis\n"},
        [
            ("trillm/limits.py:1:", "'limits' imports coredis (only redis may"),
            ("trillm/client.py:3:", "'client' imports coredis (only redis may"),
        ],
    ),
    "httpx_outside_transport_and_test_kit": (
        {
            "redis.py": "import httpx\n",
            "otel.py": "from httpcore import Request\n",
            "_bridge.py": "def f():\n    import httpx\n",
        },
        [
            ("trillm/redis.py:1:", "httpx", HTTPX_OWNERS),
            ("trillm/otel.py:1:", "httpcore", HTTPX_OWNERS),
            ("trillm/_bridge.py:2:", "httpx", HTTPX_OWNERS),
        ],
    ),
    "concurrency_imports_http": (
        {
            "providers/base.py": "",
            "concurrency.py": "from . import _wire\n"
            + TC
            + "    import httpx\ndef f():\n    from .providers import base\n",
        },
        [
            ("trillm/concurrency.py:1:", "'_wire'", NO_HTTP),
            ("trillm/concurrency.py:4:", "httpx", NO_HTTP),
            ("trillm/concurrency.py:6:", "'providers.base'", NO_HTTP),
        ],
    ),
    # ---- no import cycle
    "cycle_through_a_function_level_import": (
        {
            "types.py": "from . import errors\n",
            "errors.py": "import re\ndef f():\n    import trillm.types\n",
        },
        [
            (
                "import cycle errors -> types -> errors:\n",
                "\n    trillm/errors.py:3: errors imports types\n",
                "\n    trillm/types.py:1: types imports errors\n",
            )
        ],
    ),
    "cycle_through_type_checking": (
        {
            "sse.py": "from .retry import Retry\n",
            "retry.py": "import trillm.routing\n",
            "routing.py": TC + "    from .sse import Event\n",
        },
        [
            (
                "import cycle retry -> routing -> sse -> retry:",
                "trillm/routing.py:3: routing imports sse (under TYPE_CHECKING)",
                "trillm/sse.py:1: sse imports retry",
            )
        ],
    ),
    "two_cycles_in_one_tangle": (
        {
            "types.py": "from . import errors\n",
            "errors.py": "from . import types, sse\n",
            "sse.py": "from .errors import E\n",
        },
        [("import cycle errors -> sse -> errors:",), ("import cycle errors -> types -> errors:",)],
    ),
    "cycles_through_packages": (
        # `from . import REGISTRY` in providers/openai.py is providers/__init__.py;
        # `from .providers import mock` is providers/mock.py.
        {
            "providers/__init__.py": "from .openai import build\n",
            "providers/openai.py": "from . import REGISTRY\n",
            "providers/mock.py": "from .. import types\n",
            "types.py": "from .providers import mock\n",
        },
        [
            ("import cycle providers -> providers.openai -> providers:",),
            ("import cycle providers.mock -> types -> providers.mock:",),
        ],
    ),
    # ---- no module uses another module's _private names
    "private_name_imported": (
        {
            "_stream.py": "def _open(): ...\n",
            "client.py": "from ._stream import _open\n",
            "_sync.py": "from trillm.client import _Call as Call\n",
        },
        [
            ("trillm/client.py:1: 'client' uses '_open'", "another module (_stream)", HINT),
            ("trillm/_sync.py:1: '_sync' uses '_Call', a private name of another module (client)",),
        ],
    ),
    "private_attribute_of_an_imported_module": (
        {
            "_sync.py": "",
            "_default.py": "from . import _sync\n_sync._RUNNER.start()\n",
            "cli.py": """
                import trillm
                import trillm.errors
                import trillm.client as c
                trillm._default_client()
                trillm.errors._redact(1)
                c._x, c._x
            """,
        },
        [
            ("trillm/_default.py:2:", "'_RUNNER'", "(_sync)", HINT),
            ("trillm/cli.py:4:", "'_default_client'", "(__init__)"),
            ("trillm/cli.py:5:", "'_redact'", "(errors)"),
            ("trillm/cli.py:6:", "'_x'", "(client):"),  # once per module and name
        ],
    ),
    "private_attribute_defined_in_another_module": (
        {
            "client.py": "class Client:\n    def _setup(self): ...\n",
            "_default.py": "def f(client):\n    client._setup()\n    client._setup()\n",
        },
        [
            (
                "trillm/_default.py:2: '_default' uses '_setup', a private name of another module "
                f"(client) (also line 3): {HINT}",
            )
        ],
    ),
}

FOLLOWED: dict[str, dict[str, str]] = {
    # ---- the "nevers" of DESIGN.md
    "io_imports_wire": {
        "_stream.py": "from . import _wire, errors, sse\n",
        "redis.py": "import trio\n",
    },
    "l0_imports_stdlib_and_attrs": {
        "_wire.py": "import attrs\nimport json\n",
        "structured.py": "import re\n",
    },
    "coredis_in_redis": {"redis.py": "import coredis\nfrom coredis.exceptions import RedisError\n"},
    "httpx_in_transport_and_test_kit": {
        "_transport.py": "import httpx\nimport httpcore\n",
        "testing/__init__.py": "import httpx\n",
        "testing/cassettes.py": "from httpx import MockTransport\nimport httpcore\n",
        "client.py": TC + "    import httpx\n",  # annotations may name httpx types
    },
    "concurrency_generic": {
        "concurrency.py": "import trio\nimport outcome\nfrom . import errors\n",
        "limits.py": "from . import _wire\n"
        + TC
        + "    import httpx\n",  # the rule is concurrency's
    },
    # ---- no import cycle: a diamond, function-level and TYPE_CHECKING imports, and
    # submodules importing submodules (not the package) while __init__ imports them.
    "imports_without_a_cycle": {
        "__init__.py": "from .client import Client\nfrom . import errors, types, retry\n",
        "errors.py": "",
        "types.py": "from . import errors\n",
        "retry.py": "from . import errors, types\n" + TC + "    from .sse import Event\n",
        "sse.py": "def f():\n    from . import types\n",
        "client.py": "from . import errors\nfrom .retry import Retry\n",
    },
    # ---- a module's own privates, dunders, private modules and outside libraries' privates
    "own_private_names": {
        "_sync.py": "def run(): ...\n",
        "_transport.py": "",
        "errors.py": "__all__ = ['E']\n",
        "cli.py": """
            import trillm
            from . import _transport
            from .errors import __all__
            trillm._sync.run(), trillm.__version__, trillm._transport
        """,
        "client.py": """
            import sys
            import attrs
            from trio import lowlevel
            import trillm.client as me
            _registry = {}
            class Base:
                __slots__ = ("_slot",)
                def _hook(self): ...
            @attrs.define
            class Client(Base):
                _field: int
                def _helper(self, other):
                    self._x = 1
                    return other._x, other._slot, other._field, other._hook(), me._registry
                @classmethod
                def make(cls):
                    thing._w = 1
                    return super()._hook(), sys._getframe(), lowlevel._private, cls._y
            def f(a, b):
                return a._w, b._helper, Client._field, me._registry
        """,
    },
}
