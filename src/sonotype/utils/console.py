"""The one way sonotype makes a rich console for messages.

On a terminal rich wraps long lines to its width, at word boundaries. Piped into a file or a
CI log (no terminal), rich would still wrap at 80 columns and cut a message such as
``balanced accuracy 0.804`` in two; there every message stays one line (soft wrap), so a log
can be read and searched line by line.
"""

from __future__ import annotations

from rich.console import Console

__all__ = ["make_console"]


def make_console(*, stderr: bool = True, quiet: bool = False) -> Console:
    """A console on stderr (or stdout) that never wraps lines when it is not a terminal.

    Parameters
    ----------
    stderr : bool
        Print to standard error (the default: results go to stdout).
    quiet : bool
        Print nothing.

    Returns
    -------
    rich.console.Console

    Examples
    --------
    >>> make_console(quiet=True).quiet
    True
    """
    console = Console(stderr=stderr, quiet=quiet)
    console.soft_wrap = not console.is_terminal
    return console
