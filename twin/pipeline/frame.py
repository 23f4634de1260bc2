"""The frame of a pipeline: stages in order, one run directory, a record of each stage.

A :class:`Stage` does one piece of the job (``run``: writes its files under its own folder and
returns a JSON record) and says what the report shows of it (``section``: built from the files
it wrote, never from memory, so the report holds the figures of that run). ``run_pipeline``
runs the stages in order with a progress display, keeps ``pipeline.json`` (status, seconds and
record of every stage) up to date after each, and writes ``report.md`` and ``report.html`` at
the end, after a failure too. A later stage (sim-to-sim, a calibration fit) is one more
:class:`Stage` in the list.
"""

from __future__ import annotations

import json
import shutil
import time
import traceback
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable, Sequence

from celltwin.core.atomic import atomic_write_text
from celltwin.core.errors import CelltwinError, Problem

PIPELINE_FILE = "pipeline.json"


@dataclass
class Table:
    """A table of a report section: a header row and rows of text cells."""

    header: list[str]
    rows: list[list[str]]


@dataclass
class Section:
    """What the report shows of one stage.

    Attributes:
        title: the section's heading.
        text: paragraphs (Markdown inline syntax: backticks, ``**bold**``).
        tables: tables, after the text.
        figures: ``(caption, path relative to the run directory)`` of images (PNG, GIF).
    """

    title: str
    text: list[str] = field(default_factory=list)
    tables: list[Table] = field(default_factory=list)
    figures: list[tuple[str, str]] = field(default_factory=list)


@dataclass
class Context:
    """What every stage gets: where to write, the settings, and what earlier stages recorded.

    Attributes:
        out: the run directory.
        cell: the cell (an example name or a file).
        seed: the run's seed.
        budget: the budgets of the stages (:mod:`celltwin.pipeline.budgets`).
        records: the records of the stages run so far, by stage name.
        log: prints one progress line under the running stage.
    """

    out: Path
    cell: str
    seed: int
    budget: object
    records: dict = field(default_factory=dict)
    log: Callable[[str], None] = print

    def folder(self, name: str) -> Path:
        """The folder of stage ``name`` (created)."""
        path = self.out / name
        path.mkdir(parents=True, exist_ok=True)
        return path


@dataclass(frozen=True)
class Stage:
    """One stage of the pipeline.

    Attributes:
        name: its folder under the run directory and its key in ``pipeline.json``.
        title: what it does, for the progress display and the report.
        run: does the work; returns the stage's record (JSON), with a one-line ``summary``.
        section: the report's section, from the run directory and the stage's record.
    """

    name: str
    title: str
    run: Callable[[Context], dict]
    section: Callable[[Path, dict], Section]


def prepare_out(out: Path, stages: Sequence[Stage]) -> None:
    """Make ``out`` ready: new, empty, or a previous run of this pipeline (replaced).

    Raises:
        CelltwinError: ``out`` holds files that are not a previous run's.
    """
    if not out.exists() or not any(out.iterdir()):
        out.mkdir(parents=True, exist_ok=True)
        return
    if not (out / PIPELINE_FILE).is_file():
        raise CelltwinError(Problem(f"'{out}' holds files that no `celltwin demo` wrote",
                                    path="--out", value=str(out),
                                    expected="a new or empty folder, or a previous demo's"))
    ours = {stage.name for stage in stages} | {PIPELINE_FILE, "report.md", "report.html",
                                                "figures"}
    for entry in out.iterdir():   # only what a previous run wrote; anything else stays
        if entry.name in ours and entry.is_dir():
            shutil.rmtree(entry)
        elif entry.name in ours:
            entry.unlink()


def run_pipeline(context: Context, stages: Sequence[Stage], *, description: str,
                 write_report: Callable[[Context, list[dict], Sequence[Stage]], list[Path]],
                 echo: Callable[[str], None] = print) -> dict:
    """Run ``stages`` in order in ``context.out``; return the pipeline's record.

    The progress display: a header line per stage (``[2/6] evaluate: ...``), the stage's own
    lines indented under it, and a closing line with its time and summary.

    Raises:
        CelltwinError: what a stage raised, after ``pipeline.json`` and the report are written
            with the stages that ran.
    """
    out = context.out
    entries = [{"name": stage.name, "title": stage.title, "status": "not run"}
               for stage in stages]
    record = {"description": description, "cell": context.cell, "seed": context.seed,
              "budget": getattr(context.budget, "name", None), "started_at": _now(),
              "stages": entries}
    started = time.perf_counter()
    failure: BaseException | None = None
    width = max(len(stage.name) for stage in stages)
    for index, (stage, entry) in enumerate(zip(stages, entries)):
        label = f"[{index + 1}/{len(stages)}] {stage.name:<{width}}"
        echo(f"{label}  {stage.title}")
        context.log = lambda line, echo=echo: echo(f"{'':{len(label) + 2}}{line}")
        stage_started = time.perf_counter()
        entry["status"] = "running"
        _write_record(out, record)
        try:
            result = stage.run(context)
        except BaseException as error:  # recorded, then raised again below
            entry.update(status="failed", seconds=round(time.perf_counter() - stage_started, 2),
                         error=_describe(error))
            echo(f"{label}  FAILED after {entry['seconds']:.1f} s: {entry['error']}")
            failure = error
            break
        seconds = time.perf_counter() - stage_started
        entry.update(status="done", seconds=round(seconds, 2), record=result)
        context.records[stage.name] = result
        echo(f"{label}  done in {_duration(seconds)}: {result.get('summary', '')}")
        _write_record(out, record)
    record["wall_s"] = round(time.perf_counter() - started, 2)
    record["finished_at"] = _now()
    _write_record(out, record)
    written = write_report(context, entries, stages)
    echo(f"report: {', '.join(str(path) for path in written)} "
         f"({_duration(record['wall_s'])} in all)")
    if failure is not None:
        raise failure
    return record


def read_record(out: Path) -> dict:
    """The ``pipeline.json`` of the run directory ``out``."""
    return json.loads((out / PIPELINE_FILE).read_text())


def _write_record(out: Path, record: dict) -> None:
    atomic_write_text(out / PIPELINE_FILE, json.dumps(record, indent=2), mode=0o644)


def _describe(error: BaseException) -> str:
    if isinstance(error, CelltwinError):
        return "; ".join(str(problem) for problem in error.problems)
    if isinstance(error, KeyboardInterrupt):
        return "interrupted"
    return "".join(traceback.format_exception_only(type(error), error)).strip()


def _duration(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.1f} s"
    whole = round(seconds)
    return f"{whole // 60} min {whole % 60:02d} s"


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")
