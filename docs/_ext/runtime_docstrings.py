"""A griffe extension for the API pages (mkdocstrings): two fixes to docstrings as griffe reads them.

1. A few sonotype functions share one parameter text: their source docstring holds a line
   ``{stft}`` or ``{mfcc}`` that a decorator fills in when the module is imported
   (``sonotype.features.functional``). Griffe reads the source, so for those docstrings (and only
   those) the imported object's docstring is used instead.
2. The docstrings are numpydoc with Sphinx roles (``:class:`~sonotype.corpora.base.Manifest```),
   which Markdown would show literally. Each role becomes an optional cross-reference: a link
   where the target has an API page, inline code otherwise (``optional`` keeps the strict build
   quiet about targets without a page).

Loaded by ``mkdocs.yml`` (``extensions:`` of the python handler); not part of the site.
"""

from __future__ import annotations

import importlib
import inspect
import re
from typing import Any

import griffe

_PLACEHOLDER = re.compile(r"^\s*\{\w+\}\s*$", re.M)
_ROLE = re.compile(r":(?:py:)?(?:func|class|meth|mod|data|attr|exc|obj|const):`(~?)([\w.]+)(?:\(\))?`")


def _runtime_doc(obj: griffe.Object) -> str | None:
    target: Any = importlib.import_module(obj.module.path)
    for part in obj.path[len(obj.module.path) + 1:].split("."):
        target = getattr(target, part)
    doc = inspect.getdoc(target)
    return doc if doc and not _PLACEHOLDER.search(doc) else None


def _identifier(name: str, obj: griffe.Object) -> str:
    if name.startswith("sonotype"):
        return name
    return f"{obj.module.path}.{name}"  # a name of the same module (best effort; optional anyway)


def _roles(text: str, obj: griffe.Object) -> str:
    def link(m: re.Match[str]) -> str:
        short, name = m.group(1), m.group(2)
        title = name.rsplit(".", 1)[-1] if short else name
        return f'<autoref identifier="{_identifier(name, obj)}" optional><code>{title}</code></autoref>'

    return _ROLE.sub(link, text)


class RuntimeDocstrings(griffe.Extension):
    """Fill ``{placeholder}`` docstrings from the imported object; turn Sphinx roles into cross-references."""

    def on_instance(self, *, node: Any, obj: griffe.Object, agent: Any, **kwargs: Any) -> None:
        if obj.docstring is None:
            return
        if _PLACEHOLDER.search(obj.docstring.value) and (doc := _runtime_doc(obj)):
            obj.docstring.value = doc
        obj.docstring.value = _roles(obj.docstring.value, obj)
