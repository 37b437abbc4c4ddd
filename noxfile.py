"""nox sessions for trillm.

Only the ``bench`` session is defined here so far; the other sessions (tests,
lint, typing, ...) are added by others.
"""

from __future__ import annotations

import os
import shutil

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
    """trillm vs raw httpx against a local nginx (see benchmarks/README.md).

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
    session.run("python", "benchmarks/bench.py", *session.posargs)
