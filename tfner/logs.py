"""Logging set-up shared by the command line and the experiment scripts (no TensorFlow import)."""

import logging
import sys


def setup_logging(log_file=None, level=logging.INFO):
    """Sends the ``tfner`` loggers to stderr (and ``log_file``) as ``HH:MM:SS name LEVEL message``.

    Example:
    >>> setup_logging(level=logging.WARNING)
    >>> logging.getLogger("tfner").level == logging.WARNING
    True
    """
    handlers = [logging.StreamHandler(sys.stderr)]
    if log_file:
        handlers.append(logging.FileHandler(log_file, encoding="utf-8"))
    root = logging.getLogger("tfner")
    root.setLevel(level)
    for h in list(root.handlers):
        root.removeHandler(h)
    fmt = logging.Formatter("%(asctime)s %(name)s %(levelname)s %(message)s", "%H:%M:%S")
    for h in handlers:
        h.setFormatter(fmt)
        root.addHandler(h)
    root.propagate = False
