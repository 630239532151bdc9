"""One self-contained HTML page for a plan document (`gpufleet plan --report`): tables and plotly charts.

plotly.js is embedded inline once, so the page opens offline (no CDN). Every string from the document is
escaped with html.escape, in the page and in the figures (plotly renders its text as a subset of HTML).
"""

from __future__ import annotations

from html import escape
from typing import Any

import plotly.graph_objects as go
from plotly.colors import qualitative

from .page import chart_sections, page

_CSS = """body{font-family:system-ui,sans-serif;max-width:1200px;margin:2em auto;padding:0 1em;color:#222}
table{border-collapse:collapse;margin:1em 0}th,td{border:1px solid #ccc;padding:.25em .6em}
th{background:#f3f3f3;text-align:left}td{text-align:right;font-variant-numeric:tabular-nums}
h2{margin-top:2em;border-bottom:1px solid #ddd}.muted{color:#777}"""
_X = "period (month start)"


def _layout(fig: go.Figure, title: str, x: str, y: str, **kw: Any) -> go.Figure:
    fig.update_layout(title=escape(title), template="plotly_white", height=kw.pop("height", 420),
                      hovermode=kw.pop("hovermode", "x unified"), legend={"title": kw.pop("legend", None)},
                      margin={"l": 80, "r": 30, "t": 60, "b": 50}, **kw)
    fig.update_xaxes(title_text=x)
    fig.update_yaxes(title_text=y)
    return fig


def _x(doc: dict[str, Any]) -> list[str]:
    return [p["start"] for p in doc["periods"]]


def _avg_gpus(gpu_hours: list[float], doc: dict[str, Any]) -> list[float]:
    return [h / p["hours"] if p["hours"] else 0.0 for h, p in zip(gpu_hours, doc["periods"])]


def capacity_chart(doc: dict[str, Any]) -> go.Figure:
    """Per provider: average GPUs of capacity (dashed) and planned use (solid), same colour."""
    fig = go.Figure()
    x = _x(doc)
    for i, (prov, v) in enumerate(doc["per_provider"].items()):
        color = qualitative.Plotly[i % len(qualitative.Plotly)]
        fig.add_trace(go.Scatter(x=x, y=_avg_gpus(v["capacity_gpu_hours"], doc), name=f"{escape(prov)} capacity",
                                 mode="lines", line={"color": color, "dash": "dash"}, legendgroup=prov))
        fig.add_trace(go.Scatter(x=x, y=_avg_gpus(v["gpu_hours"], doc), name=f"{escape(prov)} planned",
                                 mode="lines", line={"color": color}, legendgroup=prov))
    return _layout(fig, "Capacity vs plan per provider (average GPUs over each period)", _X, "GPUs (average)",
                   legend="provider")


def burndown_chart(row: dict[str, Any], doc: dict[str, Any]) -> go.Figure:
    drawn, total = [], 0.0
    for d in row["drawn_by_period_usd"]:
        total += d
        drawn.append(total)
    x = [p["end"] for p in doc["periods"]]
    fig = go.Figure([
        go.Scatter(x=x, y=drawn, mode="lines+markers", name="drawn (cumulative, planned)"),
        go.Scatter(x=x, y=row["schedule_cumulative_usd"], mode="lines", name="schedule (committed × elapsed term)",
                   line={"dash": "dash", "color": "#555"}),
        go.Scatter(x=[x[0], x[-1]], y=[row["committed_in_plan_usd"]] * 2, mode="lines",
                   name="committed within the plan", line={"dash": "dot", "color": "#d62728"})])
    return _layout(fig, f"Commitment burn-down: {row['contract']} ({row['provider']}), term {row['start']}..{row['end']}",
                   "period end", "cumulative USD", legend="series")


def waste_chart(doc: dict[str, Any]) -> go.Figure:
    rows = doc["per_contract"]
    names = [escape(r["contract"]) for r in rows]
    fig = go.Figure([go.Bar(x=names, y=[r["wasted_usd"] for r in rows], name="wasted (paid, unused)"),
                     go.Bar(x=names, y=[r["overage_usd"] for r in rows], name="overage (beyond commitments)")])
    return _layout(fig, "Waste and overage per contract", "contract", "USD", barmode="group", hovermode="closest",
                   legend="kind")


def unmet_chart(doc: dict[str, Any]) -> go.Figure:
    fig = go.Figure()
    for s in doc["unmet"]["by_stream"]:
        fig.add_trace(go.Bar(x=_x(doc), y=s["by_period_gpu_hours"], name=escape(s["stream"])))
    return _layout(fig, "Unmet demand per period (training budgets shown at their window's end)", _X,
                   "reference GPU-hours", barmode="stack", legend="stream")


def shadow_chart(doc: dict[str, Any]) -> go.Figure:
    cap = doc["shadow_prices"]["capacity"]
    fig = go.Figure(go.Heatmap(z=[c["usd_per_gpu_month"] for c in cap], x=_x(doc),
                               y=[escape(c["cluster"]) for c in cap], colorscale="Viridis",
                               colorbar={"title": "USD / GPU-month"}))
    return _layout(fig, "Shadow price of capacity: what one more GPU-month is worth", _X, "cluster",
                   hovermode="closest", height=max(300, 60 + 28 * len(cap)))


def _table(head: list[str], rows: list[list[str]]) -> str:
    h = "".join(f"<th>{escape(x)}</th>" for x in head)
    body = "".join("<tr>" + "".join(f"<td>{escape(c)}</td>" for c in r) + "</tr>" for r in rows)
    return f"<table><thead><tr>{h}</tr></thead><tbody>{body}</tbody></table>"


def _usd(x: float) -> str:
    return f"${x:,.0f}"


def _summary(doc: dict[str, Any]) -> str:
    rows = [["status", f"{doc['status']} (gap {doc['gap']:.1e})"], ["objective", _usd(doc["objective_usd"])],
            ["horizon", f"{doc['start']} .. {doc['end']} ({len(doc['periods'])} periods)"],
            ["variables / constraints", f"{doc['variables']:,} / {doc['constraints']:,}"],
            ["build / solve (s)", f"{doc['build_s']:.3f} / {doc['solve_s']:.3f}"],
            ["unmet penalty", f"${doc['unmet_penalty_usd_per_gpu_hour']:,.2f} per GPU-hour"]]
    rows += [[k.replace("_usd", "").replace("_", " "), _usd(v)] for k, v in doc["cost"].items()]
    if "baselines" in doc:
        b = doc["baselines"]
        rows.append(["greedy cheapest list price", _usd(b["greedy_list_price"]["objective_usd"])])
        rows.append([f"best single provider ({b['single_provider']['provider']})",
                     _usd(b["single_provider"]["objective_usd"])])
    return "<table><tbody>" + "".join(f"<tr><th>{escape(a)}</th><td>{escape(b)}</td></tr>" for a, b in rows) + \
        "</tbody></table>"


def _tables(doc: dict[str, Any]) -> list[str]:
    parts = ["<h2>Contracts</h2>", _table(
        ["contract", "kind", "provider", "GPU-hours used", "paid", "wasted", "overage"],
        [[r["contract"], r["kind"], r["provider"], f"{r['used_gpu_hours']:,.0f}", _usd(r["paid_usd"]),
          _usd(r["wasted_usd"]), _usd(r["overage_usd"])] for r in doc["per_contract"]])]
    if doc.get("what_if"):
        parts += ["<h2>What-ifs (vs the base plan)</h2>", _table(
            ["what-if", "status", "objective", "Δ cost", "Δ unmet GPU-hours", "Δ wasted"],
            [[w["spec"], w["status"], _usd(w["objective_usd"]), f"{w['delta_usd']:+,.0f}",
              f"{w['delta_unmet_gpu_hours']:+,.0f}", f"{w['delta_wasted_usd']:+,.0f}"] for w in doc["what_if"]])]
    if "simulation_check" in doc:
        sc = doc["simulation_check"]
        parts += [f"<h2>Simulated vs planned GPU-hours ({escape(sc['start'])} .. {escape(sc['end'])})</h2>", _table(
            ["provider", "planned", "simulated", "difference", "planned as simulated", "difference"],
            [[k, f"{r['planned_gpu_hours']:,.0f}", f"{r['simulated_gpu_hours']:,.0f}", f"{r['relative_difference']:+.1%}",
              f"{r['planned_as_simulated_gpu_hours']:,.0f}", f"{r['relative_difference_as_simulated']:+.1%}"]
             for k, r in list(sc["per_provider"].items()) + [("total", sc["total"])]])]
    return parts


def plan_report(doc: dict[str, Any], title: str) -> str:
    """The whole page for one plan document."""
    commitments = [r for r in doc["per_contract"] if r["kind"] == "spend_commitment"]
    sections: list[tuple[str, list[go.Figure]]] = [
        ("Capacity vs plan", [capacity_chart(doc)]),
        ("Commitment burn-down", [burndown_chart(r, doc) for r in commitments]),
        ("Waste per contract", [waste_chart(doc)]),
        ("Unmet demand", [unmet_chart(doc)] if doc["unmet"]["by_stream"] else []),
        ("Shadow prices", [shadow_chart(doc)])]
    body = [f"<h1>{escape(title)}</h1>", "<h2>Summary</h2>", _summary(doc)]
    body += chart_sections(sections, "Nothing to show for this plan.")
    body += _tables(doc)
    return page(title, body, _CSS)
