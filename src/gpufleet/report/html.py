"""One self-contained HTML page for simulation results: notes, a summary table, plotly charts.

plotly.js is embedded inline once, so the page opens offline (no CDN). Every string from the caller or the
result documents is escaped: with html.escape in the page, and in the figures' JSON by plotly (which writes
"<" as \\u003c) after html.escape too, since plotly renders its text as a subset of HTML.
"""

from __future__ import annotations

import json
import math
from datetime import datetime, timezone
from html import escape
from typing import Any, Callable

import plotly.graph_objects as go  # type: ignore[import-untyped]
from plotly.colors import qualitative  # type: ignore[import-untyped]
from plotly.subplots import make_subplots  # type: ignore[import-untyped]

from .page import chart_sections, page
from .units import WAIT_KEYS, WaitUnit

Terms = dict[str, tuple[str, str, float]]   # contract -> (start ISO, end ISO, committed USD)

_CSS = """body{font-family:system-ui,sans-serif;max-width:1200px;margin:2em auto;padding:0 1em;color:#222}
table{border-collapse:collapse;margin:1em 0}th,td{border:1px solid #ccc;padding:.25em .6em}
th{background:#f3f3f3;text-align:left}td{text-align:right;font-variant-numeric:tabular-nums}
h2{margin-top:2em;border-bottom:1px solid #ddd}.muted{color:#777}"""
_X = "time (UTC)"
_KINDS = ["domain", "cluster", "capacity withdrawn", "domain outage", "cluster outage", "provider outage"]
_OUTAGE = "#d62728"


def _dur(s: float) -> str:
    return f"{s:,.0f} s" if s < 120 else f"{s / 60:,.1f} min" if s < 7200 else f"{s / 3600:,.2f} h"


_ROWS: list[tuple[str, str, Callable[[Any], str]]] = [
    ("scenario", "scenario", str), ("profile", "profile", str), ("queue", "queue", str),
    ("window start", "start", str), ("window end", "end", str),
    ("jobs", "jobs", "{:,}".format), ("finished", "finished", "{:,}".format),
    ("failed", "failed", "{:,}".format),
    ("queued at end", "queued", "{:,}".format),
    ("wait avg", "avg_wait_s", _dur), ("wait p50", "p50_wait_s", _dur), ("wait p99", "p99_wait_s", _dur),  # in the run's unit
    ("job completion time avg", "avg_jct_s", _dur),
    ("utilization (GPU-h used / capacity)", "utilization", "{:.1%}".format),
    ("goodput (useful GPU-h / capacity)", "goodput", "{:.1%}".format),
    ("cost (USD)", "cost_usd", "${:,.0f}".format),
    ("commitment wasted (USD)", "commitment_wasted_usd", "${:,.0f}".format),
    ("reserved capacity wasted (USD)", "reserved_wasted_usd", "${:,.0f}".format),
    ("on-demand / list-price spend (USD)", "on_demand_usd", "${:,.0f}".format),
    ("lost GPU-hours", "lost_gpu_hours", "{:,.1f}".format),
    ("restarts", "restarts", "{:,}".format), ("preemptions", "preemptions", "{:,}".format),
    ("inference SLO attainment", "inference_slo_attainment", "{:.2%}".format),
    ("events", "events", "{:,}".format), ("wall time (s)", "wall_s", "{:.2f}".format),
]


def _labels(results: list[dict]) -> list[str]:
    """Profile names, with the queue and scenario added when they differ, and a number when still equal."""
    parts = [[r.get("profile", "?")] for r in results]
    for key in ("queue", "scenario"):
        if len({r.get(key) for r in results}) > 1:
            for p, r in zip(parts, results):
                p.append(str(r.get(key)))
    out = [" / ".join(p) for p in parts]
    return [f"{x} #{i + 1}" if out.count(x) > 1 else x for i, x in enumerate(out)]


def _ts(r: dict) -> dict:
    return r.get("timeseries") or {}


def _x(ts: list[str]) -> list[str]:
    return [s.replace("T", " ").rstrip("Z") for s in ts]   # plotly reads "YYYY-MM-DD HH:MM:SS"; all UTC


def _when(s: str) -> datetime:
    d = datetime.fromisoformat(s)
    return d if d.tzinfo else d.replace(tzinfo=timezone.utc)


def _colors(results: list[dict]) -> dict[str, str]:
    names = sorted({p for r in results for p in _ts(r).get("capacity_gpus", {})} |
                   {p for r in results for p in r.get("per_provider", {})})
    return {p: qualitative.Plotly[i % len(qualitative.Plotly)] for i, p in enumerate(names)}


def _distinct(results: list[dict], labels: list[str], key: Callable[[dict], Any]) -> list[tuple[str, dict]]:
    """Draw results with equal `key` once, named by all their labels."""
    groups: dict[str, list[int]] = {}
    for i, r in enumerate(results):
        groups.setdefault(json.dumps(key(r), sort_keys=True), []).append(i)
    return [(", ".join(labels[i] for i in idx), results[idx[0]]) for idx in groups.values()]


def _layout(fig: go.Figure, title: str, x: str, y: str, **kw: Any) -> go.Figure:
    fig.update_layout(title=title, template="plotly_white", height=kw.pop("height", 400),
                      hovermode=kw.pop("hovermode", "x unified"),
                      margin={"l": 70, "r": 30, "t": 60, "b": 50},
                      legend={"title": kw.pop("legend", None)}, **kw)
    fig.update_xaxes(title_text=x)
    fig.update_yaxes(title_text=y)
    return fig


def utilization_chart(r: dict, label: str, colors: dict[str, str]) -> go.Figure:
    ts = _ts(r)
    x, fig = _x(ts.get("t", [])), go.Figure()
    for p, cap in ts.get("capacity_gpus", {}).items():
        used = ts.get("allocated_gpus", {}).get(p, [])
        y = [u / c if c else None for u, c in zip(used, cap)]
        fig.add_trace(go.Scatter(x=x, y=y, name=escape(p), mode="lines", line={"color": colors.get(p)}))
    fig = _layout(fig, f"Utilization per provider (allocated / capacity): {escape(label)}", _X,
                  "utilization (fraction of capacity, 0–1)", legend="provider")
    return fig.update_yaxes(range=[0, 1.05], tickformat=".0%", hoverformat=".1%")


def capacity_chart(r: dict, label: str, colors: dict[str, str]) -> go.Figure:
    ts = _ts(r)
    x, fig = _x(ts.get("t", [])), go.Figure()
    for p, cap in ts.get("capacity_gpus", {}).items():
        fig.add_trace(go.Scatter(x=x, y=cap, name=escape(p), mode="lines", stackgroup="cap",
                                 line={"width": 0.5, "color": colors.get(p)}))
    return _layout(fig, f"Capacity by provider (stacked): {escape(label)}", _X, "capacity (GPUs)",
                   legend="provider")


def _schedule(results: list[dict], term: tuple[str, str, float]) -> tuple[list[str], list[float]]:
    """The straight-line schedule clipped to the simulated window (exact at its corners: few points do)."""
    ts = [_when(t) for r in results for t in _ts(r).get("t", [])[:1] + _ts(r).get("t", [])[-1:]]
    if not ts:
        return [], []
    start, end, committed = _when(term[0]), _when(term[1]), float(term[2] or 0.0)
    w0, w1 = min(ts), max(ts)
    pts = sorted({w0, w1} | {d for d in (start, end) if w0 < d < w1})
    span = (end - start).total_seconds()
    frac = [min(1.0, max(0.0, (d - start).total_seconds() / span)) if span > 0 else 1.0 for d in pts]
    return [d.strftime("%Y-%m-%d %H:%M:%S") for d in pts], [committed * f for f in frac]


def burndown_chart(contract: str, results: list[dict], labels: list[str], terms: Terms | None) -> go.Figure:
    fig = go.Figure()
    for r, label in zip(results, labels):
        billed = _ts(r).get("contract_billed_usd", {}).get(contract)
        if billed is not None:
            fig.add_trace(go.Scatter(x=_x(_ts(r).get("t", [])), y=billed, mode="lines",
                                     name=f"billed: {escape(label)}"))
    if terms and contract in terms:
        x, y = _schedule(results, terms[contract])
        fig.add_trace(go.Scatter(x=x, y=y, mode="lines", name="schedule (committed × elapsed term)",
                                 line={"dash": "dash", "color": "#555"}))
    return _layout(fig, f"Commitment burn-down vs schedule: {escape(contract)}", _X,
                   "cumulative spend (USD)", legend="series")


def wait_chart(results: list[dict], labels: list[str]) -> go.Figure:
    keys = [("avg", "avg_wait_s"), ("p50", "p50_wait_s"), ("p95", "p95_wait_s"), ("p99", "p99_wait_s")]
    unit = WaitUnit(results)
    fig = go.Figure([go.Bar(x=[n for n, _ in keys], y=[unit.value(r.get(k) or 0.0) for _, k in keys],
                            name=escape(label)) for r, label in zip(results, labels)])
    return _layout(fig, "Wait-time distribution: average and percentiles", "statistic", f"wait ({unit.name})",
                   barmode="group", hovermode="closest", legend="run")


def failures_chart(r: dict, label: str) -> go.Figure:
    log = _ts(r).get("failures", [])
    order = {k: i for i, k in enumerate(_KINDS)}
    kinds = sorted({f["kind"] for f in log}, key=lambda k: (order.get(k, len(order)), k))
    fig = go.Figure()
    for kind in kinds:
        fs = [f for f in log if f["kind"] == kind]
        big = kind == "provider outage"
        fig.add_trace(go.Scatter(
            x=_x([f["t"] for f in fs]), y=[kind] * len(fs), mode="markers", name=escape(kind),
            text=[f"{escape(f['target'])}: {f['jobs']} jobs interrupted" for f in fs], hoverinfo="x+text",
            marker={"size": [max(30 if big else 0, min(40, 7 + 3 * math.sqrt(f["jobs"]))) for f in fs],
                    "symbol": "x" if big else "circle", "opacity": 0.9 if big else 0.6,
                    **({"color": _OUTAGE} if big else {}), "line": {"width": 0.5, "color": "#333"}}))
        for f in fs if big else []:   # a whole provider down: a line across the chart, named
            t = _x([f["t"]])[0]
            fig.add_shape(type="line", x0=t, x1=t, y0=0, y1=1, yref="paper",
                          line={"color": _OUTAGE, "dash": "dot"})
            fig.add_annotation(x=t, y=1, yref="paper", yanchor="bottom", showarrow=False,
                               text=f"{escape(f['target'])} down", font={"color": _OUTAGE})
    fig = _layout(fig, f"Failures over time (marker size: jobs interrupted): {escape(label)}", _X,
                  "failure kind", hovermode="closest", legend="kind")
    return fig.update_yaxes(categoryorder="array", categoryarray=kinds)


def share_chart(r: dict, label: str, colors: dict[str, str]) -> go.Figure | None:
    ts = _ts(r)
    classes = {c: s for c, s in ts.get("class_share", {}).items() if any(v for vs in s.values() for v in vs)}
    if not classes:
        return None
    x = _x(ts.get("t", []))
    fig = make_subplots(rows=len(classes), cols=1, shared_xaxes=True, vertical_spacing=0.08,
                        subplot_titles=[f"class: {escape(c)}" for c in classes])
    for row, (cls, shares) in enumerate(classes.items(), start=1):
        for p, ys in shares.items():
            fig.add_trace(go.Scatter(x=x, y=ys, name=escape(p), legendgroup=p, showlegend=row == 1,
                                     mode="lines", stackgroup=f"s{row}",
                                     line={"width": 0.5, "color": colors.get(p)}), row, 1)
        fig.update_yaxes(title_text="share of class GPUs (0–1)", range=[0, 1.02], tickformat=".0%",
                         hoverformat=".1%", row=row, col=1)
    fig.update_layout(title=f"Provider share over time per workload class: {escape(label)}",
                      template="plotly_white", height=160 + 230 * len(classes), legend={"title": "provider"},
                      margin={"l": 70, "r": 30, "t": 80, "b": 50})
    return fig.update_xaxes(title_text=_X, row=len(classes), col=1)


def _table(results: list[dict], labels: list[str]) -> str:
    head = "".join(f"<th>{escape(x)}</th>" for x in labels)
    rows = []
    wait = WaitUnit(results)
    for name, key, fmt in _ROWS:
        if key in WAIT_KEYS:
            fmt = wait
        cells = "".join(f"<td>{escape(fmt(r[key])) if r.get(key) is not None else '–'}</td>"
                        for r in results)
        rows.append(f"<tr><th>{escape(name)}</th>{cells}</tr>")
    return f"<table><thead><tr><th>metric</th>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>"


def _commitments(results: list[dict], terms: Terms | None) -> list[str]:
    names = [c["contract"] for r in results for c in r.get("per_contract", [])
             if c.get("kind") == "spend_commitment"]
    return list(dict.fromkeys(names + [n for n in (terms or {}) if any(
        n in _ts(r).get("contract_billed_usd", {}) for r in results)]))


def _sections(results: list[dict], labels: list[str],
              terms: Terms | None) -> list[tuple[str, list[go.Figure]]]:
    colors = _colors(results)
    ts_key: Callable[[str], Callable[[dict], Any]] = lambda k: lambda r: [_ts(r).get("t"), _ts(r).get(k)]
    util = [utilization_chart(r, lb, colors) for lb, r in _distinct(
        results, labels, lambda r: [_ts(r).get(k) for k in ("t", "allocated_gpus", "capacity_gpus")])]
    util += [capacity_chart(r, lb, colors) for lb, r in _distinct(results, labels, ts_key("capacity_gpus"))]
    burn = [burndown_chart(c, results, labels, terms) for c in _commitments(results, terms)]
    fails = [failures_chart(r, lb) for lb, r in _distinct(results, labels, lambda r: _ts(r).get("failures"))]
    share = [share_chart(r, lb, colors) for lb, r in _distinct(results, labels, ts_key("class_share"))]
    return [("Utilization and capacity", util), ("Commitment burn-down", burn),
            ("Wait times", [wait_chart(results, labels)]), ("Failures", fails),
            ("Provider share by workload class", [f for f in share if f is not None])]


def commitment_terms(portfolio: Any) -> Terms:
    """Each spend commitment's term and amount: the straight-line schedule its burn-down is drawn against."""
    return {k.name: (k.start.isoformat(), k.end.isoformat(), k.commitment_usd)
            for k in portfolio.contracts if k.kind == "spend_commitment"}


def simulation_report(results: list[dict], title: str, notes: list[str] | None = None,
                      contract_terms: Terms | None = None) -> str:
    """The whole page. `contract_terms` gives each spend commitment's term, for its straight-line schedule."""
    if not results:
        raise ValueError("simulation_report needs at least one result")
    labels = _labels(results)
    body = [f"<h1>{escape(title)}</h1>"]
    if notes:
        body.append("<ul>" + "".join(f"<li>{escape(n)}</li>" for n in notes) + "</ul>")
    body += ["<h2>Summary</h2>", _table(results, labels)]
    body += chart_sections(_sections(results, labels, contract_terms), "Nothing to show for these runs.")
    return page(title, body, _CSS)
