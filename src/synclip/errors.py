"""The command line's error boundary: which failures are expected, and how each becomes one line.

An *expected* failure is a mistake the user can fix: a synclip exception (ConfigError, CheckpointError,
TooManyBadSamples, ...), a ValueError, RuntimeError or KeyError raised by synclip's own code (whose
messages name the key, file or sample), an OSError (a missing file, no permission, a full disk: the
message names the path) or a missing optional module. It is printed as one line that says what to
do, and the command exits with status 2. Anything else is a bug and keeps its traceback, and so does
every failure when the command runs with ``--debug`` or with ``SYNCLIP_DEBUG=1`` in the environment.
"""

from __future__ import annotations

import os
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent
DEBUG_ENV = "SYNCLIP_DEBUG"
EXIT_EXPECTED = 2


def debug_requested(flag: bool = False) -> bool:
    """``--debug`` was given or ``SYNCLIP_DEBUG`` is set to anything but empty or 0."""
    return flag or os.environ.get(DEBUG_ENV, "") not in ("", "0")


def _raised_by_synclip(err: BaseException) -> bool:
    """Whether the innermost frame of ``err``'s traceback is in synclip's own source."""
    tb = err.__traceback__
    if tb is None:
        return False
    while tb.tb_next is not None:
        tb = tb.tb_next
    return Path(tb.tb_frame.f_code.co_filename).resolve().is_relative_to(PACKAGE_DIR)


def is_expected(err: BaseException) -> bool:
    """Whether ``err`` is a failure to report in one line rather than a bug to show in full."""
    if type(err).__module__.startswith("synclip."):
        return True
    if isinstance(err, OSError | ModuleNotFoundError):
        return True
    return isinstance(err, ValueError | RuntimeError | KeyError) and _raised_by_synclip(err)


def one_line(err: BaseException) -> str:
    """The message of ``err`` on one line (a KeyError's quotes dropped), with a hint for missing modules."""
    text = str(err.args[0]) if isinstance(err, KeyError) and err.args else str(err)
    if isinstance(err, ModuleNotFoundError) and err.name:
        text = f"{text}; install it (pip install 'synclip[eval]' brings the optional ones)"
    text = " ".join(text.split())
    return text or type(err).__name__
