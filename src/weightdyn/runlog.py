"""Logging for the workflow's rule scripts: everything a job reports goes to its log file.

Usage in a Snakemake script::

    with script_logging(snakemake.log[0], snakemake.rule) as log:
        log.info("...")

Log records of every module (``logging``) and Python warnings (numba's included) go to the log
file. An exception is written to the log with its traceback and then re-raised, so Snakemake
also reports it on the terminal.
"""

from __future__ import annotations

import contextlib
import logging
import os
import platform
import time
from pathlib import Path

from . import __version__

FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


@contextlib.contextmanager
def script_logging(log_path, rule: str, level: int = logging.INFO):
    """Send logging and warnings to ``log_path`` (overwritten) for the duration of a job."""
    log_path = Path(log_path)
    log_path.parent.mkdir(parents=True, exist_ok=True)
    handler = logging.FileHandler(log_path, mode="w", encoding="utf-8")
    handler.setFormatter(logging.Formatter(FORMAT))
    root = logging.getLogger()
    old_level = root.level
    root.addHandler(handler)
    root.setLevel(level)
    logging.captureWarnings(True)
    log = logging.getLogger(f"weightdyn.rule.{rule}")
    start = time.perf_counter()
    log.info("rule %s: weightdyn %s, Python %s on %s, pid %d, NUMBA_NUM_THREADS=%s", rule,
             __version__, platform.python_version(), platform.node(), os.getpid(),
             os.environ.get("NUMBA_NUM_THREADS", "(unset)"))
    try:
        yield log
    except BaseException:
        log.exception("rule %s failed after %.1f s", rule, time.perf_counter() - start)
        raise
    else:
        log.info("rule %s done in %.1f s", rule, time.perf_counter() - start)
    finally:
        logging.captureWarnings(False)
        root.removeHandler(handler)
        root.setLevel(old_level)
        handler.close()
