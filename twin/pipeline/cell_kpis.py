"""The line planner's stage: the cell's layout KPIs, worked by the scripted expert and by the
learned policy, fed the same parts the same way (``celltwin layout run`` and ``celltwin layout
run --policy BUNDLE``).

Both runs pick where the policy learned to pick: the pick target on the body the policy's part
spawns on (in ``pick_station``: the part bin, ``pick_bin``), and place at the cell's place
target.
"""

from __future__ import annotations

import json
from pathlib import Path

from celltwin.core.atomic import atomic_write_text
from celltwin.core.errors import CelltwinError
from celltwin.layout.records import RunOptions
from celltwin.layout.report import write_run
from celltwin.layout.runner import run_layout
from celltwin.pipeline.figures import kpi_png, kpi_value
from celltwin.pipeline.frame import Context, Section, Table
from celltwin.pipeline.ship import BUNDLE
from celltwin.policies.bundle_policy import BundlePolicy
from celltwin.spec import load_cell

# Folder under layout/ and label of each run.
RUNS = {"expert": "scripted expert", "policy": "learned policy"}


def pick_target_of(cell, part_body: str) -> str | None:
    """The pick target on the body where ``part_body``'s part type spawns; ``None`` when the
    cell names none there (the layout run then picks over where its parts spawn,
    docs/cells.md's conventions)."""
    part = next((p for p in cell.parts if part_body in p.body_names()), None)
    region = next((r for r in cell.spawn_regions if part and r.name == part.spawn), None)
    picks = [t.name for t in cell.targets
             if region is not None and t.name.startswith("pick") and t.relative_to == region.on]
    return picks[0] if picks else None


def run_layout_kpis(context: Context) -> dict:
    manifest = json.loads((context.out / BUNDLE / "manifest.json").read_text())
    cell = load_cell(manifest["training"]["env_kwargs"]["cell"])
    pick = pick_target_of(cell, manifest["observation"]["object_name"])
    parts = context.budget.layout_parts
    folder = context.folder("layout")
    policies = {"expert": None, "policy": BundlePolicy(context.out / BUNDLE)}
    measured, skipped = {}, {}
    for name, policy in policies.items():
        options = RunOptions(parts=parts, pick=pick,
                             policy="expert" if policy is None else BUNDLE)
        context.log(f"{RUNS[name]}: feeding {parts} part(s) at "
                    + (f"'{pick}'" if pick else "the cell's own pick place"))
        try:
            result = run_layout(cell, options, policy=policy)
        except CelltwinError as error:
            if policy is None:
                raise
            # A policy that cannot work this cell's layout (its goals lie away from the
            # place target, say) leaves the expert's KPIs standing, with the reason.
            skipped[name] = "; ".join(str(problem) for problem in error.problems)
            context.log(f"{RUNS[name]}: not run: {skipped[name]}")
            continue
        kpis, _ = write_run(result, folder / name)
        measured[name] = kpis
        cycle = kpis["cycle_time_s"]["mean"]
        context.log(f"{RUNS[name]}: {kpis['parts_out']}/{kpis['parts_in']} placed, "
                    f"{kpis['throughput_per_h']:.0f} parts/h, mean cycle "
                    + ("n/a" if cycle is None else f"{cycle:.2f} s"))
    atomic_write_text(folder / "layout.json", json.dumps(
        {"cell": cell.name, "pick": pick, "parts": parts,
         "runs": {name: f"layout/{name}/kpis.json" for name in measured},
         "not_run": skipped}, indent=2), mode=0o644)
    expert, learned = measured["expert"], measured.get("policy")
    policy_text = (f"policy {learned['throughput_per_h']:.0f} parts/h ({learned['parts_out']}/"
                   f"{learned['parts_in']} placed)" if learned else "policy not run")
    return {"summary": f"expert {expert['throughput_per_h']:.0f} parts/h, {policy_text}",
            "files": ["layout/layout.json", *(f"layout/{name}/kpis.json" for name in measured)]}


def layout_section(out: Path, record: dict) -> Section:
    plan = json.loads((out / "layout" / "layout.json").read_text())
    kpis = {RUNS[name]: json.loads((out / path).read_text())
            for name, path in plan["runs"].items()}

    def cell(value, form: str) -> str:
        return "n/a" if value is None else format(value, form)

    rows = []
    for label, k in kpis.items():
        rows.append([label, f"{k['parts_out']}/{k['parts_in']}", str(k["parts_dropped"]),
                     cell(kpi_value(k, "throughput_per_h"), ".1f"),
                     cell(kpi_value(k, "cycle_mean_s"), ".2f"), k["longest_phase"] or "n/a",
                     str(k["collisions"]["events"]), cell(k["real_time_factor"], ".1f")])
    figure = kpi_png(kpis, out / "figures" / "layout_kpis.png")
    return Section(
        f"Layout KPIs: cell `{plan['cell']}` worked by the expert and by the policy",
        [f"`celltwin layout run` with {plan['parts']} part(s) picked at `{plan['pick']}`, once "
         "with the scripted expert, once with the learned policy (`--policy bundle`: the "
         "policy picks and carries, the scripted place lowers, releases and retreats). From "
         + ", ".join(f"`{path}`" for path in plan["runs"].values()) + "."
         + "".join(f" The {RUNS[name]} was not run: {why}"
                   for name, why in plan.get("not_run", {}).items())],
        [Table(["worked by", "placed", "dropped", "throughput [parts/h]", "mean cycle [s]",
                "longest phase", "collisions", "x real time"], rows)],
        [("Layout KPIs", str(figure.relative_to(out)))])
