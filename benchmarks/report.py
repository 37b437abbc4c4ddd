"""Medians of per-round ratios, the printed table and the acceptance targets."""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

CANDIDATE = "trillm"
#: Under asyncio: trillm through its bridge, against the official SDK's AsyncOpenAI.
ASYNCIO_CANDIDATE = "trillm-asyncio"
ASYNCIO_PEER = "asyncopenai"
CANDIDATES = (CANDIDATE, ASYNCIO_CANDIDATE)
#: trillm with the OpenTelemetry hook on, against trillm without hooks.
OTEL_CANDIDATE = "trillm-otel"


def reference_for(phase: str) -> str:
    """The main reference of a phase: raw httpx for plain requests, the raw httpx2 line
    loop (no checkpoint in it: the parsing floor) for streams, raw httpx2 for TLS
    (``tN``, ``bN``) and requests held in flight (``hN``)."""
    if phase.startswith("s"):
        return "raw-httpx2-stream"
    if phase.startswith("e"):
        return "trillm-float"  # embeddings: trillm before (JSON floats) and after (base64)
    return "raw-httpx2" if phase[:1] in ("t", "b", "h") else "raw-httpx"


def second_reference_for(phase: str) -> str:
    """Another trio reference, shown when it ran: raw httpx2 (or raw httpx) for requests,
    and the raw httpx loop with one checkpoint per event for streams."""
    if phase.startswith("s"):
        return "raw-httpx-stream"
    return "raw-httpx" if phase[:1] in ("t", "b", "h") else "raw-httpx2"


def comparisons(phase: str) -> list[tuple[str, str]]:
    """(candidate, reference) pairs of a phase: trio vs raw httpx / httpx2, asyncio vs
    AsyncOpenAI.  Only the first is always shown; the others when they ran."""
    return [
        (CANDIDATE, reference_for(phase)),
        (CANDIDATE, second_reference_for(phase)),
        (ASYNCIO_CANDIDATE, ASYNCIO_PEER),
    ]


@dataclass(frozen=True)
class Stat:
    median: float
    spread: float  # (max - min) / median
    n: int

    @classmethod
    def of(cls, values: Sequence[float]) -> Stat | None:
        if not values:
            return None
        med = statistics.median(values)
        return cls(med, (max(values) - min(values)) / med if med else 0.0, len(values))

    def as_dict(self) -> dict[str, float | int]:
        return {"median": self.median, "spread": self.spread, "n": self.n}


def _ok_runs(runs: list[dict[str, Any]], variant: str, phase: str) -> dict[int, dict[str, Any]]:
    return {
        r["round"]: r
        for r in runs
        if r["variant"] == variant and r["phase"] == phase and r["status"] == "ok"
    }


def _variant_stats(
    runs: list[dict[str, Any]], name: str, phase: str, by_round: dict[int, dict[str, Any]]
) -> dict[str, Any]:
    cpu = Stat.of([r["cpu_per_unit_us"] for r in by_round.values()])
    rate = Stat.of([r["units_per_s"] for r in by_round.values()])
    return {
        "cpu_per_unit_us": cpu.as_dict() if cpu else None,
        "cpu_per_unit_us_range": (
            [
                min(r["cpu_per_unit_us"] for r in by_round.values()),
                max(r["cpu_per_unit_us"] for r in by_round.values()),
            ]
            if by_round
            else None
        ),
        "units_per_s": rate.as_dict() if rate else None,
        "max_rss_kib": max((r["max_rss_kib"] for r in by_round.values()), default=None),
        "mem_per_inflight_kib": Stat.of(
            [r["mem_per_inflight_kib"] for r in by_round.values() if "mem_per_inflight_kib" in r]
        ).as_dict() if any("mem_per_inflight_kib" in r for r in by_round.values()) else None,
        "nginx_new_connections": [r["nginx_new_connections"] for r in by_round.values()],
        "statuses": sorted(
            {r["status"] for r in runs if r["variant"] == name and r["phase"] == phase}
        ),
        "timed_out": any(
            "timed out" in r.get("error", "")
            for r in runs
            if r["variant"] == name and r["phase"] == phase
        ),
    }


def _ratios(
    cand: dict[int, dict[str, Any]], ref: dict[int, dict[str, Any]], key: str
) -> dict[str, float | int] | None:
    """Median over rounds of cand / ref, each ratio taken within one round."""
    st = Stat.of([cand[i][key] / ref[i][key] for i in sorted(cand.keys() & ref.keys())])
    return st.as_dict() if st else None


def _partial_runs(
    runs: list[dict[str, Any]], variant: str, phase: str
) -> dict[int, dict[str, Any]]:
    """Per round, how far a driver killed at --driver-timeout got in its timed wave."""
    return {
        r["round"]: {**r["partial"], "error": r.get("error", "")}
        for r in runs
        if r["variant"] == variant and r["phase"] == phase and r["status"] == "failed"
        and r.get("partial")
    }


def _bounds(cand: dict[int, dict[str, Any]], partial: dict[int, dict[str, Any]]
            ) -> dict[str, Any]:
    """Upper bounds on trillm ÷ a reference that was killed before its timed wave ended.

    That wave would have cost at least the CPU it had used when killed, and its memory
    peak is at least the highest RSS seen: CPU per request >= cpu_s / n and memory per
    request >= (rss_max - rss_before) / n.  So, in a round where trillm answered every
    request, trillm ÷ reference <= trillm's figure ÷ that bound.  Over rounds, the largest
    bound (the weakest claim) is kept.
    """
    cpu, mem, notes = [], [], []
    for i in sorted(cand.keys() & partial.keys()):
        c, p = cand[i], partial[i]
        if p["cpu_s"] > 0:
            cpu.append(c["cpu_per_unit_us"] / (p["cpu_s"] / p["n"] * 1e6))
        grown = p["rss_max_kib"] - p["rss_before_kib"]
        if grown > 0 and "mem_per_inflight_kib" in c:
            mem.append(c["mem_per_inflight_kib"] / (grown / p["n"]))
        notes.append(f"{p['answered']:,} of {p['n']:,} answered after {p['cpu_s']:.0f} s CPU")
    return {
        "cpu_ratio_bound": max(cpu) if cpu else None,
        "mem_ratio_bound": max(mem) if mem else None,
        "bound_rounds": len(notes),
        "bound_note": "; ".join(notes),
    }


def summarize(runs: list[dict[str, Any]], phases: list[str]) -> dict[str, Any]:
    """Per phase: absolute medians per variant and medians of same-round ratios.

    ``comparisons`` holds one entry per (candidate, reference) pair that ran in the
    phase; ``reference``, ``cpu_ratio`` and ``rate_ratio`` repeat the trio pair's.
    """
    out: dict[str, Any] = {"phases": {}, "scaling": {}, "bridge": {}, "otel": {}}
    present = {(r["variant"], r["phase"]) for r in runs}
    for phase in phases:
        ref_name = reference_for(phase)
        entry: dict[str, Any] = {
            "reference": ref_name,
            "unit": "chunk" if phase.startswith("s") else "vector" if phase.startswith("e")
            else "request",
            "kind": phase[:1],
            "trillm_cpu_by_round": {
                i: r["cpu_per_unit_us"] for i, r in _ok_runs(runs, CANDIDATE, phase).items()
            },
            "trillm_mem_by_round": {
                i: r["mem_per_inflight_kib"] for i, r in _ok_runs(runs, CANDIDATE, phase).items()
                if "mem_per_inflight_kib" in r
            },
            "variants": {},
            "comparisons": {},
        }
        for cand_name, peer_name in comparisons(phase):
            if cand_name == CANDIDATE and peer_name == ref_name:
                pass  # the main pair: always a row
            elif cand_name == CANDIDATE:
                if (peer_name, phase) not in present:
                    continue  # the second reference was not run: no row
            elif (cand_name, phase) not in present and (peer_name, phase) not in present:
                continue  # the asyncio pair was not run: no row
            ref = _ok_runs(runs, peer_name, phase)
            cand = _ok_runs(runs, cand_name, phase)
            for name, by_round in ((peer_name, ref), (cand_name, cand)):
                entry["variants"][name] = _variant_stats(runs, name, phase, by_round)
            entry["comparisons"][f"{cand_name}/{peer_name}"] = {
                "candidate": cand_name,
                "reference": peer_name,
                "cpu_ratio": _ratios(cand, ref, "cpu_per_unit_us"),
                "rate_ratio": _ratios(cand, ref, "units_per_s"),
                "rss_ratio": _ratios(cand, ref, "max_rss_kib"),
                "mem_ratio": (_ratios(cand, ref, "mem_per_inflight_kib")
                              if phase.startswith("h") else None),
            }
            if phase.startswith("h"):
                entry["comparisons"][f"{cand_name}/{peer_name}"].update(
                    _bounds(cand, _partial_runs(runs, peer_name, phase)))
        trio_pair = entry["comparisons"][f"{CANDIDATE}/{ref_name}"]
        entry["cpu_ratio"], entry["rate_ratio"] = trio_pair["cpu_ratio"], trio_pair["rate_ratio"]
        out["phases"][phase] = entry
        # what the bridge costs: trillm under asyncio over trillm under trio, same round
        if (ASYNCIO_CANDIDATE, phase) in present:
            out["bridge"][phase] = _ratios(
                _ok_runs(runs, ASYNCIO_CANDIDATE, phase),
                _ok_runs(runs, CANDIDATE, phase),
                "cpu_per_unit_us",
            )
        # what the OpenTelemetry hook costs: trillm-otel over trillm, same round
        if (OTEL_CANDIDATE, phase) in present:
            out["otel"][phase] = _ratios(
                _ok_runs(runs, OTEL_CANDIDATE, phase),
                _ok_runs(runs, CANDIDATE, phase),
                "cpu_per_unit_us",
            )
    # CPU per request at c=256 over the same variant's c=1, same round.
    if "c1" in phases and "c256" in phases:
        for name in ("raw-httpx", CANDIDATE, ASYNCIO_PEER, ASYNCIO_CANDIDATE):
            if name != CANDIDATE and (name, "c1") not in present:
                continue
            lo, hi = _ok_runs(runs, name, "c1"), _ok_runs(runs, name, "c256")
            out["scaling"][name] = _ratios(hi, lo, "cpu_per_unit_us")
    return out


def _fmt_stat(st: dict[str, Any] | None, digits: int = 2) -> str:
    if not st:
        return "—"
    return f"{st['median']:.{digits}f} ({st['spread'] * 100:.0f}%)"


def _fmt_abs(v: dict[str, Any] | None) -> str:
    if not v or not v["cpu_per_unit_us"]:
        return "—" if not v else "/".join(v["statuses"]) or "—"
    cpu = v["cpu_per_unit_us"]["median"]
    rate = v["units_per_s"]["median"]
    return f"{cpu:,.1f} µs  {rate:,.0f}/s"


def render_table(summary: dict[str, Any]) -> str:
    head = (
        "phase",
        "unit",
        "reference",
        "CPU/unit, rate",
        "candidate",
        "CPU/unit, rate",
        "CPU cand/ref",
        "rate cand/ref",
        "rounds",
    )
    rows: list[tuple[str, ...]] = [head]
    for phase, e in summary["phases"].items():
        for i, c in enumerate(e["comparisons"].values()):
            ref, cand = e["variants"][c["reference"]], e["variants"][c["candidate"]]
            n = c["cpu_ratio"]["n"] if c["cpu_ratio"] else 0
            rows.append(
                (
                    phase if i == 0 else "",
                    e["unit"],
                    c["reference"],
                    _fmt_abs(ref),
                    c["candidate"],
                    _fmt_abs(cand),
                    _fmt_stat(c["cpu_ratio"]),
                    _fmt_stat(c["rate_ratio"]),
                    str(n),
                )
            )
    widths = [max(len(r[i]) for r in rows) for i in range(len(head))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) for r in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    out = "\n".join(lines)
    out += (
        "\nmedians over rounds; ratios are taken per round (same round, same phase), "
        "(spread) = (max - min) / median."
    )
    for phase, e in summary["phases"].items():
        for name, v in e["variants"].items():
            lo_hi = v.get("cpu_per_unit_us_range")
            if lo_hi and lo_hi[1] > 3 * lo_hi[0]:  # bimodal, not just a busy machine
                out += (
                    f"\nnote: {name}'s CPU/{e['unit']} at {phase} ranged {lo_hi[0]:,.1f} to "
                    f"{lo_hi[1]:,.1f} µs (x{lo_hi[1] / lo_hi[0]:.1f}) between rounds; its ratios "
                    "are unstable (README: 'Unstable references')"
                )
    if summary["scaling"]:
        parts = [f"{k} {_fmt_stat(v)}" for k, v in summary["scaling"].items()]
        out += "\nCPU per request c256 ÷ c1 (same variant, same round): " + ";  ".join(parts)
    if summary.get("bridge"):
        parts = [f"{k} {_fmt_stat(v)}" for k, v in summary["bridge"].items()]
        out += "\nCPU per unit trillm-asyncio ÷ trillm (same round): " + ";  ".join(parts)
    if summary.get("otel"):
        parts = [f"{k} {_fmt_stat(v)}" for k, v in summary["otel"].items()]
        out += "\nCPU per unit trillm-otel ÷ trillm (same round): " + ";  ".join(parts)
    return out


def evaluate_targets(
    summary: dict[str, Any], imports: dict[str, Any] | None
) -> list[dict[str, Any]]:
    """The issue's acceptance targets, with the measured medians."""
    ph = summary["phases"]

    def ratio(phase: str, pair: str | None = None) -> float | None:
        e = ph.get(phase)
        if not e:
            return None
        c = e["comparisons"].get(pair or f"{CANDIDATE}/{reference_for(phase)}")
        return c["cpu_ratio"]["median"] if c and c["cpu_ratio"] else None

    def other(phase: str, key: str) -> float | None:
        e = ph.get(phase)
        c = e["comparisons"].get(f"{CANDIDATE}/{reference_for(phase)}") if e else None
        return c[key]["median"] if c and c.get(key) else None

    aio = f"{ASYNCIO_CANDIDATE}/{ASYNCIO_PEER}"

    otel = summary.get("otel", {}).get("c32")
    scaling = summary["scaling"].get(CANDIDATE)
    extra = imports.get("extra_s") if imports else None
    targets = [
        ("CPU/request trillm ÷ raw httpx at c=1", ratio("c1"), 1.5, "target 1.1"),
        ("CPU/request trillm ÷ raw httpx at c=256", ratio("c256"), 0.5, ""),
        ("CPU/request trillm c=256 ÷ trillm c=1", scaling["median"] if scaling else None, 2.0, ""),
        (
            "CPU/chunk trillm ÷ raw httpx2 line loop, one 5,000-chunk stream",
            ratio("s1x5000"), 1.5, "",
        ),
        ("CPU/chunk trillm ÷ raw httpx2 line loop, 64 streams of 200", ratio("s64"), 1.5, ""),
        (
            "CPU/chunk trillm 1,000 streams of 1,000 ÷ trillm one 5,000-chunk stream",
            _own_ratio(summary, "s1000x1000", "s1x5000"), 1.3, "",
        ),
        ("TLS: CPU/request trillm ÷ raw httpx2 at c=1", ratio("t1"), 1.0, ""),
        ("TLS: CPU/request trillm ÷ raw httpx2 at c=32", ratio("t32"), 1.0, ""),
        ("TLS: CPU/request trillm ÷ raw httpx2 at c=256", ratio("t256"), 1.0, ""),
        ("TLS: CPU/request trillm ÷ raw httpx2, cold burst of 256", ratio("b256"), 1.0,
         "handshakes"),
        ("TLS: peak RSS trillm ÷ raw httpx2 at c=256", other("t256", "rss_ratio"), 1.0, ""),
        ("10,000 in flight: CPU/request trillm ÷ raw httpx2", ratio("h10000"), 1.0, ""),
        ("10,000 in flight: memory/request trillm ÷ raw httpx2", other("h10000", "mem_ratio"),
         1.0, ""),
        ("CPU/request trillm 10,000 in flight ÷ 1,000 in flight",
         _own_ratio(summary, "h10000", "h1000"), 1.5, "linear"),
        ("memory/request trillm 10,000 in flight ÷ 1,000 in flight",
         _own_ratio(summary, "h10000", "h1000", "trillm_mem_by_round"), 1.5, "linear"),
        ("peak RSS trillm ÷ raw httpx at c=256", other("c256", "rss_ratio"), 1.0, ""),
        ("embeddings: CPU/vector as base64 (default) ÷ as JSON floats", ratio("e1"), 1.0, ""),
        ("CPU/request trillm-asyncio ÷ AsyncOpenAI at c=1", ratio("c1", aio), 1.0, ""),
        ("CPU/request trillm-asyncio ÷ AsyncOpenAI at c=32", ratio("c32", aio), 1.0, ""),
        ("CPU/chunk trillm-asyncio ÷ AsyncOpenAI, 64 streams", ratio("s64", aio), 0.5, ""),
        ("CPU/request trillm-otel ÷ trillm at c=32", otel["median"] if otel else None, 1.15, ""),
        ("import trillm minus import trio, httpx, attrs, outcome (s)", extra, 0.03, ""),
    ]
    out = []
    for name, value, limit, note in targets:
        verdict = "n/a" if value is None else ("PASS" if value <= limit else "FAIL")
        bound = False
        if value is None and name.startswith("10,000 in flight"):
            value, note, verdict = _bounded("mem" if "memory" in name else "cpu",
                                            ph.get("h10000"), limit)
            bound = value is not None
        out.append({"target": name, "measured": value, "limit": limit, "note": note,
                    "verdict": verdict, "upper_bound": bound})
    return out


def _bounded(key: str, entry: dict[str, Any] | None, limit: float
             ) -> tuple[float | None, str, str]:
    """A 10,000-in-flight gate whose reference never finished its wave (killed at
    --driver-timeout) while trillm answered every request: judged on the upper bound of
    the ratio (:func:`_bounds`).  PASS only if that bound is within the limit; n/a when
    there is no bound, or it is not conclusive.  Never a silent PASS."""
    if not entry:
        return None, "", "n/a"
    ref = entry["variants"].get(entry["reference"])
    cand = entry["variants"].get(CANDIDATE)
    pair = entry["comparisons"].get(f"{CANDIDATE}/{entry['reference']}", {})
    if not (ref and cand and ref["timed_out"] and cand["cpu_per_unit_us"]):
        return None, "", "n/a"
    bound = pair.get(f"{key}_ratio_bound")
    if bound is None:
        return None, ("raw httpx2 did not finish within --driver-timeout; no progress "
                      "reported to bound it"), "n/a"
    why = f"upper bound: raw httpx2 killed at --driver-timeout, {pair['bound_note']}"
    if bound > limit:
        return bound, why + "; not conclusive", "n/a"
    return bound, why, "PASS"


def _own_ratio(
    summary: dict[str, Any], hi: str, lo: str, key: str = "trillm_cpu_by_round"
) -> float | None:
    """Median over rounds of trillm's CPU (or memory) per unit in phase *hi* over *lo*."""
    ph = summary["phases"]
    if hi not in ph or lo not in ph:
        return None
    a, b = ph[hi][key], ph[lo][key]
    both = sorted(a.keys() & b.keys())
    return statistics.median(a[i] / b[i] for i in both) if both else None


def render_targets(targets: list[dict[str, Any]]) -> str:
    rows = [("target", "measured", "limit", "verdict")]
    for t in targets:
        v = t["measured"]
        if v is None:
            shown = "—"
        elif t["target"].startswith("import"):
            shown = f"{v:+.4f}"
        elif t.get("upper_bound"):
            shown = f"≤ {v:.3f}"
        else:
            shown = f"{v:.3f}"
        limit = f"≤ {t['limit']}" + (f" ({t['note']})" if t["note"] else "")
        rows.append((t["target"], shown, limit, t["verdict"]))
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) for r in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    counts = {v: sum(t["verdict"] == v for t in targets) for v in ("PASS", "FAIL", "n/a")}
    lines.append(f"gates: {counts['PASS']} PASS, {counts['FAIL']} FAIL, {counts['n/a']} n/a "
                 "(n/a: its phase or a variant was not run)")
    return "\n".join(lines)
