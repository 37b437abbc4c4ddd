"""nox sessions for trillm.

``nox -s lint typecheck tests`` is what a change must pass; ``nox -s bench``
measures trillm against raw httpx (see benchmarks/README.md).  ``nox -R``
reuses the virtual environments.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import nox

_NGINX_PATHS = ("/usr/sbin/nginx", "/usr/local/sbin/nginx", "/usr/local/nginx/sbin/nginx")


def _have_nginx() -> bool:
    return bool(
        os.environ.get("BENCH_NGINX")
        or shutil.which("nginx")
        or any(os.access(p, os.X_OK) for p in _NGINX_PATHS)
    )


@nox.session(reuse_venv=True)
def bench(session: nox.Session) -> None:
    """trillm vs raw httpx (trio) and vs AsyncOpenAI (asyncio), against a local nginx.

    See benchmarks/README.md.
    Arguments after ``--`` go to benchmarks/bench.py, e.g.
    ``nox -s bench -- --rounds 3 --phases c1,c256``. When nginx is missing and
    this runs as root on a system with apt-get (a CI container), it installs
    nginx with apt-get; otherwise bench.py says how to install it.
    """
    as_root = hasattr(os, "geteuid") and os.geteuid() == 0
    if not _have_nginx() and as_root and shutil.which("apt-get"):
        session.log("nginx not found: installing it with apt-get (running as root)")
        env = {"DEBIAN_FRONTEND": "noninteractive"}
        session.run("apt-get", "update", "-qq", external=True, env=env)
        session.run("apt-get", "install", "-y", "-qq", "nginx", external=True, env=env)
    session.install("-e", ".")
    session.install("openai")  # the asyncio peer: the asyncopenai variant (AsyncOpenAI)
    session.run("python", "benchmarks/bench.py", *session.posargs)


_FLAKE8_ASYNC_DISABLE = ",".join([
    "ASYNC9",  # the optional 9xx rules, off by default (as under flake8)
    "ASYNC127",  # "use httpx2": the design builds on httpx (its transport API) on purpose
    "ASYNC114",  # a config hint about the test server's startable function
])


@nox.session(reuse_venv=True)
def tests(session: nox.Session) -> None:
    """The whole test suite (what the README's second command and .ci/run run)."""
    session.install("-e", ".[test]")
    session.run("python", "-m", "pytest", "-q", *session.posargs)


@nox.session(reuse_venv=True)
def lint(session: nox.Session) -> None:
    """ruff (with the flake8-async ASYNC rules) and flake8-async itself."""
    session.install("ruff", "flake8-async")
    session.run("ruff", "check", "trillm", "tests", "benchmarks", "noxfile.py")
    for folder, extra in (("trillm", ""), ("tests", ",ASYNC124")):  # tests: async handlers
        files = [str(p) for p in sorted(Path(folder).rglob("*.py"))]
        session.run("flake8-async", "--disable", _FLAKE8_ASYNC_DISABLE + extra, *files)


@nox.session(reuse_venv=True)
def typecheck(session: nox.Session) -> None:
    """mypy --strict on the package (settings in pyproject.toml)."""
    session.install("-e", ".[test]", "mypy")
    session.run("mypy")
