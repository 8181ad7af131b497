"""``AudioClassifier``: the whole train-and-predict path as one scikit-learn estimator.

A notebook user gets from labelled audio to a cross-validated, saved classifier without
YAML: ``fit`` takes file paths, a :class:`~sonotype.corpora.Manifest` or ``(array, sr)``
pairs, and runs the same pieces as ``sonotype train`` (feature extraction, scaler, network,
training loop, the saved model folder). It works with ``clone``, ``cross_validate``,
``GroupKFold`` and ``GridSearchCV`` because ``__init__`` only stores its parameters and all
learned state ends in ``_``.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, is_dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
from rich.console import Console
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.metrics import balanced_accuracy_score
from sklearn.utils.validation import check_is_fitted

from sonotype.corpora import Clip, Manifest
from sonotype.errors import AudioError, ParameterError
from sonotype.features import Dataset, compute_frames, represent_names
from sonotype.features.represent import featurize, prepare_signal
from sonotype.pipeline.config import RunConfig, _to_plain
from sonotype.splits.split import ProtocolConfig, carve_validation
from sonotype.utils.checks import mono_signal

__all__ = ["AudioClassifier"]

# The sections of a RunConfig the estimator exposes as parameters (same names, same schema).
_SECTIONS = ("features", "representation", "model", "backbone", "train", "augment")


@dataclass
class _Inputs:
    """What ``fit``/``predict`` were given, normalised: clips, or signals with their rates."""

    clips: list[Clip]
    signals: list[tuple[np.ndarray, int]] | None  # None: read the clips' files


class AudioClassifier(ClassifierMixin, BaseEstimator):
    """Train a sonotype classifier from Python, the scikit-learn way.

    Parameters
    ----------
    features : FeatureConfig or dict, optional
        Frame features (:class:`sonotype.features.FeatureConfig`); default as ``sonotype train``.
    representation : RepresentationConfig or dict, optional
        How frames become model items (default: clip statistics).
    model : ModelConfig, dict or str, optional
        A registry model (a name such as ``"mlp-small"`` is ``{"name": ...}``); default ``resmlp``.
    backbone : BackboneConfig or dict, optional
        A pretrained encoder whose embeddings replace the frame features (file inputs only).
    train : TrainConfig or dict, optional
        Training settings. With ``patience`` set (the default) a validation part is carved
        out by group (``groups``, else each clip is its own group) for early stopping; with
        fewer than three groups there is none and training runs ``max_epochs``.
    augment : AugmentConfig or dict, optional
        Waveform copies and feature-level augmentation, as in a recipe.
    seed : int
        The one seed: network initialisation and batch order (it replaces ``train.seed``),
        augmented copies and the validation carving. The global torch and NumPy random
        states are left as they were.
    jobs : int
        Worker processes for extraction, augmented copies and ensemble members.
    cache_dir : str, optional
        Feature cache folder (None: no cache).
    normalize : str or dict, optional
        ``"speaker"`` or ``"corpus"`` (or ``{"by": ..., "min_clips": ...}``): standardise every
        clip's items with the statistics of its speaker's (``groups``) or corpus's own clips
        before the scaler (:mod:`sonotype.items.normalize`). ``predict_proba(X, groups=...)`` does the
        same with the new clips' groups; without ``groups`` the clips given are taken as one
        speaker. The saved model keeps the rule (JSON).
    verbose : bool
        Print progress (extraction bar, epochs) on the terminal.

    Attributes
    ----------
    classes_ : np.ndarray, shape (n_classes,)
        Sorted labels; ``predict_proba`` columns follow this order.
    input_shape_ : tuple of int
        Shape of one model item (e.g. ``(n_features,)`` for clip statistics).
    feature_names_ : list of str
        Names of the item's feature columns (empty for a backbone).
    network_ : torch.nn.Module
        The trained network (eval mode).
    scaler_ : Standardizer or None
        Fitted on the training items (None for a fine-tuned backbone).
    config_ : RunConfig
        The resolved settings the model was trained with.
    train_results_ : list of TrainResult
        Per network: history, best epoch, seconds.

    Examples
    --------
    Low against high tones, from arrays (paths or a Manifest work the same way):

    >>> import numpy as np
    >>> t = np.arange(8000) / 8000
    >>> X = [(np.sin(2 * np.pi * f * t), 8000) for f in (200, 300, 400, 2000, 2500, 3000)]
    >>> y = ["low"] * 3 + ["high"] * 3
    >>> clf = AudioClassifier(features={"sr": 8000, "n_fft": 512, "hop_length": 256, "features": ["centroid"]},
    ...                       model="mlp-small", train={"max_epochs": 40, "lr": 0.1, "patience": None})
    >>> clf.fit(X, y).predict([(np.sin(2 * np.pi * 2200 * t), 8000), (np.sin(2 * np.pi * 250 * t), 8000)])
    array(['high', 'low'], dtype='<U4')
    >>> clf.classes_.tolist(), clf.predict_proba(X[:1]).shape
    (['high', 'low'], (1, 2))
    """

    def __init__(
        self,
        features: Any = None,
        representation: Any = None,
        model: Any = None,
        backbone: Any = None,
        train: Any = None,
        augment: Any = None,
        seed: int = 0,
        jobs: int = 1,
        cache_dir: str | None = None,
        normalize: Any = None,
        verbose: bool = False,
    ) -> None:
        self.features = features
        self.representation = representation
        self.model = model
        self.backbone = backbone
        self.train = train
        self.augment = augment
        self.seed = seed
        self.jobs = jobs
        self.cache_dir = cache_dir
        self.normalize = normalize
        self.verbose = verbose

    # ------------------------------------------------------------------ settings
    @classmethod
    def from_recipe(cls, recipe: str | os.PathLike, **params: Any) -> AudioClassifier:
        """An estimator with a recipe's settings; ``params`` (any ``__init__`` argument) override them.

        Parameters
        ----------
        recipe : str or path-like
            A shipped recipe's name (``"ravdess-best"``, ``sonotype recipes`` lists them) or a
            YAML file. Its corpus, protocol and evaluation sections do not apply: the estimator
            fits what it is given. A backbone named by alias (``whisper-base``) is looked up
            as ``sonotype train`` does (:func:`sonotype.pipeline.defaults.resolve_backbone`).
        **params
            E.g. ``cache_dir=...``, ``jobs=1``, ``verbose=True``.

        Returns
        -------
        AudioClassifier
        """
        from sonotype.pipeline.config import load_config
        from sonotype.recipes import recipe_path

        d = load_config(recipe_path(str(recipe))).to_dict()
        kw: dict[str, Any] = {name: d[name] for name in _SECTIONS if d.get(name) is not None}
        if "backbone" in kw:
            from sonotype.pipeline.defaults import resolve_backbone

            kw["backbone"] = {**kw["backbone"], "model": resolve_backbone(kw["backbone"]["model"])}
        if d["normalize"]["by"] != "none":
            kw["normalize"] = d["normalize"]
        kw.update(seed=d["seed"], jobs=d["jobs"], cache_dir=d["cache_dir"])
        kw.update(params)
        return cls(**kw)

    @classmethod
    def default(cls, kind: str = "speech", *, scratch: bool = False, **params: Any) -> AudioClassifier:
        """What ``sonotype train --kind KIND`` uses: the measured default for that kind of audio.

        With Whisper-base on this machine (``$SONOTYPE_BACKBONES/whisper-base`` or a fetched
        copy) the frozen-encoder default; otherwise, or with ``scratch=True``, the from-scratch
        one (``default-speech``: functionals + per-speaker standardisation + logistic regression;
        ``default-music``, ``default-sounds``). See :func:`sonotype.pipeline.defaults.default_recipe`.

        Parameters
        ----------
        kind : {"speech", "music", "sounds"}
        scratch : bool
        **params
            Override any ``__init__`` argument.

        Returns
        -------
        AudioClassifier
        """
        from sonotype.pipeline.defaults import default_recipe

        path, _ = default_recipe("folder", kind, scratch=scratch)
        return cls.from_recipe(path, **params)

    def run_config(self) -> RunConfig:
        """The parameters as a validated :class:`~sonotype.pipeline.config.RunConfig` (errors name the key).

        Returns
        -------
        RunConfig
            ``train.seed`` is :attr:`seed`.
        """
        d: dict[str, Any] = {}
        for name in _SECTIONS:
            value = getattr(self, name)
            if value is None:
                continue
            if name == "model" and isinstance(value, str):
                value = {"name": value}
            if not (is_dataclass(value) or isinstance(value, dict)):
                what = "a model name, " if name == "model" else ""
                raise ParameterError(f"{name} must be {what}a config dataclass or a dict, got {type(value).__name__}")
            d[name] = _to_plain(value)
        if isinstance(self.seed, bool) or not isinstance(self.seed, (int, np.integer)):
            raise ParameterError(f"seed must be an integer, got {self.seed!r}")
        if isinstance(self.jobs, bool) or not isinstance(self.jobs, (int, np.integer)) or self.jobs < 1:
            raise ParameterError(f"jobs must be an integer >= 1, got {self.jobs!r}")
        d.update(seed=int(self.seed), jobs=int(self.jobs), cache_dir=None if self.cache_dir is None else str(self.cache_dir))
        if self.normalize is not None:
            from sonotype.items.normalize import NormalizeConfig

            d["normalize"] = _to_plain(NormalizeConfig.parse(self.normalize))
        cfg = RunConfig.from_dict(d)
        return replace(cfg, train=replace(cfg.train, seed=int(self.seed)))

    def _console(self) -> Console:
        return Console(stderr=True, quiet=not self.verbose)

    # ------------------------------------------------------------------ fitting
    def fit(self, X: Any, y: Any = None, groups: Any = None) -> AudioClassifier:
        """Extract features, fit the scaler and train the network.

        Parameters
        ----------
        X : list of path-like, Manifest, or list of (np.ndarray, int)
            Audio files, a corpus manifest (labels and groups from its clips), or signals
            with their sample rates (mono ``(n,)`` or ``(channels, n)``).
        y : array-like, shape (n_clips,)
            Labels; ignored for a Manifest (they must agree with its labels when given).
        groups : array-like, shape (n_clips,), optional
            Speaker, track or session of every clip: the validation part for early stopping
            is carved by whole groups, so no group sits on both sides.

        Returns
        -------
        self
        """
        from sonotype.pipeline.fitting import clip_items, train_split

        cfg = self.run_config()
        inputs = _as_inputs(X, what="fit")
        labels, group_values = _fit_targets(X, inputs, y, groups)
        classes, y_clip = np.unique(np.asarray(labels), return_inverse=True)
        if len(classes) < 2:
            raise ParameterError(f"fit needs at least two classes, got {len(classes)} ({classes.tolist()})")
        clips = [replace(c, label=str(classes[k]), group=str(g))
                 for c, k, g in zip(inputs.clips, y_clip.tolist(), group_values, strict=True)]
        inputs = _Inputs(clips, inputs.signals)
        console = self._console()
        ds = self._dataset(cfg, inputs, where="fit")
        ds, self.normalizer_ = self._fit_normalizer(cfg, ds, speakers_given=groups is not None or isinstance(X, Manifest))
        y_items = y_clip[ds.item_clip].astype(np.int64)  # nothing skipped: ds.clips are the inputs, in order
        aug_cache = self._array_copies(cfg, inputs, ds)
        train_clips, val_clips = self._validation(cfg, ds)
        net, scaler, results = train_split(
            cfg, ds, y_items, len(classes), clip_items(ds, train_clips), clip_items(ds, val_clips),
            aug_cache=aug_cache, progress=bool(self.verbose), console=console,
        )
        self.classes_ = classes
        self.config_ = cfg
        self.network_ = net.eval()
        self.scaler_ = scaler
        self.input_shape_ = tuple(int(s) for s in ds.X.shape[1:])
        self.feature_names_ = list(ds.feature_names)
        self.train_results_ = results
        return self

    def _fit_normalizer(self, cfg: RunConfig, ds: Dataset, *, speakers_given: bool) -> tuple[Dataset, Any]:
        """Per-speaker / per-corpus standardisation of the training items (``normalize``), or nothing."""
        from sonotype.items.normalize import Normalizer, reduce_axes
        from sonotype.pipeline.experiment import _item_kind

        nc = cfg.normalize
        if not nc.enabled:
            return ds, None
        if nc.by == "speaker" and not speakers_given:
            raise ParameterError("normalize='speaker' needs the speaker of every clip: fit(X, y, groups=speakers) "
                                 "or a Manifest")
        keys = self._norm_keys(ds.clips, nc.by)
        norm = Normalizer(nc.by, reduce_axes(_item_kind(cfg), ds.X.ndim), min_clips=nc.min_clips)
        norm.fit(ds.X, ds.item_clip, keys)
        out = replace(ds, X=norm.transform_groups(ds.X, ds.item_clip, keys))
        out.normalizer = norm  # type: ignore[attr-defined]  # augmented copies are normalised as their originals
        return out, norm

    @staticmethod
    def _norm_keys(clips: Sequence[Clip], by: str) -> list[str]:
        return [c.group for c in clips] if by == "speaker" else [c.corpus for c in clips]

    def _validation(self, cfg: RunConfig, ds: Dataset) -> tuple[np.ndarray, np.ndarray]:
        """Training and validation clips: a group holdout when early stopping wants one."""
        every = np.arange(len(ds.clips))
        if cfg.train.patience is None:
            return every, np.empty(0, np.int64)
        return carve_validation(every, [c.label for c in ds.clips], [c.group for c in ds.clips],
                                val_size=ProtocolConfig().val_size, seed=cfg.seed)

    def _dataset(self, cfg: RunConfig, inputs: _Inputs, *, where: str) -> Dataset:
        """Model items of the inputs, by the same extraction as a run (files) or featurize (arrays)."""
        from sonotype.pipeline.fitting import build_run_dataset

        if inputs.signals is None:
            ds = build_run_dataset(cfg, inputs.clips, progress=bool(self.verbose))
            if ds.skipped:
                s = ds.skipped[0]
                more = f" (and {len(ds.skipped) - 1} more)" if len(ds.skipped) > 1 else ""
                raise AudioError(s.path, f"{s.reason}{more}; {where} needs every clip")
            return ds
        if cfg.backbone is not None:
            raise ParameterError("a backbone model reads audio files: give paths or a Manifest, not (array, sr) pairs")
        items = [featurize(sig, sr, cfg.features, cfg.representation, path=c.path)
                 for c, (sig, sr) in zip(inputs.clips, inputs.signals, strict=True)]
        owners = [np.full(len(x), i, np.int64) for i, x in enumerate(items)]
        sig, sr = inputs.signals[0]  # the column names, from one clip's frames
        frames = compute_frames(prepare_signal(mono_signal(sig), sr, cfg.features), cfg.features)
        names = represent_names(frames, cfg.representation)
        return Dataset(X=np.concatenate(items).astype(np.float32), item_clip=np.concatenate(owners),
                       clips=list(inputs.clips), feature_names=names)

    def _array_copies(self, cfg: RunConfig, inputs: _Inputs, ds: Dataset) -> dict[tuple[int, int], list[np.ndarray]]:
        """Augmented copies of in-memory signals, made as a run makes them for files.

        A run's copies are keyed ``(seed, clip)`` and read the clip's file; for arrays there is
        no file, so the copies are made here, by the same rule, before training asks for them.
        """
        if inputs.signals is None or cfg.augment.copies <= 0:
            return {}
        from sonotype.training.augment import augment_waveform

        fc, rc, aug = cfg.features, cfg.representation, cfg.augment
        cache: dict[tuple[int, int], list[np.ndarray]] = {}
        for ci, (sig, sr) in enumerate(inputs.signals):
            y = prepare_signal(mono_signal(sig), int(sr), fc)
            cache[cfg.seed, ci] = [
                featurize(augment_waveform(y, fc.sr, aug, np.random.default_rng([cfg.seed, ci, c])), fc.sr, fc, rc)
                for c in range(aug.copies)
            ]
        return cache

    # ------------------------------------------------------------------ prediction
    def predict_proba(self, X: Any, groups: Any = None) -> np.ndarray:
        """Class probabilities per clip, the mean over its items (windows, frames) as a run votes.

        Parameters
        ----------
        X : list of path-like, Manifest, or list of (np.ndarray, int)
            As in :meth:`fit`.
        groups : sequence, optional
            For a model fitted with ``normalize``: the speaker (or corpus) of every clip, whose
            own clips give its statistics; default a Manifest's groups, else all the clips
            given are one speaker.

        Returns
        -------
        np.ndarray, float32, shape (n_clips, n_classes)
            Columns in :attr:`classes_` order.
        """
        from sonotype.training.train import predict_proba

        check_is_fitted(self, ("classes_", "network_"))
        inputs = _as_inputs(X, what="predict")
        ds = self._dataset(self.config_, inputs, where="predict")
        if getattr(self, "normalizer_", None) is not None:
            keys = self._norm_keys(ds.clips, self.normalizer_.by) if isinstance(X, Manifest) else [""] * len(ds.clips)
            if groups is not None:
                keys = [str(g) for g in np.asarray(groups).tolist()]
                if len(keys) != len(ds.clips):
                    raise ParameterError(f"predict got {len(ds.clips)} inputs but {len(keys)} groups")
            ds = replace(ds, X=self.normalizer_.transform_groups(ds.X, ds.item_clip, keys))
        Xi = ds.X if self.scaler_ is None else np.asarray(self.scaler_.transform(ds.X), dtype=np.float32)
        P = predict_proba(self.network_, Xi)
        out = np.zeros((len(ds.clips), len(self.classes_)), np.float64)
        np.add.at(out, ds.item_clip, P)
        out /= np.bincount(ds.item_clip, minlength=len(ds.clips))[:, None]
        return out.astype(np.float32)

    def predict(self, X: Any, groups: Any = None) -> np.ndarray:
        """The most probable label of every clip, shape (n_clips,), values from :attr:`classes_`.

        Parameters
        ----------
        X : list of path-like, Manifest, or list of (np.ndarray, int)
            As in :meth:`fit`.
        groups : sequence, optional
            As in :meth:`predict_proba`.

        Returns
        -------
        np.ndarray [shape=(n_clips,)]
        """
        P = self.predict_proba(X, groups)  # checks fitted before classes_ is read
        return self.classes_[P.argmax(axis=1)]

    def score(self, X: Any, y: Any, sample_weight: Any = None) -> float:
        """Balanced accuracy (mean per-class recall), the figure every sonotype report leads with.

        Parameters
        ----------
        X : list of path-like, Manifest, or list of (np.ndarray, int)
            As in :meth:`fit`.
        y : array-like [shape=(n_clips,)]
            True labels (None with a Manifest: its labels).
        sample_weight : array-like, optional

        Returns
        -------
        float
        """
        if isinstance(X, Manifest) and y is None:
            y = [c.label for c in X.clips]
        return float(balanced_accuracy_score(np.asarray(y), self.predict(X), sample_weight=sample_weight))

    # ------------------------------------------------------------------ saving
    def save(self, path: str | os.PathLike, *, force: bool = False) -> Path:
        """Write the model folder ``sonotype train`` writes; :func:`sonotype.load_model` reads it back.

        The labels are stored as text (``str`` of each of :attr:`classes_`).

        Parameters
        ----------
        path : path-like
            The model folder to write (atomically).
        force : bool
            Replace an existing folder.

        Returns
        -------
        pathlib.Path
        """
        from sonotype.inference.modelio import save_model
        from sonotype.pipeline.fitting import backbone_record

        check_is_fitted(self, ("classes_", "network_"))
        cfg = self.config_
        return save_model(
            path,
            network=self.network_,
            labels=[str(c) for c in self.classes_],
            feature_config=None if cfg.backbone else cfg.features,
            representation=None if cfg.backbone else cfg.representation,
            scaler=self.scaler_,
            backbone=backbone_record(cfg),
            extra={"trained_by": "sonotype.AudioClassifier", "config": cfg.to_dict(),
                   **({"normalize": self.normalizer_.to_dict()} if getattr(self, "normalizer_", None) else {})},
            force=force,
        )

    def __sklearn_tags__(self) -> Any:
        tags = super().__sklearn_tags__()
        tags.input_tags.two_d_array = False  # inputs are audio (paths, signals), not a feature table
        return tags


def _is_signal(x: Any) -> bool:
    return isinstance(x, tuple) and len(x) == 2 and isinstance(x[0], np.ndarray)


def _as_inputs(X: Any, *, what: str) -> _Inputs:
    """Paths, a Manifest or (array, sr) pairs as clips (and signals); anything else is refused."""
    if isinstance(X, Manifest):
        if not X.clips:
            raise ParameterError(f"{what}: the manifest has no clips")
        return _Inputs(list(X.clips), None)
    if isinstance(X, (str, os.PathLike)) or _is_signal(X):
        raise ParameterError(f"{what} takes a list of inputs; wrap a single one in a list: [{type(X).__name__}]")
    if not isinstance(X, (Sequence, np.ndarray)) or len(X) == 0:
        raise ParameterError(f"{what} needs a non-empty list of paths, a Manifest or (array, sr) pairs, got "
                             f"{type(X).__name__}")
    items = list(X)
    if all(_is_signal(x) for x in items):
        for i, (_, sr) in enumerate(items):
            if isinstance(sr, bool) or not isinstance(sr, (int, np.integer)) or sr <= 0:
                raise ParameterError(f"{what}: input {i} has sample rate {sr!r}; need a positive integer")
        clips = [Clip(path=f"<array {i}>", label="", group=f"<array {i}>") for i in range(len(items))]
        return _Inputs(clips, [(x, int(sr)) for x, sr in items])
    if all(isinstance(x, (str, os.PathLike, np.str_)) for x in items):
        paths = [os.fspath(x) for x in items]
        return _Inputs([Clip(path=p, label="", group=p) for p in paths], None)
    kinds = sorted({type(x).__name__ for x in items})
    raise ParameterError(f"{what}: inputs must be all paths or all (np.ndarray, sr) pairs, got {', '.join(kinds)}")


def _fit_targets(X: Any, inputs: _Inputs, y: Any, groups: Any) -> tuple[list[Any], list[str]]:
    """Labels and groups of every clip, from the manifest or the arguments, checked for length."""
    n = len(inputs.clips)
    if isinstance(X, Manifest):
        labels: list[Any] = [c.label for c in inputs.clips]
        if y is not None and [str(v) for v in np.asarray(y).tolist()] != labels:
            raise ParameterError("fit on a Manifest takes its labels from the clips; y differs from them (pass y=None)")
        default_groups = [c.group for c in inputs.clips]
    else:
        if y is None:
            raise ParameterError("fit needs labels y (one per input)")
        labels = np.asarray(y).tolist()
        default_groups = [c.group for c in inputs.clips]
    if len(labels) != n:
        raise ParameterError(f"fit got {n} inputs but {len(labels)} labels")
    if groups is None:
        return labels, default_groups
    g = [str(v) for v in np.asarray(groups).tolist()]
    if len(g) != n:
        raise ParameterError(f"fit got {n} inputs but {len(g)} groups")
    return labels, g
