#!/usr/bin/env python3
"""trillm vs raw httpx under trio and vs AsyncOpenAI under asyncio, against a local nginx.

    python benchmarks/bench.py [--rounds 7] [--phases c1,c32,c256,s64] [--min-time 1.5]

Starts nginx from a generated config in a temporary directory, checks that it
answers POST correctly, times ``import trillm`` against ``import trio, httpx,
attrs, outcome``, then runs every (variant, phase) in a fresh process (driver
mode of this script), variants interleaved within a round and their order rotated
between rounds. Prints medians of same-round ratios (trillm / raw httpx under trio,
trillm-asyncio / AsyncOpenAI under asyncio) and writes everything to
``benchmarks/results/``. See ``benchmarks/README.md``.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import http.client
import importlib.metadata
import json
import os
import platform
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from types import FrameType
from typing import Any, NoReturn

import canned
import nginx_server
import report
import tls

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
RESULT_PREFIX = "BENCH-RESULT "
PROGRESS_PREFIX = "BENCH-PROGRESS "  # == driver.PROGRESS_PREFIX (driver is imported lazily)
ALL_VARIANTS = (
    "raw-httpx", "raw-httpx-stream", "raw-httpx2", "raw-httpx2-stream",
    "trillm", "trillm-otel", "trillm-asyncio", "asyncopenai", "trillm-float",
)
DEFAULT_PHASES = "c1,c32,c256,s64,s1x5000,s1000,s1000x1000,t1,t32,t256,b256,h1000,h10000,e1"
#: References that may be missing (their package not installed): reported, never a failure.
OPTIONAL = frozenset({"asyncopenai", "raw-httpx2", "raw-httpx2-stream"})
#: Not references of anything but trillm's own "before" (embeddings as JSON floats).
CANDIDATE_LIKE = frozenset({"trillm-float"})
BASELINE_IMPORT = "import trio, httpx, attrs, outcome"


# --- driver mode --------------------------------------------------------------------------


def driver_main(args: argparse.Namespace) -> int:
    import driver

    variant, phase = args.driver
    result = driver.drive(
        variant, phase, args.json_base, args.sse_base, args.min_time, args.warmup_time,
        args.tls_base, args.hold_base,
    )
    print(RESULT_PREFIX + json.dumps(result), flush=True)
    return 0


# --- helpers ------------------------------------------------------------------------------


#: The CA every client trusts in the TLS phases (set once the certificates are made).
CA_FILE: str | None = None


def _child_env() -> dict[str, str]:
    """Children import trillm from this working tree (installed or not), and trust the
    benchmark's CA through SSL_CERT_FILE (as httpx, httpx2 and trillm read it)."""
    env = dict(os.environ)
    if CA_FILE is not None:
        env["SSL_CERT_FILE"] = CA_FILE
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), env.get("PYTHONPATH")) if p)
    return env


def _versions() -> dict[str, str | None]:
    out: dict[str, str | None] = {}
    for name in ("trio", "httpx", "httpcore", "httpx2", "httpcore2", "h11", "attrs", "outcome",
                 "trillm", "openai"):
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            out[name] = None
    return out


def _git_commit() -> str | None:
    try:
        out = subprocess.run(
            ["git", "-C", str(REPO), "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        )
    except OSError:
        return None
    return out.stdout.strip() or None


def smoke_check(srv: nginx_server.Nginx) -> None:
    """POST to both URLs twice on one keep-alive connection; check status, type and body."""
    conn = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=10)
    try:
        for path, body, ctype in (
            (nginx_server.JSON_PATH, canned.REQUEST_BODY, "application/json"),
            (nginx_server.SSE_PATH, canned.STREAM_REQUEST_BODY, "text/event-stream"),
        ):
            for _ in range(2):
                conn.request(
                    "POST",
                    path,
                    body=json.dumps(body),
                    headers={"Content-Type": "application/json"},
                )
                resp = conn.getresponse()
                data = resp.read()
                got_type = resp.getheader("Content-Type")
                if resp.status != 200 or got_type != ctype:
                    raise RuntimeError(f"POST {path}: HTTP {resp.status}, type {got_type}")
                if resp.getheader("Connection", "").lower() == "close":
                    raise RuntimeError(f"POST {path}: nginx closed the connection")
                if ctype == "application/json":
                    content = json.loads(data)["choices"][0]["message"]["content"]
                    ok = content == canned.EXPECTED_CONTENT
                else:
                    events = [line[6:] for line in data.split(b"\n") if line.startswith(b"data: ")]
                    pieces = [
                        c["choices"][0]["delta"].get("content", "")
                        for c in map(json.loads, events[:-1])
                        if c["choices"]
                    ]
                    ok = events[-1] == b"[DONE]" and "".join(pieces) == (
                        canned.EXPECTED_STREAM_CONTENT
                    )
                if not ok:
                    raise RuntimeError(f"POST {path}: unexpected body {data[:200]!r}")
    finally:
        conn.close()


# --- import time --------------------------------------------------------------------------


def time_imports(runs: int, cpus: set[int] | None) -> dict[str, Any]:
    """Wall time of fresh processes: ``import trillm`` vs the baseline, A/B interleaved."""
    cmds = {
        "baseline": [sys.executable, "-c", BASELINE_IMPORT],
        "trillm": [sys.executable, "-c", "import trillm"],
    }
    env = _child_env()

    def once(name: str) -> float:
        t0 = time.perf_counter()
        proc = subprocess.run(
            cmds[name],
            env=env,
            cwd=REPO,
            capture_output=True,
            text=True,
            preexec_fn=nginx_server.child_setup(cpus),
            check=False,
            timeout=60,
        )
        wall = time.perf_counter() - t0
        if proc.returncode:
            raise RuntimeError(proc.stderr.strip().splitlines()[-1])
        return wall

    out: dict[str, Any] = {
        "runs": runs,
        "baseline_cmd": BASELINE_IMPORT,
        "trillm_cmd": "import trillm",
    }
    # Byte-compile trillm first, as installing a wheel does: with PYTHONDONTWRITEBYTECODE
    # set (as on this machine) every import would otherwise compile its sources again,
    # while trio and httpx load the bytecode pip wrote when it installed them.
    subprocess.run([sys.executable, "-m", "compileall", "-q", "trillm"], cwd=REPO,
                   env=env, capture_output=True, check=False, timeout=120)
    try:
        once("trillm")  # warm-up: fills the page cache
    except RuntimeError as exc:
        return {**out, "status": "unavailable", "error": str(exc)}
    once("baseline")
    times: dict[str, list[float]] = {"baseline": [], "trillm": []}
    for i in range(runs):
        order = ("baseline", "trillm") if i % 2 == 0 else ("trillm", "baseline")
        for name in order:
            times[name].append(once(name))
    base, tri = statistics.median(times["baseline"]), statistics.median(times["trillm"])
    paired = statistics.median(
        t - b for t, b in zip(times["trillm"], times["baseline"], strict=True)
    )
    return {
        **out,
        "status": "ok",
        "baseline_s": times["baseline"],
        "trillm_s": times["trillm"],
        "baseline_median_s": base,
        "trillm_median_s": tri,
        "extra_s": tri - base,
        "paired_extra_median_s": paired,
    }


# --- one measurement ----------------------------------------------------------------------


def run_driver(
    args: argparse.Namespace,
    srv: nginx_server.Nginx,
    variant: str,
    phase: str,
    cpus: set[int] | None,
) -> dict[str, Any]:
    cmd = [
        sys.executable,
        str(HERE / "bench.py"),
        "--driver",
        variant,
        phase,
        "--json-base",
        srv.json_base,
        "--sse-base",
        srv.sse_base,
        *(["--tls-base", srv.tls_json_base] if srv.tls_json_base else []),
        *(["--hold-base", args.hold_base] if args.hold_base else []),
        "--min-time",
        str(args.min_time),
        "--warmup-time",
        str(args.warmup_time),
    ]
    before = srv.status()
    try:
        proc = subprocess.run(
            cmd,
            env=_child_env(),
            cwd=REPO,
            capture_output=True,
            text=True,
            preexec_fn=nginx_server.child_setup(cpus),
            timeout=args.driver_timeout,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        out = {
            "variant": variant,
            "phase": phase,
            "status": "failed",
            "error": f"timed out after {args.driver_timeout} s (killed)",
        }
        partial = _last_progress(exc.stdout)
        if partial is not None:  # how far the timed wave got: lower bounds on its cost
            out["partial"] = partial
            out["error"] += (f" with {partial['answered']:,} of {partial['n']:,} answered after"
                             f" {partial['wall_s']:.0f} s and {partial['cpu_s']:.1f} s CPU of"
                             " its timed wave")
        return out
    after = srv.status()
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith(RESULT_PREFIX)]
    if not lines:
        tail = "\n".join(proc.stderr.strip().splitlines()[-15:])
        return {
            "variant": variant,
            "phase": phase,
            "status": "failed",
            "error": f"driver exited with {proc.returncode} and no result:\n{tail}",
        }
    result: dict[str, Any] = json.loads(lines[-1][len(RESULT_PREFIX) :])
    # stub_status counts its own request and connection once in the second reading.
    result["nginx_requests"] = after["requests"] - before["requests"] - 1
    result["nginx_new_connections"] = after["accepts"] - before["accepts"] - 1
    if phase.startswith("h"):  # the hold server answered, not nginx
        result["nginx_requests"] = result["nginx_new_connections"] = 0
    elif result["status"] == "ok" and result["nginx_requests"] != result["started"]:
        result["warning"] = (
            f"nginx counted {result['nginx_requests']} requests, "
            f"the client started {result['started']}"
        )
    return result


def _last_progress(stdout: str | bytes | None) -> dict[str, Any] | None:
    """The last progress line a killed driver printed (``driver._progress``), if any."""
    if isinstance(stdout, bytes):
        stdout = stdout.decode(errors="replace")
    lines = [ln for ln in (stdout or "").splitlines() if ln.startswith(PROGRESS_PREFIX)]
    if not lines:
        return None
    try:
        partial: dict[str, Any] = json.loads(lines[-1][len(PROGRESS_PREFIX):])
    except ValueError:  # cut in the middle of the line by the kill
        return _last_progress("\n".join(lines[:-1]))
    return partial


def _describe(r: dict[str, Any]) -> str:
    if r["status"] != "ok":
        first = r.get("error", "").splitlines()[0] if r.get("error") else ""
        return f"{r['status'].upper()}: {first}"
    s = (
        f"{r['cpu_per_unit_us']:9,.1f} µs CPU/{r['unit']:<7}"
        f"  {r['units_per_s']:9,.0f} {r['unit']}s/s"
        f"  (user {r['user_s']:.2f} s, sys {r['sys_s']:.2f} s, {r['items']} "
        f"{'streams' if r['unit'] == 'chunk' else 'requests'} in {r['wall_s']:.2f} s,"
        f" {r['nginx_new_connections']} new conns, rss {r['max_rss_kib'] / 1024:.0f} MiB)"
    )
    if "warning" in r:
        s += f"  WARNING: {r['warning']}"
    return s


# --- orchestration ------------------------------------------------------------------------


def _parse_list(text: str) -> list[str]:
    return [x.strip() for x in text.split(",") if x.strip()]


def _sigterm(signum: int, frame: FrameType | None) -> NoReturn:
    raise SystemExit(128 + signum)  # unwinds through the finally blocks: nginx is stopped


def orchestrate(args: argparse.Namespace) -> int:
    import driver  # light: imports trio/httpx only inside the runners

    phases = _parse_list(args.phases)
    variants = _parse_list(args.variants)
    for p in phases:
        driver.Phase.parse(p)
    unknown = [v for v in variants if v not in ALL_VARIANTS]
    if unknown:
        print(f"unknown variant(s) {unknown}; choose from {', '.join(ALL_VARIANTS)}")
        return 2
    binary = nginx_server.find_nginx(args.nginx or os.environ.get("BENCH_NGINX"))
    if binary is None:
        print(nginx_server.INSTALL_HINT, file=sys.stderr)
        return 2

    allowed = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
    server_cpus = client_cpus = None
    if not args.no_pin and len(allowed) >= 2:
        server_cpus, client_cpus = {allowed[0]}, {allowed[1]}
    signal.signal(signal.SIGTERM, _sigterm)

    started = time.time()
    meta: dict[str, Any] = {
        "started": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "python": sys.version.split()[0],
        "executable": sys.executable,
        "platform": platform.platform(),
        "cpus_allowed": allowed,
        "nginx_cpus": sorted(server_cpus or []),
        "client_cpus": sorted(client_cpus or []),
        "versions": _versions(),
        "git_commit": _git_commit(),
        "args": {k: v for k, v in vars(args).items() if k != "driver"},
    }
    global CA_FILE
    kinds = {p[:1] for p in phases}
    with contextlib.ExitStack() as stack:
        tls_files = None
        if kinds & {"t", "b"}:
            if tls.openssl() is None:
                print("openssl not found: the TLS phases are reported unavailable")
            else:
                tmp = stack.enter_context(tempfile.TemporaryDirectory(prefix="trillm-tls-"))
                tls_files = tls.make_certificates(Path(tmp))
                CA_FILE = str(tls_files.ca)
        args.hold_base = None
        if "h" in kinds:
            args.hold_base = stack.enter_context(hold_server(args.hold, server_cpus))
            print(f"hold server on {args.hold_base} (holds each request {args.hold:g} s)")
        srv = stack.enter_context(nginx_server.running_nginx(binary, server_cpus, tls_files))
        return _rounds(args, srv, phases, variants, allowed, server_cpus, client_cpus, meta,
                       started)


@contextlib.contextmanager
def hold_server(hold: float, cpus: set[int] | None) -> Iterator[str]:
    """benchmarks/hold_server.py on a free port, for the hN phases: its api_base."""
    port = nginx_server._free_port()
    proc = subprocess.Popen(
        [sys.executable, str(HERE / "hold_server.py"), str(port), str(hold)],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, cwd=HERE,
        preexec_fn=nginx_server.child_setup(cpus), start_new_session=True,
    )
    try:
        assert proc.stdout is not None
        if proc.stdout.readline().strip() != b"ready":
            raise RuntimeError("the hold server did not start")
        yield f"http://127.0.0.1:{port}/hold/v1"
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _rounds(
    args: argparse.Namespace,
    srv: nginx_server.Nginx,
    phases: list[str],
    variants: list[str],
    allowed: list[int],
    server_cpus: set[int] | None,
    client_cpus: set[int] | None,
    meta: dict[str, Any],
    started: float,
) -> int:
    import driver

    runs: list[dict[str, Any]] = []
    imports: dict[str, Any] | None = None
    skip: dict[tuple[str, str], str] = {}  # (variant, phase) -> why later rounds skip it
    meta["nginx"] = srv.version
    pin_note = (
        f"nginx on CPU {allowed[0]}, clients on CPU {allowed[1]}"
        if client_cpus
        else "no CPU pinning"
    )
    print(f"{srv.version} on {srv.origin} (pid {srv.pid}); {pin_note}")
    smoke_check(srv)
    print("nginx answers POST with the canned JSON and SSE bodies")

    if args.import_runs > 0:
        imports = time_imports(args.import_runs, client_cpus)
        if imports["status"] == "ok":
            print(
                f"import time (median of {args.import_runs} fresh processes): "
                f"`{BASELINE_IMPORT}` {imports['baseline_median_s'] * 1e3:.1f} ms, "
                f"`import trillm` {imports['trillm_median_s'] * 1e3:.1f} ms, "
                f"extra {imports['extra_s'] * 1e3:+.1f} ms"
            )
        else:
            print(f"import trillm: unavailable ({imports['error']})")

    for rnd in range(args.rounds):
        for phase in phases:
            ph = driver.Phase.parse(phase)
            here = [v for v in variants if driver.supports(v, ph)]
            shift = rnd % len(here) if here else 0
            for variant in here[shift:] + here[:shift]:
                tag = f"round {rnd + 1}/{args.rounds}  {phase:<5} {variant:<17}"
                result: dict[str, Any]
                if (variant, phase) in skip:
                    result = {
                        "variant": variant,
                        "phase": phase,
                        "status": "skipped",
                        "error": skip[(variant, phase)],
                    }
                else:
                    result = run_driver(args, srv, variant, phase, client_cpus)
                    if result["status"] == "unavailable":
                        for p in phases:
                            skip[(variant, p)] = result["error"]
                    elif "timed out" in result.get("error", ""):
                        skip[(variant, phase)] = result["error"]
                result["round"] = rnd
                runs.append(result)
                if result["status"] != "skipped":
                    print(f"{tag} {_describe(result)}", flush=True)
                    if result["status"] == "failed" and "traceback" in result:
                        print(result["traceback"], file=sys.stderr)

    summary = report.summarize(runs, phases)
    targets = report.evaluate_targets(summary, imports)
    print()
    print(report.render_table(summary))
    if imports and imports["status"] == "ok":
        print(
            f"import: baseline {imports['baseline_median_s']:.3f} s, trillm "
            f"{imports['trillm_median_s']:.3f} s (medians of {imports['runs']}), difference "
            f"{imports['extra_s']:+.3f} s (median of paired differences "
            f"{imports['paired_extra_median_s']:+.3f} s)"
        )
    print()
    print(report.render_targets(targets))
    unavailable = {r["variant"]: r["error"] for r in runs if r["status"] == "unavailable"}
    for name, why in unavailable.items():
        print(f"\n{name}: unavailable: {why}")

    meta["duration_s"] = round(time.time() - started, 1)
    results_dir = Path(args.results_dir)
    results_dir.mkdir(parents=True, exist_ok=True)
    stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    path = results_dir / f"bench-{stamp}.json"
    path.write_text(
        json.dumps(
            {
                "meta": meta,
                "imports": imports,
                "summary": summary,
                "targets": targets,
                "runs": runs,
            },
            indent=1,
        )
    )
    print(f"\nresults: {path}  ({meta['duration_s']:.0f} s)")

    # The references (raw httpx, and AsyncOpenAI when openai is installed) must work.
    ref_failed = [
        r
        for r in runs
        if r["variant"] not in report.CANDIDATES
        and r["variant"] not in CANDIDATE_LIKE
        and r["status"] != "ok"
        and not (r["variant"] in OPTIONAL and r["status"] in ("unavailable", "skipped"))
        # 10,000 requests in flight through httpcore's pool can take many minutes
        and not (r["phase"].startswith("h")
                 and ("timed out" in r.get("error", "") or r["status"] == "skipped"))
    ]
    if ref_failed:
        print(f"{len(ref_failed)} reference run(s) failed: the harness is broken", file=sys.stderr)
        return 1
    if args.strict and any(t["verdict"] != "PASS" for t in targets):
        return 1
    return 0


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--rounds", type=int, default=7, help="rounds of every (variant, phase)")
    p.add_argument(
        "--phases",
        default=DEFAULT_PHASES,
        help="c<N>: N concurrent requests; s<N>[x<M>]: N concurrent streams of M (200) chunks; "
        "t<N>: N concurrent HTTPS requests; b<N>: cold HTTPS bursts of N; h<N>: N requests "
        "held in flight; e<N>: N concurrent embedding requests",
    )
    p.add_argument("--variants", default=",".join(ALL_VARIANTS), help="comma-separated")
    p.add_argument("--min-time", type=float, default=1.5, help="seconds of timed work per process")
    p.add_argument(
        "--warmup-time",
        type=float,
        default=0.3,
        help="untimed warm-up per process (at least this long and max(N, 20) requests/streams)",
    )
    p.add_argument(
        "--import-runs", type=int, default=7, help="fresh processes per import command; 0 skips"
    )
    p.add_argument("--no-pin", action="store_true", help="don't pin nginx and clients to CPUs")
    p.add_argument("--nginx", help="nginx binary (default: $BENCH_NGINX, PATH, /usr/sbin)")
    p.add_argument(
        "--driver-timeout", type=float, default=120.0, help="kill a driver process after this"
    )
    p.add_argument("--results-dir", default=str(HERE / "results"))
    p.add_argument(
        "--hold", type=float, default=3.0, help="seconds the hold server holds each request (hN)"
    )
    p.add_argument(
        "--strict", action="store_true", help="exit 1 when a target is missed or not measured"
    )
    # driver mode (internal)
    p.add_argument("--driver", nargs=2, metavar=("VARIANT", "PHASE"), help=argparse.SUPPRESS)
    p.add_argument("--json-base", help=argparse.SUPPRESS)
    p.add_argument("--sse-base", help=argparse.SUPPRESS)
    p.add_argument("--tls-base", help=argparse.SUPPRESS)
    p.add_argument("--hold-base", help=argparse.SUPPRESS)
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.driver:
        return driver_main(args)
    try:
        return orchestrate(args)
    except KeyboardInterrupt:
        print("\ninterrupted; nginx was stopped", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
