"""Standardisation fitted on training items only, saved as plain numbers (JSON or safetensors)."""

from __future__ import annotations

from typing import Any

import numpy as np

from sonotype.errors import ModelError, ParameterError

__all__ = ["Standardizer"]


class Standardizer:
    """Zero mean, unit variance per feature, like ``sklearn.preprocessing.StandardScaler``.

    Statistics are taken per feature (along ``feature_axis``) over every other axis, so
    (N, F) stats vectors, (N, T, F) windows and (N, F, T) log-mel patches (``feature_axis=-2``)
    all work. Zero-variance features get scale 1. Never pickled: :meth:`to_dict` gives JSON-safe
    lists, :meth:`state_tensors` arrays for safetensors.

    Parameters
    ----------
    feature_axis : int
        The axis that holds the features (-1 for (N, F) and (N, T, F); -2 for (N, F, T)).

    Attributes
    ----------
    mean_, scale_ : np.ndarray [shape=(n_features,)], float64
        Learned by :meth:`fit`.
    n_features_in_ : int

    Examples
    --------
    >>> import numpy as np
    >>> s = Standardizer().fit(np.array([[0.0, 1.0], [2.0, 1.0]]))
    >>> s.mean_.tolist(), s.scale_.tolist()
    ([1.0, 1.0], [1.0, 1.0])
    """

    def __init__(self, feature_axis: int = -1) -> None:
        self.feature_axis = feature_axis

    def _axes(self, x: np.ndarray) -> tuple[int, tuple[int, ...]]:
        if x.ndim < 2:
            raise ParameterError(f"Standardizer needs items with a feature axis (ndim >= 2), got shape {x.shape}")
        ax = self.feature_axis % x.ndim
        return ax, tuple(i for i in range(x.ndim) if i != ax)

    def fit(self, X: np.ndarray) -> Standardizer:
        """Learn ``mean_`` and ``scale_`` (float64) from ``X``; returns ``self``.

        Disk-backed arrays (:mod:`sonotype.utils.shards`) are read in chunks, never whole.

        Parameters
        ----------
        X : np.ndarray [shape=(n_items, ...)]
            Items with the feature axis at ``feature_axis`` (or a disk-backed array).

        Returns
        -------
        Standardizer
        """
        from sonotype.utils.shards import is_lazy, streaming_moments

        x = X if is_lazy(X) else np.asarray(X)
        ax, others = self._axes(x)
        if x.shape[0] == 0:
            raise ParameterError("Standardizer.fit got no items")
        if is_lazy(x):
            self.mean_, var, _ = streaming_moments(x, ax)
        else:
            self.mean_ = x.mean(axis=others, dtype=np.float64)
            var = x.var(axis=others, dtype=np.float64)
        scale = np.sqrt(var)
        scale[~(scale > np.finfo(np.float64).eps * np.maximum(1.0, np.abs(self.mean_)))] = 1.0
        self.scale_ = scale
        self.n_features_in_ = int(x.shape[ax])
        return self

    def _check(self, x: np.ndarray) -> int:
        if not hasattr(self, "mean_"):
            raise ModelError("Standardizer is not fitted; call fit() on training data first")
        ax, _ = self._axes(x)
        if x.shape[ax] != self.n_features_in_:
            raise ParameterError(f"Standardizer was fitted on {self.n_features_in_} features, got {x.shape[ax]} (shape {x.shape})")
        return ax

    def _bcast(self, v: np.ndarray, x: np.ndarray, ax: int) -> np.ndarray:
        shape = [1] * x.ndim
        shape[ax] = -1
        return v.reshape(shape)

    def transform(self, X: np.ndarray) -> np.ndarray:
        """``(X - mean_) / scale_`` as float32 (a lazy view, computed per batch, for disk-backed arrays).

        Parameters
        ----------
        X : np.ndarray [shape=(n_items, ...)]
            Items with the feature axis at ``feature_axis``.

        Returns
        -------
        np.ndarray, float32
            The shape of ``X``.
        """
        from sonotype.utils.shards import Scaled, is_lazy

        if is_lazy(X):
            return Scaled(X, self.mean_, self.scale_, self._check(X))
        x = np.asarray(X)
        ax = self._check(x)
        out = (x - self._bcast(self.mean_, x, ax)) / self._bcast(self.scale_, x, ax)
        return out.astype(np.float32)

    def inverse_transform(self, X: np.ndarray) -> np.ndarray:
        """``X * scale_ + mean_`` as float32: undoes :meth:`transform`.

        Parameters
        ----------
        X : np.ndarray [shape=(n_items, ...)]
            Items with the feature axis at ``feature_axis``.

        Returns
        -------
        np.ndarray, float32
        """
        x = np.asarray(X)
        ax = self._check(x)
        return (x * self._bcast(self.scale_, x, ax) + self._bcast(self.mean_, x, ax)).astype(np.float32)

    def fit_transform(self, X: np.ndarray) -> np.ndarray:
        """:meth:`fit` on ``X``, then :meth:`transform` it.

        Parameters
        ----------
        X : np.ndarray [shape=(n_items, ...)]
            Items with the feature axis at ``feature_axis``.

        Returns
        -------
        np.ndarray, float32
        """
        return self.fit(X).transform(X)

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe state: ``{"feature_axis", "mean", "scale"}`` as plain lists.

        Returns
        -------
        dict
        """
        self._check_fitted()
        return {"feature_axis": self.feature_axis, "mean": self.mean_.tolist(), "scale": self.scale_.tolist()}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Standardizer:
        """Rebuild from :meth:`to_dict`; a malformed state is a :class:`ModelError`.

        Parameters
        ----------
        d : dict

        Returns
        -------
        Standardizer
        """
        try:
            s = cls(feature_axis=int(d.get("feature_axis", -1)))
            return s._set(np.asarray(d["mean"], dtype=np.float64), np.asarray(d["scale"], dtype=np.float64))
        except (KeyError, TypeError, ValueError) as exc:
            raise ModelError(f"not a Standardizer state ({exc})") from None

    def state_tensors(self) -> dict[str, np.ndarray]:
        """Arrays for ``safetensors.numpy.save``: ``mean``, ``scale`` (float64) and ``feature_axis``.

        Returns
        -------
        dict of np.ndarray
        """
        self._check_fitted()
        return {"mean": self.mean_.copy(), "scale": self.scale_.copy(), "feature_axis": np.array([self.feature_axis], np.int64)}

    @classmethod
    def from_tensors(cls, tensors: dict[str, np.ndarray], *, feature_axis: int | None = None) -> Standardizer:
        """Rebuild from :meth:`state_tensors` (as read back from safetensors).

        Parameters
        ----------
        tensors : dict of np.ndarray
        feature_axis : int, optional
            Overrides the stored axis.

        Returns
        -------
        Standardizer
        """
        try:
            ax = feature_axis if feature_axis is not None else int(np.asarray(tensors.get("feature_axis", [-1]))[0])
            return cls(feature_axis=ax)._set(np.asarray(tensors["mean"], np.float64), np.asarray(tensors["scale"], np.float64))
        except (KeyError, TypeError, ValueError) as exc:
            raise ModelError(f"not a Standardizer state ({exc})") from None

    def _set(self, mean: np.ndarray, scale: np.ndarray) -> Standardizer:
        if mean.ndim != 1 or mean.shape != scale.shape:
            raise ModelError(f"Standardizer mean/scale must be 1-D of equal length, got {mean.shape} and {scale.shape}")
        if not np.all(np.isfinite(mean)) or not np.all(scale > 0):
            raise ModelError("Standardizer state holds non-finite means or non-positive scales")
        self.mean_, self.scale_, self.n_features_in_ = mean, scale, int(mean.shape[0])
        return self

    def _check_fitted(self) -> None:
        if not hasattr(self, "mean_"):
            raise ModelError("Standardizer is not fitted; call fit() on training data first")

    def __repr__(self) -> str:
        return f"Standardizer(feature_axis={self.feature_axis})"
