"""One emotion vocabulary for every speech-emotion corpus.

Each corpus spells its emotions its own way (RAVDESS ``05``, CREMA-D ``ANG``, EmoDB ``W``
for *Wut*, SAVEE ``a``, TESS ``angry``). Loaders emit the unified name below as a clip's
``label`` and keep the corpus code in ``meta["code"]``, so two corpora can be compared on the
labels they share (:func:`shared_labels`) - the cross-corpus test of seed A (TESS -> SAVEE).

Unified names: the eight RAVDESS emotions (``neutral calm happy sad angry fearful disgust
surprised``) plus labels only some corpora have: ``boredom`` (EmoDB), ``positive`` (Dusha,
a broader class than *happy*; merge it explicitly with ``merge_labels`` if wanted) and
``other`` (Dusha's annotators' "none of these").
"""

from __future__ import annotations

from collections.abc import Iterable

from sonotype.errors import CorpusError

__all__ = ["CODES", "CORPUS_ONLY", "EMOTIONS", "shared_labels", "unify"]

EMOTIONS: tuple[str, ...] = ("neutral", "calm", "happy", "sad", "angry", "fearful", "disgust", "surprised")
CORPUS_ONLY: tuple[str, ...] = ("boredom", "positive", "other")

# corpus -> original code -> unified name
CODES: dict[str, dict[str, str]] = {
    "ravdess": {
        "01": "neutral",
        "02": "calm",
        "03": "happy",
        "04": "sad",
        "05": "angry",
        "06": "fearful",
        "07": "disgust",
        "08": "surprised",
    },
    "cremad": {
        "ANG": "angry",
        "DIS": "disgust",
        "FEA": "fearful",
        "HAP": "happy",
        "NEU": "neutral",
        "SAD": "sad",
    },
    # German initials: Wut, Langeweile, Ekel, Angst, Freude, Trauer, Neutral.
    "emodb": {
        "W": "angry",
        "L": "boredom",
        "E": "disgust",
        "A": "fearful",
        "F": "happy",
        "T": "sad",
        "N": "neutral",
    },
    "savee": {
        "a": "angry",
        "d": "disgust",
        "f": "fearful",
        "h": "happy",
        "n": "neutral",
        "sa": "sad",
        "su": "surprised",
    },
    "tess": {
        "angry": "angry",
        "disgust": "disgust",
        "fear": "fearful",
        "happy": "happy",
        "neutral": "neutral",
        "ps": "surprised",  # "pleasant surprise"
        "sad": "sad",
    },
    "dusha": {"angry": "angry", "sad": "sad", "neutral": "neutral", "positive": "positive", "other": "other"},
}


def unify(corpus: str, code: str) -> str:
    """Return the unified emotion name for ``code`` of ``corpus``.

    Parameters
    ----------
    corpus : str
        ``ravdess``, ``cremad``, ``emodb``, ``savee``, ``tess`` or ``dusha``.
    code : str
        The corpus's own label code.

    Returns
    -------
    str

    Raises
    ------
    CorpusError
        When the corpus or the code is unknown.

    Examples
    --------
    >>> unify("savee", "sa"), unify("savee", "su")
    ('sad', 'surprised')
    """
    try:
        table = CODES[corpus]
    except KeyError:
        raise CorpusError(
            f"no emotion codes known for corpus {corpus!r}; known: {', '.join(sorted(CODES))}"
        ) from None
    try:
        return table[code]
    except KeyError:
        raise CorpusError(f"{corpus}: unknown emotion code {code!r}; known: {', '.join(table)}") from None


def shared_labels(a: Iterable[str] | object, b: Iterable[str] | object) -> list[str]:
    """Labels present on both sides, in the order of :data:`EMOTIONS` then alphabetical.

    ``a`` and ``b`` are label collections, or anything with a ``labels`` attribute (a
    :class:`~sonotype.corpora.Manifest`).

    Parameters
    ----------
    a, b : iterable of str, or Manifest

    Returns
    -------
    list of str

    Examples
    --------
    >>> shared_labels(["angry", "ps", "surprised", "neutral"], ["neutral", "surprised", "calm"])
    ['neutral', 'surprised']
    """
    sa = set(getattr(a, "labels", a))  # type: ignore[arg-type]
    sb = set(getattr(b, "labels", b))  # type: ignore[arg-type]
    order = {name: i for i, name in enumerate(EMOTIONS + CORPUS_ONLY)}
    return sorted(sa & sb, key=lambda x: (order.get(x, len(order)), x))
