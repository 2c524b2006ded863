"""An error nobody expected: one sentence for the user, the traceback in a file it names.

A traceback printed to the terminal quotes node data raw (an exception's message may
hold a pod name with ESC in it) and, in Rich's form, every frame's locals (the whole
snapshot). The CLI and the TUI both write the traceback, without locals, to a new
private file (safe_files) and say only which error happened and where the details are.
"""

from __future__ import annotations

import os
import platform
import sys
import time
import traceback

from podpath import __version__
from podpath.safe_files import UnsafePath, create_new, state_dir
from podpath.safe_text import visible


def write_report(error: BaseException, context: str) -> str | None:
    """Write the error's traceback (no locals) to a new private file; its path, or None."""
    stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime())
    lines = [
        f"podpath {__version__}, Python {platform.python_version()}, {platform.platform()}",
        f"argv: {sys.argv!r}",
        f"while {context}:",
        "",
        *traceback.format_exception(error),
    ]
    try:
        out = create_new(f"crash-{stamp}-{os.getpid()}-{id(error):x}.txt", state_dir("crashes"))
    except (OSError, UnsafePath):
        return None
    try:
        with os.fdopen(
            out.fd, "w", encoding="utf-8", errors="backslashreplace", closefd=False
        ) as fp:
            fp.write("\n".join(line.rstrip("\n") for line in lines) + "\n")
    except OSError:
        return None
    finally:
        out.close()
    return out.path


def sentence(error: BaseException, context: str, report: str | None) -> str:
    """One line for the user: what failed, with which error, and where the details are."""
    what = f"{type(error).__name__}: {error}" if str(error) else type(error).__name__
    where = f"details in {report}" if report else "the details could not be written"
    return visible(f"{context} failed unexpectedly ({what[:300]}); {where}")
