"""Linear models fitted by scikit-learn, stored as a torch linear layer: ``logreg`` and ``linear-svm``.

A textbook baseline has to be cheap, convex and reproducible, so these two are not trained
by the torch loop: :func:`fit_linear` fits scikit-learn's ``LogisticRegression`` (lbfgs,
multinomial) or ``LinearSVC`` (squared hinge, one-vs-rest) on standardised items and copies
the coefficients into :class:`LinearClassifier`. What is saved is then an ordinary sonotype
model (weights in safetensors, architecture in JSON, no pickle), so predict, serve and ONNX
export work unchanged.

Choices (documented because they change the figures):

- **C by inner group cross-validation.** With ``C: null`` (default) the regularisation is
  chosen from ``Cs`` by stratified group K-fold (``cv_folds``, at most one fold per group)
  over the *training side only*, scored by clip-level balanced accuracy (items of a clip are
  averaged, as at test time); ties go to the smaller C. Items of one clip share its group, so
  they never straddle an inner fold. A training side of a single group (e.g. one TESS
  speaker) is cross-validated by clip instead, and said so in the fit record.
- **Multi-item representations are flattened**: a (T, F) window is one T*F vector, a frame
  is one (F,) item; a clip's prediction is the mean probability over its items, like every
  other model. This keeps the model linear in what it sees and needs no new code at predict
  time; use ``representation.kind: stats`` for the classical clip-statistics baseline.
- **linear-svm probabilities** are calibrated on the *out-of-fold* decision values of the
  inner group CV at the chosen C, so calibration never sees the data each SVM was fitted on
  (the scheme of ``CalibratedClassifierCV(ensemble=False)``): ``softmax(a * d + b)``, one
  slope ``a > 0`` and one bias per class, fitted by multinomial log loss (for two classes
  this is Platt scaling). One-vs-rest Platt sigmoids normalised over classes were tried first
  and were underconfident by 8-9 points of mean confidence against accuracy on held-out data
  with 4 classes; the shared slope keeps the SVM's ranking of classes and is calibrated.
- ``class_weight: balanced`` (default) weights classes by inverse frequency: the headline
  figure is balanced accuracy.
"""

from __future__ import annotations

import math
import time
import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

from sonotype.errors import ParameterError
from sonotype.models import register_model

__all__ = ["DEFAULT_CS", "LinearClassifier", "fit_linear", "is_linear"]

#: The C grid searched by inner cross-validation: 1e-4 .. 10 in half decades (GTZAN's 20
#: training clips chose 1e-3 at the edge of a grid that started there).
DEFAULT_CS = (0.0001, 0.0003, 0.001, 0.003, 0.01, 0.03, 0.1, 0.3, 1.0, 3.0, 10.0)
_ABSENT = -50.0  # logit of a class absent from training: probability ~ e^-50 of the others


class LinearClassifier(nn.Module):
    """``Flatten -> Linear`` (logreg), or ``Flatten -> Linear -> a * d + b`` (linear-svm, calibrated).

    Parameters
    ----------
    input_shape : tuple of int
        One item; flattened.
    n_classes : int
    loss : {"logistic", "hinge"}
        Logistic regression or linear SVM (set by the registry name).
    C : float or None
        Inverse regularisation strength; None chooses it from ``Cs`` by inner group CV.
        After fitting, the saved architecture records the C that was used.
    Cs : sequence of float
        Grid for the inner CV.
    cv_folds : int
        Inner folds (at most the number of groups on the training side).
    class_weight : {"balanced", None}
    cv_scoring : {"balanced_accuracy", "log_loss"}
        What the inner CV maximises: clip-level balanced accuracy, or minus the class-balanced
        log loss of the clip probabilities (logreg only). Log loss is smooth, so it still ranks
        the C values when each inner fold holds one or two clips per class, where balanced
        accuracy ties across most of the grid and the tie rule picks the smallest C.
    max_iter : int
        Solver iterations (lbfgs for logreg, liblinear for the SVM).

    Examples
    --------
    >>> net = LinearClassifier((10,), 3)
    >>> net(torch.zeros(2, 10)).shape  # zero weights until fit_linear
    torch.Size([2, 3])
    """

    input_layout = "vector"
    fitted_by = "sklearn"

    def __init__(
        self,
        input_shape: tuple[int, ...],
        n_classes: int,
        *,
        loss: str = "logistic",
        C: float | None = None,
        Cs: Sequence[float] = DEFAULT_CS,
        cv_folds: int = 5,
        class_weight: str | None = "balanced",
        cv_scoring: str = "balanced_accuracy",
        max_iter: int = 1000,
    ) -> None:
        super().__init__()
        if loss not in ("logistic", "hinge"):
            raise ParameterError(f"loss must be 'logistic' or 'hinge', got {loss!r}")
        if C is not None and not float(C) > 0:
            raise ParameterError(f"C must be > 0 or null (chosen by inner CV), got {C!r}")
        if not Cs or any(not float(c) > 0 for c in Cs):
            raise ParameterError(f"Cs must be a non-empty list of positive numbers, got {Cs!r}")
        if int(cv_folds) < 2:
            raise ParameterError(f"cv_folds must be >= 2, got {cv_folds}")
        if class_weight not in ("balanced", None):
            raise ParameterError(f"class_weight must be 'balanced' or null, got {class_weight!r}")
        if cv_scoring not in ("balanced_accuracy", "log_loss"):
            raise ParameterError(f"cv_scoring must be 'balanced_accuracy' or 'log_loss', got {cv_scoring!r}")
        if cv_scoring == "log_loss" and loss != "logistic":
            raise ParameterError("cv_scoring 'log_loss' needs probabilities: use it with logreg, not linear-svm")
        if int(max_iter) < 1:
            raise ParameterError(f"max_iter must be >= 1, got {max_iter}")
        self.loss = loss
        self.n_classes = int(n_classes)
        # A binary SVM has one decision value; everything else one row per class.
        self.binary_svm = loss == "hinge" and self.n_classes == 2
        rows = 1 if self.binary_svm else self.n_classes
        self.flatten = nn.Flatten()
        self.linear = nn.Linear(math.prod(input_shape), rows)
        nn.init.zeros_(self.linear.weight)
        nn.init.zeros_(self.linear.bias)
        if loss == "hinge":
            self.register_buffer("platt_a", torch.ones(rows))
            self.register_buffer("platt_b", torch.zeros(rows))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        d = self.linear(self.flatten(x))
        if self.loss == "logistic":
            return d
        z = d * self.platt_a + self.platt_b
        if self.binary_svm:  # softmax([0, z]) = sigmoid(z): Platt scaling
            return torch.cat([torch.zeros_like(z), z], dim=1)
        return z


def is_linear(model: Any) -> bool:
    """Whether ``model`` (a module, or a registry name) is fitted by :func:`fit_linear`.

    Parameters
    ----------
    model : torch.nn.Module or str

    Returns
    -------
    bool

    Examples
    --------
    >>> is_linear("logreg"), is_linear("mlp")
    (True, False)
    """
    if isinstance(model, str):
        from sonotype.models import MODELS

        entry = MODELS.get(model)
        return entry is not None and getattr(entry.cls, "fitted_by", None) == "sklearn"
    return getattr(model, "fitted_by", None) == "sklearn"


def _estimator(loss: str, C: float, class_weight: str | None, max_iter: int) -> Any:
    if loss == "logistic":
        from sklearn.linear_model import LogisticRegression

        return LogisticRegression(C=C, class_weight=class_weight, max_iter=max_iter, warm_start=True)
    from sklearn.svm import LinearSVC

    return LinearSVC(C=C, class_weight=class_weight, max_iter=max_iter, dual="auto", random_state=0)


def _scores(est: Any, X: np.ndarray, n_classes: int) -> np.ndarray:
    """(N, n_classes) scores in the model's class order: probabilities (logreg) or decisions (SVM)."""
    classes = est.classes_
    if hasattr(est, "predict_proba"):
        raw = est.predict_proba(X)
        out = np.zeros((X.shape[0], n_classes))
    else:
        raw = est.decision_function(X)
        if raw.ndim == 1:  # two classes present: one decision value for classes_[1]
            raw = np.stack([-raw, raw], axis=1)
        out = np.full((X.shape[0], n_classes), -np.inf)
    out[:, classes] = raw
    return out


def _clip_balanced_accuracy(scores: np.ndarray, y: np.ndarray, item_clip: np.ndarray) -> float:
    """Balanced accuracy of clip predictions (mean score over each clip's items)."""
    uniq, inv = np.unique(item_clip, return_inverse=True)
    finite = np.where(np.isfinite(scores), scores, np.nan)
    sums = np.zeros((uniq.size, scores.shape[1]))
    np.add.at(sums, inv, np.nan_to_num(finite, nan=-1e9))
    pred = sums.argmax(1)
    truth = np.zeros(uniq.size, dtype=np.int64)
    truth[inv] = y
    return float(np.mean([np.mean(pred[truth == c] == c) for c in np.unique(truth)]))


def _clip_log_loss(scores: np.ndarray, y: np.ndarray, item_clip: np.ndarray) -> float:
    """Class-balanced log loss of clip probabilities (mean over each clip's items), clipped at 1e-15."""
    uniq, inv = np.unique(item_clip, return_inverse=True)
    sums = np.zeros((uniq.size, scores.shape[1]))
    np.add.at(sums, inv, np.nan_to_num(scores, nan=0.0))
    probs = sums / np.maximum(sums.sum(1, keepdims=True), 1e-300)
    truth = np.zeros(uniq.size, dtype=np.int64)
    truth[inv] = y
    nll = -np.log(np.clip(probs[np.arange(uniq.size), truth], 1e-15, 1.0))
    return float(np.mean([nll[truth == c].mean() for c in np.unique(truth)]))


def _inner_folds(y: np.ndarray, groups: np.ndarray, item_clip: np.ndarray, k: int) -> tuple[list, str]:
    """Stratified group folds over the groups (or over clips when there is one group)."""
    from sklearn.model_selection import GroupKFold, StratifiedGroupKFold

    unit, what = groups, "group"
    if np.unique(groups).size < 2:
        unit, what = item_clip, "clip (one group on the training side)"
    n_units = int(np.unique(unit).size)
    if n_units < 2:
        return [], "none (a single clip)"
    k = min(int(k), n_units)
    # Stratification needs some class with >= k members (e.g. not 31 GTZAN clips, 2 per genre).
    stratified = np.bincount(y).max() >= k
    splitter = StratifiedGroupKFold(n_splits=k) if stratified else GroupKFold(n_splits=k)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "least populated class has fewer members than n_splits"
        folds = list(splitter.split(np.zeros(len(y)), y, unit))
    folds = [(tr, te) for tr, te in folds if np.unique(y[tr]).size >= 2 and len(te)]
    kind = "stratified " if stratified else ""
    return folds, f"{k}-fold {kind}by {what} over {n_units} {what.split(' ')[0]}s"


def fit_linear(
    model: LinearClassifier,
    X: np.ndarray,
    y: np.ndarray,
    *,
    groups: Sequence[Any] | np.ndarray | None = None,
    item_clip: Sequence[Any] | np.ndarray | None = None,
) -> dict[str, Any]:
    """Fit ``model`` in place with scikit-learn; return what was done (JSON-safe).

    Parameters
    ----------
    model : LinearClassifier
        Built by ``build_model("logreg" | "linear-svm", ...)``; its params hold C, Cs, ...
    X : np.ndarray, shape (N, ...)
        Standardised training items (flattened here).
    y : np.ndarray of int, shape (N,)
    groups : array (N,), optional
        Group (speaker, track) of each item; inner CV folds never split a group. Default:
        every clip (``item_clip``) or item is its own group.
    item_clip : array (N,), optional
        Clip of each item: inner-CV scores vote over a clip's items. Default: items are clips.

    Returns
    -------
    dict
        ``C`` (used), ``chosen_by`` ("inner CV" or "given"), ``inner_cv`` (how), ``cv_scores``
        ({C: clip-level balanced accuracy}), ``seconds``. The model's ``sonotype_spec`` then
        records the C used.

    Examples
    --------
    >>> from sonotype.models import build_model
    >>> rng = np.random.default_rng(0)
    >>> X = np.concatenate([rng.normal(-2, 1, (20, 3)), rng.normal(2, 1, (20, 3))])
    >>> y = np.repeat([0, 1], 20)
    >>> net = build_model("logreg", (3,), 2, C=1.0)
    >>> fit_linear(net, X, y)["chosen_by"], net(torch.tensor(X[[0, -1]], dtype=torch.float32)).argmax(1).tolist()
    ('given', [0, 1])
    """
    t0 = time.perf_counter()
    params = dict(getattr(model, "sonotype_spec", {}).get("params") or {})
    loss = model.loss
    X2, y, present, clip, grp = _fit_inputs(model, X, y, groups, item_clip)
    cw = params.get("class_weight", "balanced")
    max_iter = int(params.get("max_iter", 1000))
    scoring = params.get("cv_scoring", "balanced_accuracy")
    Cs = sorted(float(c) for c in params.get("Cs", DEFAULT_CS))
    given = params.get("C")
    need_cv = given is None or loss == "hinge"  # the SVM's calibration needs out-of-fold decisions
    folds, how = _inner_folds(y, grp, clip, int(params.get("cv_folds", 5))) if need_cv else ([], "none (C given)")
    grid = Cs if given is None else [float(given)]
    cv_scores: dict[float, float] = {}
    oof: dict[float, np.ndarray] = {}
    from sklearn.exceptions import ConvergenceWarning

    from sonotype.utils.threads import one_blas_thread

    # One BLAS thread: these are small problems, and threaded BLAS on a shared 2-core machine
    # made one 720 x 210 fit 60x slower (10.9 s against 0.18 s, measured).
    with warnings.catch_warnings(), one_blas_thread():
        warnings.simplefilter("ignore", ConvergenceWarning)
        if folds:
            ests = [_estimator(loss, grid[0], cw, max_iter) for _ in folds]
            for C in grid:  # ascending C, warm-started per fold (logreg)
                out = np.full((len(y), model.n_classes), np.nan)  # rows of a dropped fold stay NaN
                for est, (tr, te) in zip(ests, folds):
                    est.set_params(C=C)
                    est.fit(X2[tr], y[tr])
                    out[te] = _scores(est, X2[te], model.n_classes)
                covered = np.unique(np.concatenate([te for _, te in folds]))
                if scoring == "log_loss":  # higher is better everywhere below: store minus the loss
                    cv_scores[C] = -_clip_log_loss(out[covered], y[covered], clip[covered])
                else:
                    cv_scores[C] = _clip_balanced_accuracy(out[covered], y[covered], clip[covered])
                oof[C] = out
        if given is not None:
            C_used, chosen_by = float(given), "given"
        elif cv_scores:
            best = max(cv_scores.values())
            C_used, chosen_by = min(c for c, s in cv_scores.items() if s == best), "inner CV"
        else:
            C_used, chosen_by = 1.0, "default (no inner CV possible)"
        final = _estimator(loss, C_used, cw, max_iter).fit(X2, y)
    _copy_coefficients(model, final, present)
    if loss == "hinge":
        _platt(model, oof.get(C_used), y, present)
    spec = getattr(model, "sonotype_spec", None)
    if spec is not None:
        spec["params"]["C"] = C_used
    return {
        "model": "logreg" if loss == "logistic" else "linear-svm",
        "C": C_used,
        "chosen_by": chosen_by,
        "inner_cv": how,
        "cv_scoring": scoring,
        "cv_scores": {f"{c:g}": round(s, 4) for c, s in cv_scores.items()},
        "n_items": int(len(y)),
        "seconds": round(time.perf_counter() - t0, 3),
    }


def _fit_inputs(
    model: LinearClassifier, X: np.ndarray, y: np.ndarray, groups: Any, item_clip: Any
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Checked training inputs: (X as float64 rows, y as int64, classes present, clip per item, group per item)."""
    X2 = np.asarray(X, dtype=np.float64).reshape(len(X), -1)
    y = np.asarray(y).astype(np.int64)
    if X2.shape[0] != y.shape[0] or X2.shape[0] == 0:
        raise ParameterError(f"fit_linear needs matching non-empty X and y, got {X2.shape} and {y.shape}")
    if X2.shape[1] != model.linear.in_features:
        raise ParameterError(f"items have {X2.shape[1]} values, the model was built for {model.linear.in_features}")
    if not np.isfinite(X2).all():
        raise ParameterError("training features contain NaN or infinite values")
    present = np.unique(y)
    if present.size < 2:
        raise ParameterError(f"a linear model needs at least 2 classes in its training data, got {present.tolist()}")
    if y.min() < 0 or y.max() >= model.n_classes:
        raise ParameterError(f"labels must be in [0, {model.n_classes - 1}], got [{y.min()}, {y.max()}]")
    if model.binary_svm and present.size != 2:
        raise ParameterError("a binary linear-svm needs both classes in its training data")
    clip = np.arange(len(y)) if item_clip is None else np.asarray(item_clip)
    grp = clip if groups is None else np.asarray(groups)
    if clip.shape != y.shape or grp.shape != y.shape:
        raise ParameterError(f"groups and item_clip need one entry per item ({len(y)})")
    return X2, y, present, clip, grp


def _copy_coefficients(model: LinearClassifier, est: Any, present: np.ndarray) -> None:
    """scikit-learn coefficients -> the module's (rows, D) weight and (rows,) bias."""
    coef = np.asarray(est.coef_, dtype=np.float64)
    icpt = np.asarray(est.intercept_, dtype=np.float64)
    k, d = model.n_classes, coef.shape[1]
    if model.binary_svm:
        W, b = coef, icpt
    else:
        W, b = np.zeros((k, d)), np.full(k, _ABSENT if model.loss == "logistic" else 0.0)
        if coef.shape[0] == 1:  # two classes present: one row for classes_[1]
            lo, hi = present
            if model.loss == "logistic":  # softmax([0, z]) = sigmoid(z)
                W[hi], b[hi], b[lo] = coef[0], icpt[0], 0.0
            else:  # one-vs-rest decisions of the two classes are d and -d
                W[hi], b[hi], W[lo], b[lo] = coef[0], icpt[0], -coef[0], -icpt[0]
        else:
            W[present], b[present] = coef, icpt
    with torch.no_grad():
        model.linear.weight.copy_(torch.as_tensor(W, dtype=torch.float32))
        model.linear.bias.copy_(torch.as_tensor(b, dtype=torch.float32))


def _platt(model: LinearClassifier, oof: np.ndarray | None, y: np.ndarray, present: np.ndarray) -> None:
    """Fit ``softmax(a * d + b)`` on out-of-fold decision values (Platt scaling for two classes).

    Absent classes get bias -50 (probability ~0); without out-of-fold decisions (no inner CV
    possible) the slope stays 1 and the biases 0.
    """
    from scipy.optimize import minimize

    rows = 1 if model.binary_svm else model.n_classes
    a, b = 1.0, np.zeros(rows)
    ok = np.zeros(len(y), bool) if oof is None else np.isfinite(oof[:, present]).all(axis=1)
    if ok.sum() >= 2 and np.unique(y[ok]).size >= 2:
        D = oof[ok][:, 1:2] if model.binary_svm else oof[ok][:, present]
        onehot = (y[ok, None] == (np.array([0, 1]) if model.binary_svm else present)[None, :]).astype(float)
        if model.binary_svm:
            D, onehot = np.concatenate([np.zeros_like(D), D], 1), onehot

        def loss(theta: np.ndarray) -> tuple[float, np.ndarray]:
            slope, bias = np.exp(theta[0]), theta[1:]
            z = slope * D + (np.concatenate([[0.0], bias]) if model.binary_svm else bias)
            z -= z.max(1, keepdims=True)
            logp = z - np.log(np.exp(z).sum(1, keepdims=True))
            g = (np.exp(logp) - onehot) / len(D)
            grad_b = g.sum(0)[1:] if model.binary_svm else g.sum(0)
            return float(-(onehot * logp).sum() / len(D)), np.concatenate([[slope * (g * D).sum()], grad_b])

        nb = 1 if model.binary_svm else present.size
        res = minimize(loss, np.zeros(1 + nb), jac=True, method="L-BFGS-B")
        a = float(np.exp(res.x[0]))
        if model.binary_svm:
            b[0] = res.x[1]
        else:
            b[present] = res.x[1:]
    if not model.binary_svm:
        b[np.setdiff1d(np.arange(rows), present)] = _ABSENT
    with torch.no_grad():
        model.platt_a.fill_(a)
        model.platt_b.copy_(torch.as_tensor(b, dtype=torch.float32))


register_model(
    "logreg",
    LinearClassifier,
    {"loss": "logistic"},
    "multinomial logistic regression (scikit-learn), C by inner group CV; items flattened",
)
register_model(
    "linear-svm",
    LinearClassifier,
    {"loss": "hinge"},
    "linear SVM (scikit-learn LinearSVC) + out-of-fold Platt probabilities, C by inner group CV",
)
