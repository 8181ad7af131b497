"""One exception root for the whole toolkit, with a few specific children.

Every message names the file or parameter at fault and the value received, so a user
can act on it without a traceback.
"""

from __future__ import annotations


class SonotypeError(Exception):
    """Root of every error sonotype raises on purpose."""


class ParameterError(SonotypeError, ValueError):
    """A function received an argument it cannot work with."""


class AudioError(SonotypeError):
    """An audio file cannot be used: missing, empty, corrupt, unsupported or too short.

    Attributes
    ----------
    path : str or None
        The offending file, when there is one.
    reason : str
        What is wrong, in words.
    """

    def __init__(self, path: object, reason: str) -> None:
        self.path = None if path is None else str(path)
        self.reason = reason
        super().__init__(f"{self.path}: {reason}" if self.path else reason)


class CorpusError(SonotypeError):
    """A corpus root or manifest cannot be read (missing folder, unknown corpus, bad manifest)."""


class ConfigError(SonotypeError):
    """A run configuration or recipe is invalid."""


class ModelError(SonotypeError):
    """A saved model cannot be loaded or used (unknown format version, missing file, mismatch)."""


class DownloadError(SonotypeError):
    """A corpus download failed (network, truncated transfer, checksum mismatch)."""


class OutputError(SonotypeError):
    """An output cannot be written where it was asked for: a folder given as a file (or a file
    as a folder), a read-only folder, a full disk. Raised before the work when it can be seen
    then; nothing partial is left behind."""
