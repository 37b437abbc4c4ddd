"""trillm's pytest plugin (the ``pytest11`` entry point ``trillm``): fixtures ``fake_llm``
and ``no_network``, and the ``no_network`` marker.

Loading it costs nothing: trillm is imported only when a test uses a fixture.

* ``fake_llm``: a fresh :class:`~trillm.testing.FakeLLM` that answers every
  trillm call the test makes without a transport of its own (the module-level
  functions, any ``trillm.Client()`` made without ``transport=``, the sync
  API), through :func:`trillm._transport.route_default_transport`; the API-key
  variables are set to fake keys for the test.  Strict-mode misses fail the
  test at teardown.
* ``no_network`` (a fixture, or ``@pytest.mark.no_network``): any attempt to
  connect a socket to an address that is not loopback fails the test (the
  attempt itself raises ``ConnectionRefusedError``).  Loopback (the fake's
  ``serve()``) and Unix sockets stay allowed.

Plain ``def`` fixtures: they work under pytest-trio, anyio's plugin and plain
asyncio tests alike.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from . import FakeLLM

__all__ = ["fake_llm", "no_network"]

#: Fake keys for the variables trillm reads, so no call stops at "missing key".
FAKE_ENV = {
    "OPENAI_API_KEY": "sk-fake-llm-openai", "ANTHROPIC_API_KEY": "sk-ant-fake-llm",
    "GEMINI_API_KEY": "fake-llm-gemini", "AZURE_API_KEY": "fake-llm-azure",
    "AZURE_API_BASE": "https://fake-llm.openai.azure.com",
}
_BASE_VARS = ("OPENAI_BASE_URL", "OPENAI_API_BASE", "ANTHROPIC_BASE_URL", "GEMINI_API_BASE")


def pytest_configure(config: pytest.Config) -> None:
    """Register the ``no_network`` marker."""
    config.addinivalue_line(
        "markers", "no_network: fail the test if it connects to a non-loopback address")


@pytest.fixture
def fake_llm(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeLLM]:
    """A fresh FakeLLM answering every trillm call of the test made without ``transport=``."""
    from .._transport import route_default_transport
    from . import FakeLLM

    for name, value in FAKE_ENV.items():
        monkeypatch.setenv(name, value)
    for name in _BASE_VARS:  # the providers' own hosts: the fake answers any host
        monkeypatch.delenv(name, raising=False)
    fake = FakeLLM()
    route_default_transport(fake.transport())
    try:
        yield fake
    finally:
        route_default_transport(None)
    fake.check()


def _loopback(family: int, address: Any) -> bool:
    if family not in (socket.AF_INET, socket.AF_INET6):
        return True  # Unix sockets, socketpairs
    host = address[0] if isinstance(address, tuple) else address
    try:
        return ipaddress.ip_address(str(host).split("%", 1)[0]).is_loopback
    except ValueError:
        return str(host) == "localhost"


@pytest.fixture
def no_network(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """Fail the test on any connection to a non-loopback address; yields the attempts."""
    attempts: list[str] = []
    connect, connect_ex = socket.socket.connect, socket.socket.connect_ex

    def refuse(sock: socket.socket, address: Any) -> None:
        if not _loopback(sock.family, address):
            attempts.append(f"{address!r}")
            raise ConnectionRefusedError(f"no_network: the test tried to reach {address!r}")

    def checked_connect(sock: socket.socket, address: Any) -> None:
        refuse(sock, address)
        connect(sock, address)

    def checked_connect_ex(sock: socket.socket, address: Any) -> int:
        refuse(sock, address)
        return connect_ex(sock, address)

    monkeypatch.setattr(socket.socket, "connect", checked_connect)
    monkeypatch.setattr(socket.socket, "connect_ex", checked_connect_ex)
    yield attempts
    if attempts:
        pytest.fail("no_network: the test tried to reach " + ", ".join(attempts), pytrace=False)


@pytest.fixture(autouse=True)
def _trillm_no_network_marker(request: pytest.FixtureRequest) -> None:
    """``@pytest.mark.no_network`` uses the fixture."""
    if request.node.get_closest_marker("no_network") is not None:
        request.getfixturevalue("no_network")
