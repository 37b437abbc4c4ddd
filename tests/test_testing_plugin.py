"""The pytest plugin (``-p trillm.testing.pytest_plugin``, the ``pytest11`` entry point
once installed): ``fake_llm`` routes every trillm call without a transport of its own
(module-level functions, ``Client()``, the sync API) to a fresh FakeLLM; ``no_network``
fails a test that connects anywhere but loopback.  Run in a pytest subprocess."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = str(Path(__file__).resolve().parents[1])

USER_TESTS = '''
import socket

import pytest
import trio

import trillm
import trillm.testing


async def test_module_functions_and_clients(fake_llm):
    fake_llm.on(model="gpt-4o-mini").fail(429, retry_after=1).reply("faked")
    r = await trillm.acompletion(model="gpt-4o-mini", messages=[{"role": "user", "content": "x"}])
    assert r.choices[0].message.content == "faked"
    async with trillm.Client() as c:
        a = await c.acompletion(model="claude-3-5-haiku-latest",
                                messages=[{"role": "user", "content": "echo"}])
    assert a.choices[0].message.content == "echo"
    assert [q.status for q in fake_llm.requests] == [429, 200, 200]


def test_the_sync_api(fake_llm):
    fake_llm.on().reply("sync faked")
    r = trillm.completion(model="gemini/gemini-2.0-flash",
                          messages=[{"role": "user", "content": "x"}])
    assert r.choices[0].message.content == "sync faked"
    fake_llm.assert_called(provider="gemini", times=1)


async def test_a_client_with_its_own_transport_is_left_alone(fake_llm):
    other = trillm.testing.FakeLLM()
    other.on().reply("mine")
    async with trillm.Client(transport=other.transport(), api_key="k") as c:
        r = await c.acompletion(model="gpt-4o", messages=[{"role": "user", "content": "x"}])
    assert r.choices[0].message.content == "mine"
    assert fake_llm.requests == []


@pytest.mark.anyio
@pytest.mark.parametrize("anyio_backend", ["trio", "asyncio"])
async def test_under_anyio(fake_llm, anyio_backend):
    fake_llm.on(when=lambda r: r.text == "s").stream(["x", "y"])
    r = await trillm.acompletion(model="gpt-4o-mini", messages=[{"role": "user", "content": "a"}])
    assert r.choices[0].message.content == "a"
    async with trillm.Client() as c:
        s = await c.acompletion(model="claude-3-5-haiku-latest", stream=True,
                                messages=[{"role": "user", "content": "s"}])
        async with s:
            got = [chunk.choices[0].delta.content async for chunk in s]
    assert "".join(t or "" for t in got) == "xy"
    assert [q.provider for q in fake_llm.requests] == ["openai", "anthropic"]
    assert fake_llm.requests[1].completed


def test_under_asyncio_through_the_bridge(fake_llm):
    import asyncio

    fake_llm.on(model="gemini-2.0-flash").fail(503).reply("bridged")

    async def main():
        r = await trillm.acompletion(model="gemini/gemini-2.0-flash",
                                     messages=[{"role": "user", "content": "x"}])
        slow = asyncio.ensure_future(trillm.acompletion(
            model="gpt-4o", messages=[{"role": "user", "content": "hang"}]))
        await asyncio.sleep(0.05)
        slow.cancel()  # the bridge cancels the trio side and waits for its close
        try:
            await slow
        except asyncio.CancelledError:
            pass
        return r.choices[0].message.content

    fake_llm.on(model="gpt-4o").hang()
    assert asyncio.run(main()) == "bridged"
    assert [q.status for q in fake_llm.requests[:2]] == [503, 200]
    assert fake_llm.requests[2].cancelled_by_client


async def test_loopback_is_allowed(no_network, fake_llm):
    async with fake_llm.serve() as url, trillm.Client(api_base=url + "/v1") as c:
        r = await c.acompletion(model="gpt-4o", messages=[{"role": "user", "content": "up"}])
    assert r.choices[0].message.content == "up"
    assert no_network == []
'''


def run_pytest(tmp_path: Path, source: str) -> subprocess.CompletedProcess[str]:
    (tmp_path / "test_user.py").write_text(textwrap.dedent(source))
    (tmp_path / "pytest.ini").write_text(
        "[pytest]\ntrio_mode = true\nfilterwarnings = error\n")
    return subprocess.run(
        # the plugin by its module, with the installed entry point of the same plugin
        # blocked (it is there once trillm is pip-installed: registering both fails)
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:trillm",
         "-p", "trillm.testing.pytest_plugin", "-p", "anyio", str(tmp_path)],
        capture_output=True, text=True, cwd=tmp_path, timeout=120,
        env={"PYTHONPATH": ROOT, "PATH": "/usr/bin:/bin", "HOME": str(tmp_path)},
    )


def test_the_plugin_in_a_users_test_suite(tmp_path: Path) -> None:
    done = run_pytest(tmp_path, USER_TESTS)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "7 passed" in done.stdout


def test_no_network_fails_the_test_even_when_it_swallowed_the_refusal(tmp_path: Path) -> None:
    done = run_pytest(tmp_path, """
        import socket

        import httpx
        import pytest

        def test_fixture(no_network):
            try:
                socket.create_connection(("192.0.2.1", 80), timeout=1)
            except ConnectionRefusedError:
                pass

        @pytest.mark.no_network
        async def test_marker():
            async with httpx.AsyncClient() as h:
                with pytest.raises(httpx.ConnectError):
                    await h.get("http://192.0.2.7:81/")

        def test_unmarked_is_untouched():
            assert socket.socket.connect.__qualname__ == "socket.connect"
        """)
    assert done.returncode == 1
    assert "no_network: the test tried to reach ('192.0.2.1', 80)" in done.stdout
    assert "no_network: the test tried to reach ('192.0.2.7', 81)" in done.stdout
    assert "3 passed, 2 errors" in done.stdout  # the errors come at teardown


def test_loading_the_plugin_does_not_load_the_kit() -> None:
    code = ("import sys, trillm.testing.pytest_plugin as p; "
            "print(sorted(m for m in sys.modules if m.startswith('trillm')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, env={"PYTHONPATH": ROOT})
    loaded = out.stdout
    assert "'trillm.testing.pytest_plugin'" in loaded
    assert "trillm.testing._" not in loaded  # the kit loads when a fixture asks for it
