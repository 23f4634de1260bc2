"""``report.md`` and ``report.html`` of a pipeline run: one section per stage that ran.

Each section is built by its stage from the files it wrote (:class:`celltwin.pipeline.frame.
Section`); this module only lays sections out, in Markdown and in a self-contained HTML page
(images referenced relatively, so the run directory can be moved or zipped whole).
"""

from __future__ import annotations

import html
import re
from pathlib import Path
from typing import Sequence

from celltwin.core.atomic import atomic_write_text
from celltwin.pipeline.frame import Context, Section, Stage, Table

_STYLE = """body{font-family:system-ui,sans-serif;max-width:62rem;margin:2rem auto;padding:0 1rem;
color:#222}h1{font-size:1.6rem}h2{font-size:1.25rem;margin-top:2.2rem;border-bottom:1px solid
#ddd}table{border-collapse:collapse;margin:.8rem 0}td,th{border:1px solid #ccc;padding:.25rem
.6rem;text-align:left}th{background:#f3f3f3}figure{margin:1rem 0}img{max-width:100%;
border:1px solid #ddd}figcaption{color:#555;font-size:.9rem}code{background:#f5f5f5;
padding:0 .2rem}.failed{color:#b00}"""


def sections_of(context: Context, entries: list[dict], stages: Sequence[Stage]) -> list[Section]:
    """The overview, then the section of every stage that finished, in order."""
    rows = [[f"{index + 1}", entry["name"], entry["title"], entry["status"],
             f"{entry['seconds']:.1f} s" if "seconds" in entry else "",
             (entry.get("record") or {}).get("summary") or entry.get("error", "")]
            for index, entry in enumerate(entries)]
    overview = Section("Stages", [f"Cell `{context.cell}`, seed {context.seed}, "
                                  f"{context.budget.name} budget ({context.budget.about}). "
                                  "Every stage's record is in `pipeline.json`."],
                       [Table(["", "stage", "what", "status", "time", "result"], rows)])
    sections = [overview]
    for stage, entry in zip(stages, entries):
        if entry["status"] == "done":
            sections.append(stage.section(context.out, entry["record"]))
    return sections


def write_report(context: Context, entries: list[dict], stages: Sequence[Stage], *,
                 title: str) -> list[Path]:
    """Write ``report.md`` and ``report.html`` into the run directory; return their paths."""
    sections = sections_of(context, entries, stages)
    out = context.out
    return [atomic_write_text(out / "report.md", markdown(title, sections), mode=0o644),
            atomic_write_text(out / "report.html", page(title, sections), mode=0o644)]


# ----------------------------------------------------------------------------- Markdown
def _md_cell(text: str) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def markdown(title: str, sections: list[Section]) -> str:
    lines = [f"# {title}", ""]
    for section in sections:
        lines += [f"## {section.title}", ""]
        for paragraph in section.text:
            lines += [paragraph, ""]
        for table in section.tables:
            lines.append("| " + " | ".join(_md_cell(h) for h in table.header) + " |")
            lines.append("|" + " --- |" * len(table.header))
            lines += ["| " + " | ".join(_md_cell(c) for c in row) + " |" for row in table.rows]
            lines.append("")
        for caption, path in section.figures:
            lines += [f"![{caption}]({path})", ""]
    return "\n".join(lines)


# --------------------------------------------------------------------------------- HTML
def _inline(text: str) -> str:
    """Markdown's inline code and bold, as HTML (everything else escaped)."""
    escaped = html.escape(str(text))
    escaped = re.sub(r"`([^`]+)`", r"<code>\1</code>", escaped)
    return re.sub(r"\*\*([^*]+)\*\*", r"<strong>\1</strong>", escaped)


def page(title: str, sections: list[Section]) -> str:
    body = [f"<h1>{html.escape(title)}</h1>"]
    for section in sections:
        body.append(f"<h2>{_inline(section.title)}</h2>")
        body += [f"<p>{_inline(paragraph)}</p>" for paragraph in section.text]
        for table in section.tables:
            head = "".join(f"<th>{_inline(h)}</th>" for h in table.header)
            rows = "".join("<tr>" + "".join(f"<td>{_inline(c)}</td>" for c in row) + "</tr>"
                           for row in table.rows)
            body.append(f"<table><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>")
        for caption, path in section.figures:
            body.append(f'<figure><img src="{html.escape(path)}" alt="{html.escape(caption)}">'
                        f"<figcaption>{html.escape(caption)}</figcaption></figure>")
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<title>{html.escape(title)}</title><style>{_STYLE}</style></head><body>\n"
            + "\n".join(body) + "\n</body></html>\n")
