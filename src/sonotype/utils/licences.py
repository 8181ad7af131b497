"""Licences a model inherits from its training data and its pretrained encoder, and their combined effect.

Every corpus loader module declares ``LICENSE`` (a :class:`Licence`) and every encoder family
has an entry in :data:`ENCODER_LICENCES`. A model's licence is never more permissive than
any of its inputs: :func:`combine` names the most restrictive input's licence when that one
covers all the others, ``other`` with the list otherwise, and says the effect in one
sentence, e.g. ``non-commercial use only: trained on RAVDESS (CC BY-NC-SA 4.0)``.

This is a summary for users, not legal advice: the card links every licence's text.

Examples
--------
>>> combine([("data", "RAVDESS", CC_BY_NC_SA_4_0), ("encoder", "whisper-base", MIT)]).license
'cc-by-nc-sa-4.0'
>>> combine([("data", "RAVDESS", CC_BY_NC_SA_4_0)]).effect
'non-commercial use only: trained on RAVDESS (CC BY-NC-SA 4.0).'
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from sonotype.errors import ParameterError

__all__ = [
    "CC0_1_0",
    "CC_BY_4_0",
    "CC_BY_NC_3_0",
    "CC_BY_NC_ND_4_0",
    "CC_BY_NC_SA_4_0",
    "CC_BY_SA_4_0",
    "ENCODER_LICENCES",
    "MIT",
    "UNKNOWN",
    "Combined",
    "Licence",
    "combine",
    "encoder_licence",
    "own_terms",
    "parse_licence",
    "register_encoder_licence",
    "research_only",
]

# How restrictive a licence is, for choosing the one a model carries (higher = more restrictive).
PERMISSIVE, ATTRIBUTION, SHARE_ALIKE, NON_COMMERCIAL, NC_SHARE_ALIKE, NO_DERIVATIVES, RESEARCH_ONLY, NOT_KNOWN = range(8)


@dataclass(frozen=True)
class Licence:
    """One licence: an SPDX id where one exists (``spdx=True``), else a short name and the URL of its terms.

    Attributes
    ----------
    id : str
        SPDX identifier (``CC-BY-NC-SA-4.0``) or a short name (``EmoDB terms``).
    title : str
        How people write it (``CC BY-NC-SA 4.0``).
    url : str
        Where the terms are.
    rank : int
        Restrictiveness, ``PERMISSIVE`` .. ``NOT_KNOWN``.
    spdx : bool
        ``id`` is an SPDX identifier.
    commercial : bool or None
        Commercial use allowed; None when not known.
    share_alike : bool
        Derived works must carry the same licence.
    derivatives : bool
        Sharing adapted material is allowed.
    """

    id: str
    title: str
    url: str
    rank: int
    spdx: bool = True
    commercial: bool | None = True
    share_alike: bool = False
    derivatives: bool = True

    @property
    def hub_id(self) -> str:
        """The Hugging Face card ``license`` value: the lower-case SPDX id, or ``other``."""
        return self.id.lower() if self.spdx else "other"

    def to_dict(self) -> dict[str, Any]:
        """JSON for ``model.json`` and ``/v1/model``."""
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Licence:
        """The inverse of :meth:`to_dict`; unknown keys are refused."""
        try:
            return cls(**d)
        except TypeError as exc:
            raise ParameterError(f"not a licence record: {d!r} ({exc})") from None


def _cc(code: str, version: str, rank: int, **kw: Any) -> Licence:
    slug = code.lower().replace("cc-", "")
    return Licence(f"{code}-{version}", f"{code.replace('CC-', 'CC ')} {version}",
                   f"https://creativecommons.org/licenses/{slug}/{version}/", rank, **kw)


CC0_1_0 = Licence("CC0-1.0", "CC0 1.0", "https://creativecommons.org/publicdomain/zero/1.0/", PERMISSIVE)
MIT = Licence("MIT", "MIT", "https://opensource.org/license/mit", PERMISSIVE)
ISC = Licence("ISC", "ISC", "https://opensource.org/license/isc-license-txt", PERMISSIVE)
APACHE_2_0 = Licence("Apache-2.0", "Apache 2.0", "https://www.apache.org/licenses/LICENSE-2.0", PERMISSIVE)
BSD_3_CLAUSE = Licence("BSD-3-Clause", "BSD 3-Clause", "https://opensource.org/license/bsd-3-clause", PERMISSIVE)
CC_BY_4_0 = _cc("CC-BY", "4.0", ATTRIBUTION)
CC_BY_SA_4_0 = _cc("CC-BY-SA", "4.0", SHARE_ALIKE, share_alike=True)
ODBL_1_0 = Licence("ODbL-1.0", "ODbL 1.0", "https://opendatacommons.org/licenses/odbl/1-0/", SHARE_ALIKE,
                   share_alike=True)
CC_BY_NC_3_0 = _cc("CC-BY-NC", "3.0", NON_COMMERCIAL, commercial=False)
CC_BY_NC_4_0 = _cc("CC-BY-NC", "4.0", NON_COMMERCIAL, commercial=False)
CC_BY_NC_SA_4_0 = _cc("CC-BY-NC-SA", "4.0", NC_SHARE_ALIKE, commercial=False, share_alike=True)
CC_BY_NC_ND_4_0 = _cc("CC-BY-NC-ND", "4.0", NO_DERIVATIVES, commercial=False, derivatives=False)
UNKNOWN = Licence("unknown", "unknown licence", "", NOT_KNOWN, spdx=False, commercial=None)

# Known SPDX ids, by lower-case id, for user-declared licences (`--licence`, the folder loader's option).
KNOWN: dict[str, Licence] = {x.id.lower(): x for x in (
    CC0_1_0, MIT, ISC, APACHE_2_0, BSD_3_CLAUSE, CC_BY_4_0, CC_BY_SA_4_0, ODBL_1_0, CC_BY_NC_3_0, CC_BY_NC_4_0,
    CC_BY_NC_SA_4_0, CC_BY_NC_ND_4_0)}


def research_only(name: str, url: str) -> Licence:
    """A corpus's own terms that allow research use only (no SPDX id): a name and the URL of the terms."""
    return Licence(name, name, url, RESEARCH_ONLY, spdx=False, commercial=False, derivatives=True)


def own_terms(name: str, url: str) -> Licence:
    """A corpus's own licence that sonotype does not classify: a name and the URL of its terms (read them)."""
    return Licence(name, name, url, RESEARCH_ONLY, spdx=False, commercial=None)


def parse_licence(text: str | None) -> Licence:
    """A user-declared licence: a known SPDX id (any case), ``unknown``/None, or ``NAME=URL`` for other terms.

    Parameters
    ----------
    text : str or None

    Returns
    -------
    Licence
        Terms given as ``NAME=URL`` count as research-only (the most restrictive known rank),
        since sonotype cannot read them.

    Examples
    --------
    >>> parse_licence("cc-by-4.0").title
    'CC BY 4.0'
    >>> parse_licence("ACME data terms=https://example.org/terms").rank == RESEARCH_ONLY
    True
    """
    if text is None or not str(text).strip() or str(text).strip().lower() == "unknown":
        return UNKNOWN
    t = str(text).strip()
    if t.lower() in KNOWN:
        return KNOWN[t.lower()]
    name, sep, url = t.partition("=")
    if sep and name.strip() and url.strip().startswith(("http://", "https://")):
        return research_only(name.strip(), url.strip())
    raise ParameterError(f"licence {t!r}: give an SPDX id ({', '.join(x.id for x in KNOWN.values())}), "
                         "'unknown', or NAME=URL for other terms")


# Encoder families (pretrained weights) -> the licence of their published weights. Another family adds
# itself with register_encoder_licence("name", licence).
ENCODER_LICENCES: dict[str, Licence] = {
    "whisper": MIT,  # openai/whisper: MIT (code and weights)
    "musicnn": ISC,  # jordipons/musicnn
    "efficientat": MIT,  # fschmid56/EfficientAT
    "wav2vec2": APACHE_2_0,  # facebook/wav2vec2-base model card
    "hubert": APACHE_2_0,  # facebook/hubert-base-ls960 model card
    "ast": BSD_3_CLAUSE,  # MIT/ast-finetuned-audioset-10-10-0.4593 model card
    # wavlm: microsoft/wavlm-base-plus states no licence on its card: UNKNOWN until one is checked
}


def register_encoder_licence(family: str, licence: Licence) -> None:
    """Declare the licence of an encoder family's weights (``musicnn``, ``efficientat``...)."""
    ENCODER_LICENCES[family.lower()] = licence


def encoder_licence(name: str | None) -> Licence:
    """The licence of an encoder by alias, hub id, folder or model type (``whisper-base``, ``openai/whisper-base``).

    The longest registered family name found in ``name`` (lower case) wins; none found: :data:`UNKNOWN`.

    Examples
    --------
    >>> encoder_licence("openai/whisper-base").id
    'MIT'
    >>> encoder_licence("some/encoder").id
    'unknown'
    """
    text = (name or "").lower().replace("_", "").replace("-", "")
    hits = [f for f in ENCODER_LICENCES if f.replace("-", "") in text]
    return ENCODER_LICENCES[max(hits, key=len)] if hits else UNKNOWN


@dataclass(frozen=True)
class Combined:
    """What a model inherits: ``license`` (a card value), ``effect`` (one sentence) and the ``inputs``."""

    license: str
    effect: str
    inputs: tuple[tuple[str, str, Licence], ...]
    license_name: str = ""
    license_link: str = ""

    @property
    def commercial(self) -> bool | None:
        """Whether every input allows commercial use (None: some input's licence is unknown)."""
        flags = [lic.commercial for _, _, lic in self.inputs]
        return None if None in flags else all(flags)

    def to_dict(self) -> dict[str, Any]:
        """``model.json``'s ``licences`` entry."""
        return {
            "license": self.license,
            "license_name": self.license_name,
            "license_link": self.license_link,
            "effect": self.effect,
            "inputs": [{"role": role, "name": name, "licence": lic.to_dict()} for role, name, lic in self.inputs],
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Combined:
        """The inverse of :meth:`to_dict`."""
        try:
            inputs = tuple((str(e["role"]), str(e["name"]), Licence.from_dict(e["licence"])) for e in d["inputs"])
            return cls(str(d["license"]), str(d["effect"]), inputs, str(d.get("license_name", "")),
                       str(d.get("license_link", "")))
        except (KeyError, TypeError) as exc:
            raise ParameterError(f"not a licences record: {exc}") from None


def _names(items: Iterable[tuple[str, str, Licence]]) -> str:
    return ", ".join(f"{name} ({lic.title})" for _, name, lic in items)


def _effect(inputs: Sequence[tuple[str, str, Licence]]) -> str:
    """One sentence: what the inputs' licences mean for the model, the strongest restriction first."""
    parts = []
    unknown = [x for x in inputs if x[2].rank == NOT_KNOWN]
    research = [x for x in inputs if x[2].rank == RESEARCH_ONLY and x[2].commercial is False]
    own = [x for x in inputs if x[2].rank == RESEARCH_ONLY and x[2].commercial is None]
    nc = [x for x in inputs if x[2].commercial is False and x[2].rank < RESEARCH_ONLY]
    nd = [x for x in inputs if not x[2].derivatives]
    sa = [x for x in inputs if x[2].share_alike and x not in nc]  # NC-SA: its title says it
    if unknown:
        parts.append(f"licence unknown for {', '.join(n for _, n, _ in unknown)}: check the terms before any use")
    if own:
        parts.append("own terms: " + ", ".join(f"{n} ({lic.title}, {lic.url})" for _, n, lic in own)
                     + " decide what is allowed")
    if research:
        parts.append(f"research use only: trained on {_names(research)}")
    if nc:
        parts.append(f"non-commercial use only: trained on {_names(nc)}")
    if nd:
        parts.append(f"no derivatives: {_names(nd)} forbids sharing adapted material, so publishing this model "
                     "may not be allowed")
    if sa:
        parts.append(f"share-alike: what is made from it must carry the licence of {_names(sa)}")
    if not parts:
        attribution = [x for x in inputs if x[2].rank == ATTRIBUTION]
        parts.append("commercial use allowed" + (f" with attribution to {_names(attribution)}" if attribution else "")
                     + f" (inputs: {_names(inputs)})")
    return "; ".join(parts) + "."


def combine(inputs: Iterable[tuple[str, str, Licence]]) -> Combined:
    """The licence a model carries, from ``(role, name, licence)`` of its data and encoder(s).

    The most restrictive input's licence when it covers every other input (each other input is
    the same licence, or less restrictive and not share-alike); otherwise ``other`` with the
    list as ``license_name``. No input at all: ``other``, licence unknown.

    Parameters
    ----------
    inputs : iterable of (str, str, Licence)
        ``("data", "RAVDESS", CC_BY_NC_SA_4_0)``, ``("encoder", "whisper-base", MIT)``.

    Returns
    -------
    Combined
    """
    items = tuple(dict.fromkeys(inputs))  # one entry per (role, name, licence), in order
    if not items:
        items = (("data", "unknown data", UNKNOWN),)
    top = max(items, key=lambda x: x[2].rank)[2]
    covers = all(lic == top or (lic.rank < top.rank and not lic.share_alike) for _, _, lic in items)
    if covers and top.spdx:
        return Combined(top.hub_id, _effect(items), items)
    listing = "; ".join(f"{name}: {lic.title}" for _, name, lic in items)
    link = top.url if covers else ""
    return Combined("other", _effect(items), items, license_name=listing, license_link=link)
