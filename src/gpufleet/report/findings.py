"""What a simulation's user should not have to dig out of its numbers: reserved capacity idle while
on-demand money is spent, and commitments mostly paid for nothing. Pure: reads one result document."""

from __future__ import annotations

MOSTLY_UNUSED = 0.5     # a commitment whose owed dollars in the window are more than half wasted
SMALL_USD = 1_000.0     # below this, nothing is worth saying


def _usd(x: float) -> str:
    return f"${x / 1e9:,.2f}B" if x >= 1e9 else f"${x / 1e6:,.2f}M" if x >= 1e6 else f"${x:,.0f}"


def findings(result: dict) -> list[str]:
    rows = result.get("per_contract", [])
    out: list[str] = []
    on_demand = [r for r in rows if r["kind"] == "on_demand" and r["billed_usd"] >= SMALL_USD]
    spent = sum(r["billed_usd"] for r in on_demand)
    for r in rows:
        if r["kind"] == "reserved_capacity" and r.get("wasted_usd", 0.0) >= SMALL_USD and spent >= SMALL_USD:
            top = ", ".join(f"{o['contract']} {_usd(o['billed_usd'])}"
                            for o in sorted(on_demand, key=lambda o: -o["billed_usd"])[:3])
            out.append(f"Reservation {r['contract']} ({r['provider']}) left {_usd(r['wasted_usd'])} of paid capacity "
                       f"idle while {_usd(spent)} went to on-demand capacity ({top}): check whether that work "
                       "could use the reservation (GPU type, region, fabric size).")
    for r in rows:
        owed = r.get("owed_in_window_usd", 0.0)
        if r["kind"] == "spend_commitment" and owed >= SMALL_USD and r.get("wasted_usd", 0.0) > MOSTLY_UNUSED * owed:
            out.append(f"Commitment {r['contract']} ({r['provider']}): {_usd(r['wasted_usd'])} of the "
                       f"{_usd(owed)} owed in this window ({r['wasted_usd'] / owed:.0%}) paid for nothing.")
    return out
