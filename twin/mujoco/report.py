"""The agreement report for people and machines: ``agreement.json`` and ``agreement.md``."""

from __future__ import annotations

import json
from pathlib import Path

from celltwin.core.atomic import atomic_write_text
from celltwin.mujoco.compare import AgreementReport, Check

# What differs between the two twins by construction, for a reader judging an error.
DIFFERENCES = (
    "Contacts: pybullet solves hard contacts with an iterative LCP solver; MuJoCo's are soft "
    "(solref/solimp defaults) and solved by its Newton solver, with the same friction "
    "coefficients per pair (Bullet's products).",
    "Conveyors: pybullet sets the velocity of parts on a belt every control step (the belt has "
    "no friction along its axis); MuJoCo's belt surface moves and friction carries them.",
    "Servos: both run pybullet's motor law (docs/mujoco.md); pybullet solves motors, joint "
    "limits and contacts together, the MuJoCo twin solves its motors first and the rest after.",
    "No counterpart in MuJoCo: pybullet's link damping (0.04 s^-1 on every body) and the "
    "Panda fingers' contact stiffness and damping from its URDF.",
)


def write_report(report: AgreementReport, out: Path) -> list[Path]:
    """Write ``agreement.json`` and ``agreement.md`` into ``out``; return their paths."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    json_path = atomic_write_text(out / "agreement.json",
                                  json.dumps(report.to_dict(), indent=2) + "\n")
    markdown_path = atomic_write_text(out / "agreement.md", to_markdown(report))
    return [json_path, markdown_path]


def to_markdown(report: AgreementReport) -> str:
    verdict = ("every check with a limit is within it" if report.ok
               else f"{len(report.failed())} check(s) outside their limit")
    lines = [f"# pybullet vs MuJoCo: cell `{report.cell}`", "",
             f"pybullet {report.engines['pybullet']}, MuJoCo {report.engines['mujoco']}; "
             f"timestep {report.settings['timestep_s'] * 1e3:g} ms, control period "
             f"{report.settings['control_period_s'] * 1e3:g} ms. Result: {verdict}.", "",
             "| section | check | pybullet | MuJoCo | error | limit | result |",
             "| --- | --- | --- | --- | --- | --- | --- |"]
    for check in report.checks:
        lines.append(f"| {check.section} | {check.name} | {_value(check, check.pybullet)} | "
                     f"{_value(check, check.mujoco)} | {_error(check)} | {_limit(check)} | "
                     f"{_result(check)} |")
    notes = [f"- {check.name}: {check.note}" for check in report.checks if check.note]
    if notes:
        lines += ["", "Notes:", "", *notes]
    lines += ["", "What differs by construction (docs/mujoco.md):", "",
              *[f"- {text}" for text in DIFFERENCES], ""]
    return "\n".join(lines)


def summary_lines(report: AgreementReport) -> list[str]:
    """The report in a few lines for the terminal: the worst error of each kind of check."""
    lines = []
    kinds: dict[tuple, list[Check]] = {}
    for check in report.checks:
        kinds.setdefault((check.section, check.unit, check.relative), []).append(check)
    for (section, _, _), checks in kinds.items():
        measured = [check for check in checks if check.error is not None]
        if not measured:
            lines.append(f"  {section:<18} {checks[0].name}: {checks[0].note}")
            continue
        worst = max(measured, key=lambda check: check.error)
        failed = sum(check.passed is False for check in checks)
        state = (f", {failed} outside the limit" if failed
                 else ", all within the limit" if worst.limit is not None else "")
        lines.append(f"  {section:<18} worst {_error(worst)} ({worst.name}){state}")
    lines.append("agreement: " + ("ok" if report.ok else
                                  f"{len(report.failed())} check(s) outside their limit"))
    return lines


def _value(check: Check, value: float | None) -> str:
    if value is None:
        return ""
    return _quantity(value, check.unit, digits=".2f")


def _error(check: Check) -> str:
    if check.error is None:
        return "n/a"
    if check.relative:
        return f"{100 * check.error:.2f} %"
    return _quantity(check.error, check.unit)


def _limit(check: Check) -> str:
    if check.limit is None:
        return ""
    return f"{100 * check.limit:g} %" if check.relative else _quantity(check.limit, check.unit)


def _result(check: Check) -> str:
    return {True: "pass", False: "FAIL", None: ""}[check.passed]


def _quantity(value: float, unit: str, digits: str = ".3g") -> str:
    if unit in ("m", "s"):  # shown in mm and ms
        return f"{value * 1e3:{digits}} m{unit}"
    return f"{value:{digits}} {unit}"
