"""Recipes: one YAML run config per experiment, shipped with the package.

``sonotype run NAME`` finds ``NAME.yaml`` here (the repository's ``recipes/`` folder links to
this one); a path to any YAML file works too.
"""

from __future__ import annotations

from pathlib import Path

import yaml

from sonotype.errors import ConfigError

__all__ = ["RECIPES_DIR", "list_recipes", "recipe_path"]

RECIPES_DIR = Path(__file__).resolve().parent


def recipe_path(name_or_path: str | Path) -> Path:
    """The YAML file of a recipe name, or the path itself when it is a file.

    Parameters
    ----------
    name_or_path : str or path-like
        A shipped recipe's name (``demo``, ``ravdess-best``...) or a YAML file.

    Returns
    -------
    pathlib.Path

    Examples
    --------
    >>> recipe_path("demo").name
    'demo.yaml'
    """
    p = Path(name_or_path)
    if p.suffix in (".yaml", ".yml") and p.is_file():
        return p
    candidate = RECIPES_DIR / f"{name_or_path}.yaml"
    if candidate.is_file():
        return candidate
    known = ", ".join(r["name"] for r in list_recipes())
    raise ConfigError(f"unknown recipe {str(name_or_path)!r}: not a YAML file and not one of: {known}")


def list_recipes() -> list[dict[str, str]]:
    """Name, corpus and description of every shipped recipe, sorted by name.

    Returns
    -------
    list of dict
        ``name``, ``corpus``, ``description`` (first line), ``path``.

    Examples
    --------
    >>> demo = next(r for r in list_recipes() if r["name"] == "demo")
    >>> demo["corpus"]
    'demo'
    """
    rows = []
    for f in sorted(RECIPES_DIR.glob("*.yaml")):
        d = yaml.safe_load(f.read_text()) or {}
        rows.append({
            "name": f.stem,
            "corpus": _corpus_name(d.get("corpus")),
            "description": str(d.get("description", "")).strip().splitlines()[0] if d.get("description") else "",
            "path": str(f),
        })
    return rows


def _corpus_name(corpus: object) -> str:
    """``ravdess``; a recipe over several corpora: ``ravdess+tess+...``."""
    if isinstance(corpus, list):
        return "+".join(str((e or {}).get("name", "?")) for e in corpus)
    return str((corpus or {}).get("name", "")) if isinstance(corpus, dict) else ""
