"""The docs a user reads are true: every ```bash block of the README and the three guides runs
as written, and the generated references (docs/cli.md, docs/cell-reference.md) are those the
parsers and the schema give today.

How a block runs, line by line, in a workspace folder (a fresh tmp folder, the user's checkout):

- `celltwin ARGS` runs in this process (``celltwin.cli.main.main``, what the console script
  calls) and must exit 0. A command in :data:`LONG` (minutes of training, a hundred episodes,
  the whole demo) is parsed as written (types, choices, files) and its ``--help`` shown
  instead; what it would have written, and a later command reads, the workspace holds
  already (a Reach bundle that reaches, the demo's PickPlace bundle).
- `celltwin ... &` starts the installed console script as a background process; `kill %N`
  stops the Nth with SIGTERM, and so does the end of the block; each must exit 0. Nothing
  waits by sleeping: the docs' own readiness wait (`deploy --wait-s`) is what orders
  serve before deploy. The port 4840 of the docs becomes a free one, so that a server
  already on 4840 cannot make this test fail.
- `bash scripts/setup.sh ...` is checked for syntax (setting up is what CI runs before the
  suite); `pytest` prints its version (the suite is what is running); anything else runs in
  bash.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
DATA = Path(__file__).parent / "data"
CELLTWIN = str(Path(sys.executable).with_name("celltwin"))
PAGES = ("README.md", "docs/guide-researcher.md", "docs/guide-line-planner.md",
         "docs/guide-controls-engineer.md")
# Commands shown with --help: what each would cost run as written (2 cores).
LONG = {
    ("train",): "minutes of training",
    ("evaluate",): "50 episodes on each twin, more on a grid",
    ("export",): "a parity check over 1,000 recorded observations",
    ("demo",): "the whole job, about 5 minutes",
    ("sweep",): "starts Ray and a grid of layout runs",
    ("layout", "compare"): "a layout run per cell",
}


def _load_script(name: str):
    import importlib.util

    spec = importlib.util.spec_from_file_location(name, REPO / "scripts" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("script, page", [("gen_cli_docs", "docs/cli.md"),
                                          ("gen_cell_docs", "docs/cell-reference.md")])
def test_a_generated_reference_is_up_to_date(script, page):
    text = _load_script(script).render()
    assert (REPO / page).read_text() == text, (
        f"{page} is out of date: run python scripts/{script}.py")


def test_the_cli_reference_has_every_option_of_every_command():
    from celltwin.cli.main import build_parser

    reference = (REPO / "docs" / "cli.md").read_text()
    module = _load_script("gen_cli_docs")
    for path, parser, _ in module.commands(build_parser()):
        assert f"## celltwin {' '.join(path)}\n" in reference
        for action in parser._actions:
            for flag in action.option_strings:
                if flag not in ("-h", "--help"):
                    assert f"`{flag}`" in reference, (path, flag)


# ------------------------------------------------------------------------- shell blocks
def _blocks():
    cases = []
    for page in PAGES:
        text = (REPO / page).read_text()
        for index, block in enumerate(re.findall(r"^```bash\n(.*?)^```", text, re.S | re.M)):
            cases.append(pytest.param(page, block, id=f"{page}#{index + 1}"))
    return cases


def _commands(block: str) -> list[tuple[list[str], bool]]:
    """``(tokens, background)`` of each command of a block (``&&`` splits a line)."""
    commands = []
    for line in block.replace("\\\n", " ").splitlines():
        tokens = shlex.split(line, comments=True)
        background = bool(tokens) and tokens[-1] == "&"
        tokens = tokens[:-1] if background else tokens
        while tokens:
            cut = tokens.index("&&") if "&&" in tokens else len(tokens)
            commands.append((tokens[:cut], background and cut == len(tokens)))
            tokens = tokens[cut + 1:]
    return commands


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="module")
def workspace(tmp_path_factory, reacher_bundle) -> Path:
    """A user's folder with what the LONG commands of the docs would have written: a Reach
    bundle that reaches (conftest.py) and the demo's PickPlace bundle (tests/data)."""
    root = tmp_path_factory.mktemp("workspace")
    shutil.copytree(reacher_bundle, root / "runs" / "bundles" / "reach")
    shutil.copytree(DATA / "pickplace_bundle", root / "runs" / "demo" / "bundle")
    return root


def _celltwin(cli, args: list[str]):
    command = tuple(arg for arg in args if not arg.startswith("-"))
    if any(command[:len(key)] == key for key in LONG):
        from celltwin.cli.main import build_parser

        build_parser().parse_args(args)   # as written: exits 2 on a bad option or value
        return cli(*args, "--help")
    return cli(*args)


@pytest.mark.parametrize("page, block", _blocks())
def test_a_shell_block_of_the_docs_runs_as_written(page, block, cli, workspace, monkeypatch):
    monkeypatch.chdir(workspace)
    port = str(_free_port())
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    background: list[subprocess.Popen] = []
    try:
        for tokens, in_background in _commands(block):
            tokens = [token.replace("4840", port) for token in tokens]
            program = Path(tokens[0]).name
            where = f"{page}: {shlex.join(tokens)}"
            if program == "celltwin" and in_background:
                log = open(workspace / f"background-{len(background)}.log", "w")
                background.append(subprocess.Popen(
                    [CELLTWIN, *tokens[1:]], stdout=log, stderr=subprocess.STDOUT,
                    start_new_session=True, env=env))
            elif program == "celltwin":
                result = _celltwin(cli, tokens[1:])
                assert result.returncode == 0, (where, result.stdout[-2000:], result.stderr)
            elif program == "kill" and tokens[-1].startswith("%"):
                _stop(background[int(tokens[-1][1:]) - 1], where)
            elif program == "bash" and tokens[1:2] == ["scripts/setup.sh"]:
                subprocess.run(["bash", "-n", str(REPO / "scripts" / "setup.sh")], check=True)
            elif program == "pytest":
                subprocess.run([sys.executable, "-m", "pytest", "--version"], check=True,
                               capture_output=True)
            else:
                done = subprocess.run(["bash", "-c", shlex.join(tokens)], env=env,
                                      capture_output=True, text=True, timeout=120)
                assert done.returncode == 0, (where, done.stdout, done.stderr)
    finally:
        for process in background:
            _stop(process, f"{page}: background command")


def _stop(process: subprocess.Popen, where: str) -> None:
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
    assert process.wait(timeout=30) == 0, f"{where}: the background command did not stop cleanly"
