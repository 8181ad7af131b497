"""The licences a run inherits: each corpus module's ``LICENSE`` and the encoder's, combined.

``corpus_licence("ravdess")`` reads the loader module's ``LICENSE``; the folder loader's
``licence`` option (``corpus.options.licence``) is the user's declaration for their own data.
:func:`run_licences` gives what ``model.json`` and the model card carry for a run.
"""

from __future__ import annotations

import sys
from typing import Any

from sonotype.corpora.registry import get_loader
from sonotype.utils.licences import UNKNOWN, Combined, Licence, combine, encoder_licence, parse_licence

__all__ = ["corpus_licence", "corpus_title", "run_licences"]


def corpus_licence(name: str, options: dict[str, Any] | None = None) -> Licence:
    """The licence of corpus ``name``; a ``licence`` loader option (user data) takes precedence.

    Examples
    --------
    >>> corpus_licence("ravdess").id
    'CC-BY-NC-SA-4.0'
    >>> corpus_licence("folder", {"licence": "CC-BY-4.0"}).title
    'CC BY 4.0'
    """
    if options and options.get("licence") is not None:
        return parse_licence(str(options["licence"]))
    return getattr(sys.modules[get_loader(name).__module__], "LICENSE", UNKNOWN)


def corpus_title(name: str) -> str:
    """How a corpus is written in prose: its module docstring's first word when that is its name (``RAVDESS``)."""
    words = (sys.modules[get_loader(name).__module__].__doc__ or "").split()
    head = words[0].rstrip(":") if words else ""
    return head if head.lower().replace("-", "") == name.replace("-", "") else name


def run_licences(cfg: Any) -> Combined:
    """The licences of a run config's corpus (or corpora) and backbone, combined.

    Parameters
    ----------
    cfg : RunConfig
        Read: ``cfg.corpus`` (``name``, ``options``, ``corpora``) and ``cfg.backbone.model``.

    Returns
    -------
    Combined
    """
    entries = list(getattr(cfg.corpus, "corpora", None) or [cfg.corpus])
    inputs = [("data", corpus_title(c.name), corpus_licence(c.name, c.options)) for c in entries]
    backbone = getattr(cfg, "backbone", None)
    if backbone is not None:  # every encoder of a fusion
        for model in backbone.model if isinstance(backbone.model, list) else [backbone.model]:
            inputs.append(("encoder", str(model), encoder_licence(str(model))))
    return combine(inputs)
