"""Where log records go when celltwin runs as a command.

celltwin's own warnings (a refused OPC UA client, a refused set-point) are one line each on
stderr, ``warning: ...``, never a traceback. The libraries' chatter stays off the terminal:
asyncua logs every refused or dropped client, with tracebacks, and Ray every worker it starts.
``CELLTWIN_VERBOSE=1`` (or ``celltwin serve --verbose``) brings all of it back, tracebacks
included, each line prefixed with its logger's name.
"""

from __future__ import annotations

import logging
import os
import sys

VERBOSE_ENV = "CELLTWIN_VERBOSE"
# Libraries whose logs a user does not see unless asking for them.
QUIET_LIBRARIES = ("asyncua", "ray")


def configure_logging(verbose: bool | None = None) -> None:
    """Set up logging for a command; safe to call again (e.g. once per command in a test).

    Args:
        verbose: show libraries' logs and celltwin's INFO lines and tracebacks; ``None`` reads
            ``$CELLTWIN_VERBOSE`` (anything but empty or ``0`` is on).
    """
    if verbose is None:
        verbose = os.environ.get(VERBOSE_ENV, "").strip() not in ("", "0")
    own = logging.getLogger("celltwin")
    _replace_handler(own, _OneLine(verbose))
    own.setLevel(logging.INFO if verbose else logging.WARNING)
    for name in QUIET_LIBRARIES:
        library = logging.getLogger(name)
        if verbose:
            _replace_handler(library, _OneLine(verbose=True, prefix=True))
            library.setLevel(logging.INFO)
        else:
            _replace_handler(library, None)
            library.setLevel(logging.CRITICAL + 1)  # nothing a library logs gets through


class _Stderr(logging.StreamHandler):
    """Writes to whatever ``sys.stderr`` is when a record arrives (tests capture it)."""

    def __init__(self):
        super().__init__()
        self.celltwin_cli = True  # marks the handler this module installed

    @property
    def stream(self):
        return sys.stderr

    @stream.setter
    def stream(self, _value) -> None:
        pass


class _OneLine(logging.Formatter):
    """``warning: message``; a traceback only when verbose, else the error's last line."""

    def __init__(self, verbose: bool, prefix: bool = False):
        super().__init__()
        self.verbose = verbose
        self.prefix = prefix

    def format(self, record: logging.LogRecord) -> str:
        head = f"{record.name}: " if self.prefix else ""
        text = f"{head}{record.levelname.lower()}: {record.getMessage()}"
        if record.exc_info and record.exc_info[1] is not None:
            if self.verbose:
                return text + "\n" + self.formatException(record.exc_info)
            error = record.exc_info[1]
            text += f": {type(error).__name__}: {' '.join(str(error).split())}"
        return " ".join(text.split("\n")) if not self.verbose else text


def _replace_handler(logger: logging.Logger, formatter: logging.Formatter | None) -> None:
    for handler in [h for h in logger.handlers if getattr(h, "celltwin_cli", False)]:
        logger.removeHandler(handler)
    if formatter is not None:
        handler = _Stderr()
        handler.setFormatter(formatter)
        logger.addHandler(handler)
