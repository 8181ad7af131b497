"""Where sonotype keeps what it computes: the cache folder shared by features, embeddings and encoders."""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["default_cache_dir"]


def default_cache_dir() -> Path:
    """``$SONOTYPE_CACHE`` or ``~/.cache/sonotype``.

    Returns
    -------
    pathlib.Path
        Not created here.

    Examples
    --------
    >>> import os
    >>> os.environ["SONOTYPE_CACHE"] = "/tmp/sonotype-cache"
    >>> str(default_cache_dir())
    '/tmp/sonotype-cache'
    >>> del os.environ["SONOTYPE_CACHE"]
    """
    env = os.environ.get("SONOTYPE_CACHE")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "sonotype"
