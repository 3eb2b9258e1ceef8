"""scikit-learn estimators over any aekit model: a transformer (codes), an anomaly detector, and one for series.

    from aekit.sklearn import AutoencoderDetector, AutoencoderTransformer
    detector = AutoencoderDetector("vae", latent_dim=8, steps=2000, contamination=0.05).fit(X_train)
    labels = detector.predict(X_test)              # +1 inlier, -1 outlier (scikit-learn's convention)
    codes = AutoencoderTransformer("ae", latent_dim=4).fit_transform(X)
    scores = SeriesDetector("vae", window=32, backbone="gru").fit(series[:1000]).anomaly_score(series)  # per row

The training budget ``steps="auto"`` (the default) is 20 epochs of the training rows, at least 100 and at most
1,000 steps (``steps_`` after ``fit``); on eight ADBench sets held out from choosing it, it kept the ROC-AUC of the
former fixed 1,000 steps (it rose) in half the time (``benchmarks/RESULTS.md``, section 13).

Any registered model and its settings are keyword arguments (``latent_dim=8``, ``hidden=(64, 32)``, ``beta=4``);
they are parameters like the estimator's own, so ``clone``, ``Pipeline`` and ``GridSearchCV`` see them: an
estimator built with settings is of a subclass whose ``__init__`` names them (``None``, their default, leaves the
model's own default), and ``set_params`` of another of the model's settings adds it the same way. The
features are standardised inside the estimator (``standardize``) and the model trains in memory: nothing is
written unless ``run_dir`` is given. Fitting is seeded by ``random_state`` and quiet unless ``verbose``.

Scores follow scikit-learn's outlier detectors (``IsolationForest``, ``LocalOutlierFactor``): ``score_samples``
is higher for more normal rows, ``decision_function`` is negative for outliers, ``predict`` gives -1 for them.
``anomaly_score`` is the raw score, higher for more anomalous rows, in nats per row, and ``threshold_`` is the
anomaly score above which a row is an outlier (the ``1 - contamination`` quantile of the training rows).

PyOD's attributes stand beside them, with PyOD's signs: ``decision_scores_`` (the training rows' anomaly scores,
higher = more anomalous), ``labels_`` (1 for the training rows above ``threshold_``, else 0) and
``predict_proba(X, method="linear" | "unify")``. Side by side:

=====================  ==============================  =====================================
what                   scikit-learn (aekit)            PyOD
=====================  ==============================  =====================================
a row's raw score      ``anomaly_score`` (high: odd)   ``decision_function`` (high: odd)
normality score        ``score_samples`` (high: ok)    (none)
signed decision        ``decision_function`` (<0 odd)  (none)
labels of new rows     ``predict``: -1 odd, +1 ok      ``predict``: 1 odd, 0 ok
training rows          (none)                          ``decision_scores_``, ``labels_``
cut-off                ``threshold_`` on anomaly_score ``threshold_`` on decision_scores_
=====================  ==============================  =====================================

aekit keeps scikit-learn's ``decision_function`` and ``predict``, so that a detector works in scikit-learn's
tools; ``decision_scores_``, ``labels_``, ``threshold_`` and ``predict_proba`` are PyOD's in meaning and sign.

Both pass scikit-learn's ``check_estimator``, with or without settings (``tests/test_sklearn.py``), except
``check_methods_subset_invariance``: scores are computed in float32 by batched matmuls, so a row scored in a
batch of another size differs by about 5e-7 of its value, above the check's 1e-7. A row's score does not
otherwise depend on the rows scored with it (its samples come from its own random stream).

Images and other examples with a shape are fitted as arrays ``[N, C, H, W]`` (``backbone="conv"``; for pixels
in [0, 1] usually ``standardize=False, likelihood="bernoulli"``). Why a row scores high:
``AutoencoderDetector.anomaly_map`` (per element: reconstruction error, score gradient, or the ceVAE's
combination) and ``attributions`` (integrated gradients, or each element's share of the reconstruction score),
both from :mod:`aekit.anomaly`.
"""

from __future__ import annotations

import dataclasses
import inspect
from typing import Any

import numpy as np
import torch
from sklearn.base import BaseEstimator, OutlierMixin, TransformerMixin
from sklearn.utils.validation import check_is_fitted, check_random_state, validate_data

from aekit import anomaly
from aekit.errors import ConfigError
from aekit.progress import showing

CRITERIA = ("auto", *anomaly.CRITERIA)
ATTRIBUTIONS = ("integrated-gradients", "recon-error")

# The default training budget (steps="auto"): AUTO_EPOCHS passes over the training rows, at least AUTO_MIN_STEPS and
# at most AUTO_MAX_STEPS steps; chosen on nine ADBench sets among five rules and checked once on eight others
# (benchmarks/RESULTS.md, section 13).
AUTO_EPOCHS, AUTO_MIN_STEPS, AUTO_MAX_STEPS = 20, 100, 1000


def auto_steps(rows: int, batch_size: int) -> int:
    """Training steps of the default budget for ``rows`` training rows (windows, for a series) in batches of
    ``batch_size``: :data:`AUTO_EPOCHS` epochs, within [:data:`AUTO_MIN_STEPS`, :data:`AUTO_MAX_STEPS`]."""
    per_epoch = -(-rows // max(1, min(batch_size, rows)))
    return min(AUTO_MAX_STEPS, max(AUTO_MIN_STEPS, AUTO_EPOCHS * per_epoch))


# training keys the estimator sets itself; every other training key may be given (weight_decay=1e-4, ...)
_OWN_TRAIN_KEYS = {"seed", "progress", "threads", "val_fraction", "test_fraction", "figures"}


def _config_fields(model: Any) -> list[str]:
    """The config keys of model ``model`` and the training keys a user may set; no model keys for a name that is
    not registered (``fit`` says so)."""
    from aekit.registry import model_entry
    from aekit.run_config import TrainConfig

    train = [f.name for f in dataclasses.fields(TrainConfig) if f.name not in _OWN_TRAIN_KEYS]
    try:
        return [f.name for f in dataclasses.fields(model_entry(model).config_class)] + train
    except (ConfigError, TypeError):
        return train


_SETTINGS_CLASSES: dict[tuple[type, tuple[str, ...]], type] = {}


def _with_settings(public: type, names: tuple[str, ...]) -> type:
    """``public`` with the model settings ``names`` as keyword parameters of its ``__init__``: scikit-learn reads an
    estimator's parameters from that signature (``get_params``, ``clone``, its checks). One class per set of
    names, named as ``public``."""
    if not names:
        return public
    key = (public, names)
    if key not in _SETTINGS_CLASSES:
        signature = inspect.signature(public.__init__)
        *own, _ = signature.parameters.values()  # **settings gives way to the names
        settings = [inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=None) for name in names]

        def __init__(self, *args: Any, **kwargs: Any) -> None:
            public.__init__(self, *args, **{**dict.fromkeys(names), **kwargs})

        __init__.__signature__ = signature.replace(parameters=[*own, *settings])
        _SETTINGS_CLASSES[key] = type(public.__name__, (public,), {
            "__init__": __init__, "__module__": public.__module__, "__qualname__": public.__qualname__,
            "__doc__": public.__doc__, "_settings": names, "_public": public})
    return _SETTINGS_CLASSES[key]


def _rebuild(public: type, names: tuple[str, ...]) -> Any:
    """An empty estimator of ``public`` with settings ``names``, for pickle to fill with its state."""
    return object.__new__(_with_settings(public, names))


class _AutoencoderEstimator(BaseEstimator):
    """What both estimators share: the model's settings as parameters, standardisation, the fit."""

    _settings: tuple[str, ...] = ()  # the model settings this class takes as parameters (its __init__ names them)

    def __new__(cls, *args: Any, **kwargs: Any):
        public = cls._public_class()
        own = set(public._get_param_names())
        names = tuple(sorted(set(cls._settings) | {key for key in kwargs if key not in own}))
        target = _with_settings(public, names)
        estimator = super().__new__(target)
        if not issubclass(target, cls):  # Python initialises only an instance of cls itself
            target.__init__(estimator, *args, **kwargs)
        return estimator

    @classmethod
    def _public_class(cls) -> type:
        """The class a user named (``AutoencoderDetector``), under the one that carries the settings."""
        return cls.__dict__.get("_public", cls)

    def __reduce__(self):
        return _rebuild, (self._public_class(), self._settings), self.__getstate__()

    def __init__(self, model: str = "ae", *, steps: int | str = "auto", batch_size: int = 128, lr: float = 1e-3,
                 standardize: bool = True, random_state: Any = None, verbose: bool = False,
                 run_dir: str | None = None, **settings: Any) -> None:
        self.model = model
        self.steps = steps
        self.batch_size = batch_size
        self.lr = lr
        self.standardize = standardize
        self.random_state = random_state
        self.verbose = verbose
        self.run_dir = run_dir
        for key, value in settings.items():
            setattr(self, key, value)

    def set_params(self, **params: Any):
        """The estimator's parameters; a setting of the model that it was built without becomes a parameter."""
        known = set(self.get_params(deep=False))
        fields = set(_config_fields(params.get("model", self.model)))
        added = {key for key in params if key not in known and "__" not in key and key in fields}
        if added:
            self.__class__ = _with_settings(self._public_class(), tuple(sorted(set(self._settings) | added)))
            for key in added:
                setattr(self, key, None)
        return super().set_params(**params)

    # Fitting.
    def _standardize(self, X: np.ndarray) -> np.ndarray:
        """Standardised rows in float32 (the model's precision), computed in it: no float64 copy of a wide X."""
        X = np.asarray(X, dtype=np.float32)
        return (X - self.mean_.astype(np.float32)) / self.scale_.astype(np.float32)

    def _fit_model(self, X: np.ndarray) -> None:
        import aekit

        unknown = sorted(name for name in self._settings if name not in _config_fields(self.model))
        if unknown:
            raise ConfigError(f"unknown {self.model} config key(s) {', '.join(unknown)}; give the model's keys "
                              f"(aekit models {self.model}) or training keys")

        X = validate_data(self, X, dtype=np.float64, ensure_min_samples=2, allow_nd=True)
        if self.standardize:
            self.mean_ = X.mean(0)
            scale = X.std(0)
            self.scale_ = np.where(scale > 0, scale, 1.0)  # a constant column stays as it is, centred
        else:
            self.mean_, self.scale_ = np.zeros(X.shape[1:]), np.ones(X.shape[1:])
        data = self._training_data(self._standardize(X))
        self.steps_ = self.training_steps(len(X))
        seed = int(check_random_state(self.random_state).randint(0, 2**31 - 1))
        settings = {name: getattr(self, name) for name in self._settings
                    if name != "data_shape" and getattr(self, name) is not None}
        settings = {"likelihood": "gaussian", "latent_dim": self._default_latent(X), "hidden": (64,), **settings}
        run = aekit.train(self.model, data=data, out=self.run_dir, steps=self.steps_,
                          batch_size=min(self.batch_size, len(X)), lr=self.lr, seed=seed, split_seed=seed,
                          val_fraction=0.0, test_fraction=0.0, progress=bool(self.verbose) or showing(), evaluate=False,
                          threads=1, **settings)
        self.model_ = run.model.cpu().eval()

    def training_examples(self, rows: int) -> int:
        """The examples a fit on ``rows`` rows trains on: the rows (a series: the windows ending at every
        ``stride``-th row)."""
        return rows

    def training_steps(self, rows: int) -> int:
        """The steps a fit on ``rows`` rows takes: ``steps``, or for ``"auto"`` :func:`auto_steps` of its
        :meth:`training_examples` (20 epochs, 100 to 1,000 steps)."""
        if self.steps == "auto":
            return auto_steps(self.training_examples(rows), self.batch_size)
        if isinstance(self.steps, bool) or not isinstance(self.steps, (int, np.integer)) or self.steps < 1:
            raise ConfigError(f"steps={self.steps!r} must be a whole number >= 1 or 'auto' (20 epochs of the rows, "
                              "100 to 1,000 steps)")
        return int(self.steps)

    def _training_data(self, X: np.ndarray) -> Any:
        """What the model trains on: the standardised rows (windows of them for a series)."""
        return X

    def _default_latent(self, X: np.ndarray) -> int:
        return max(1, min(8, int(np.prod(X.shape[1:]))))

    def _inputs(self, X) -> torch.Tensor:
        check_is_fitted(self, "model_")
        X = validate_data(self, X, dtype=(np.float64, np.float32), reset=False, allow_nd=True)
        if X.shape[1:] != self.mean_.shape:
            raise ConfigError(f"rows of shape {X.shape[1:]} do not fit the {self.mean_.shape} the detector was "
                              "fitted on; give rows of the fitted shape")
        return torch.from_numpy(self._standardize(X))

    def reconstruct(self, X) -> np.ndarray:
        """E[x | z = embed(x)] of each row, in the original units."""
        return self.model_.reconstruct(self._inputs(X)).double().numpy() * self.scale_ + self.mean_

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.non_deterministic = False
        return tags


class AutoencoderTransformer(TransformerMixin, _AutoencoderEstimator):
    """``transform``: the point embedding of each row (posterior mean or code), ``[n, latent_dim]``;
    ``inverse_transform``: the reconstruction E[x | z] of codes, in the original units."""

    def fit(self, X, y=None):
        self._fit_model(X)
        return self

    def transform(self, X) -> np.ndarray:
        with torch.no_grad():
            return self.model_.embed(self._inputs(X)).numpy().astype(np.float64)

    def inverse_transform(self, Z) -> np.ndarray:
        check_is_fitted(self, "model_")
        z = torch.as_tensor(np.asarray(Z, dtype=np.float32))
        with torch.no_grad():
            x = self.model_.likelihood.mean(self.model_.decode(z)).numpy().astype(np.float64)
        return x * self.scale_ + self.mean_


class AutoencoderDetector(OutlierMixin, _AutoencoderEstimator):
    """Anomaly detection by how badly the model explains a row.

    ``criterion``: ``recon`` (-log p(x | z) at the point embedding: half the squared error for the default Gaussian
    likelihood, plus a constant), ``elbo`` (the negative ELBO, ``nll_samples`` posterior samples averaged),
    ``nll`` (-log p(x) by importance sampling with ``nll_samples`` samples), ``combined`` (the ceVAE's
    reconstruction error times the score's gradient, summed over elements: :mod:`aekit.anomaly`), or ``auto``
    (``nll`` for models with a posterior, ``recon`` otherwise). ``contamination``: the expected share of outliers
    in the training rows, in (0, 0.5], which sets ``threshold_``.
    """

    def __init__(self, model: str = "ae", *, criterion: str = "auto", contamination: float = 0.1,
                 nll_samples: int = 100, steps: int | str = "auto", batch_size: int = 128, lr: float = 1e-3,
                 standardize: bool = True, random_state: Any = None, verbose: bool = False,
                 run_dir: str | None = None, **settings: Any) -> None:
        super().__init__(model, steps=steps, batch_size=batch_size, lr=lr, standardize=standardize,
                         random_state=random_state, verbose=verbose, run_dir=run_dir, **settings)
        self.criterion = criterion
        self.contamination = contamination
        self.nll_samples = nll_samples

    def fit(self, X, y=None):
        if self.criterion not in CRITERIA:
            raise ConfigError(f"criterion={self.criterion!r} is unknown; choose one of {', '.join(CRITERIA)}")
        if not (isinstance(self.contamination, (int, float)) and 0 < self.contamination <= 0.5):
            raise ConfigError(f"contamination={self.contamination!r} must lie in (0, 0.5]")
        self._fit_model(X)
        stochastic = anomaly.has_posterior(self.model_)
        self.criterion_ = ("nll" if stochastic else "recon") if self.criterion == "auto" else self.criterion
        anomaly.check_criterion(self.model_, self.criterion_)
        train_scores = self._scores_of(self._standardize(self._as_rows(X)))
        self.threshold_ = float(np.quantile(train_scores, 1.0 - self.contamination))
        self.offset_ = -self.threshold_
        self.decision_scores_ = train_scores  # PyOD's names: the training rows' scores and labels (1 = outlier)
        self.labels_ = (train_scores > self.threshold_).astype(np.int64)
        return self

    def predict_proba(self, X, method: str = "linear") -> np.ndarray:
        """PyOD's outlier probability ``[N, 2]`` (inlier, outlier) from the anomaly scores, calibrated on the
        training rows' ``decision_scores_``: ``linear`` min-max scales them (clipped to [0, 1]); ``unify``
        (Kriegel et al. 2011) takes erf((s - mean) / (std sqrt 2)), clipped at 0."""
        from scipy.special import erf

        check_is_fitted(self, "decision_scores_")
        scores, train = self.anomaly_score(X), self.decision_scores_
        if method == "linear":
            span = max(train.max() - train.min(), np.finfo(np.float64).tiny)
            outlier = (scores - train.min()) / span
        elif method == "unify":
            outlier = erf((scores - train.mean()) / (max(train.std(), np.finfo(np.float64).tiny) * np.sqrt(2)))
        else:
            raise ConfigError(f"method={method!r} is unknown; choose linear or unify (PyOD's)")
        outlier = np.clip(outlier, 0.0, 1.0)
        return np.stack([1.0 - outlier, outlier], axis=1)

    def _anomaly(self, x: torch.Tensor, criterion: str | None = None) -> np.ndarray:
        # a row gets the same score, call after call and batch after batch: its samples come from its own stream
        return anomaly.anomaly_scores(self.model_, x, criterion or self.criterion_,
                                      n_samples=self.nll_samples).double().numpy()

    def _as_rows(self, X) -> np.ndarray:
        return np.asarray(X, dtype=np.float64)

    def _scores_of(self, X: np.ndarray, criterion: str | None = None) -> np.ndarray:
        """Anomaly scores of standardised rows."""
        return self._anomaly(torch.from_numpy(X), criterion)

    def anomaly_score(self, X, criterion: str | None = None) -> np.ndarray:
        """Higher for more anomalous rows, in nats per row (the criterion's own scale); ``criterion`` scores by
        another criterion than the fitted one (``threshold_`` belongs to the fitted one)."""
        if criterion is not None:
            anomaly.check_criterion(self.model_, criterion)
        return self._anomaly(self._inputs(X), criterion)

    def _explained(self, X, rows) -> torch.Tensor:
        """The inputs of ``rows`` of X (all: None), only those standardised."""
        return self._inputs(X if rows is None else np.asarray(X)[np.asarray(rows, dtype=np.int64)])

    def anomaly_map(self, X, kind: str = "combined", rows=None) -> np.ndarray:
        """Where each row's score comes from, one value per element (the rows' shape): ``recon-error``,
        ``gradient`` (of the model's score) or ``combined`` (their product); :func:`aekit.anomaly.anomaly_maps`.
        ``rows``: explain only these rows of X (for a series, the windows ending at them)."""
        return anomaly.anomaly_maps(self.model_, self._explained(X, rows), kind).double().numpy()

    def attributions(self, X, method: str = "integrated-gradients", baseline=None, steps: int = 32,
                     rows=None) -> np.ndarray:
        """Each element's share of its row's anomaly score, in nats, the rows' shape (a series: its windows').

        ``integrated-gradients``: of the fitted criterion (``recon`` for ``combined``), from ``baseline`` (in
        the original units; default: the training mean, i.e. zero after standardisation), summing to
        score(x) - score(baseline); ``recon-error``: -log p(x_i | z) of each element, summing to the ``recon``
        score. ``rows``: explain only these rows of X."""
        if method not in ATTRIBUTIONS:
            raise ConfigError(f"method={method!r} is unknown; choose one of {', '.join(ATTRIBUTIONS)}")
        x = self._explained(X, rows)
        if method == "recon-error":
            return anomaly.reconstruction_attributions(self.model_, x).double().numpy()
        if baseline is not None:
            baseline = torch.from_numpy(self._standardize(np.asarray(baseline, dtype=np.float64)))
        criterion = "recon" if self.criterion_ == "combined" else self.criterion_
        return anomaly.integrated_gradients(self.model_, x, criterion, baseline, steps,
                                            n_samples=self.nll_samples).double().numpy()

    def score_samples(self, X) -> np.ndarray:
        """Higher for more normal rows: the negated anomaly score."""
        return -self.anomaly_score(X)

    def decision_function(self, X) -> np.ndarray:
        """Negative for outliers: ``score_samples - offset_``."""
        return self.score_samples(X) - self.offset_

    def predict(self, X) -> np.ndarray:
        """-1 for outliers (anomaly score above ``threshold_``), +1 for inliers."""
        return np.where(self.decision_function(X) < 0, -1, 1)


class SeriesDetector(AutoencoderDetector):
    """Anomaly detection on a multivariate series ``X [N, C]`` (rows in time order; ``[N]`` for one variable).

    The model trains on the windows of ``window`` rows of the standardised series (:class:`aekit.data.
    WindowDataset`, a sequence ``backbone``: ``gru`` by default; ``seq-conv``, ``lstm``, ``transformer``, or
    ``mlp`` on the flattened window), and row t is scored by the window that ends at it, rows t - T + 1 .. t
    (the first row repeated before the start): each score uses only the past, as an online detector's does.
    The columns are standardised with the statistics of the rows ``fit`` sees. ``stride`` thins the training
    windows (scoring always scores every row).
    """

    def __init__(self, model: str = "ae", *, window: int = 32, stride: int = 1, backbone: str = "gru",
                 criterion: str = "recon", contamination: float = 0.01, nll_samples: int = 100,
                 steps: int | str = "auto",
                 batch_size: int = 128, lr: float = 1e-3, standardize: bool = True, random_state: Any = None,
                 verbose: bool = False, run_dir: str | None = None, **settings: Any) -> None:
        super().__init__(model, criterion=criterion, contamination=contamination, nll_samples=nll_samples,
                         steps=steps, batch_size=batch_size, lr=lr, standardize=standardize,
                         random_state=random_state, verbose=verbose, run_dir=run_dir, backbone=backbone, **settings)
        self.window = window
        self.stride = stride

    def _as_rows(self, X) -> np.ndarray:
        X = np.asarray(X, dtype=np.float64)
        return X[:, None] if X.ndim == 1 else X

    def _windows(self, X: np.ndarray, stride: int = 1):
        from aekit.data import WindowDataset

        return WindowDataset(X, self.window, stride=stride, pad="start", name="series")

    def _training_data(self, X: np.ndarray) -> Any:
        return self._windows(X, self.stride)

    def training_examples(self, rows: int) -> int:
        return len(range(0, rows, self.stride))  # one window ends at each row; every stride-th trains

    def _default_latent(self, X: np.ndarray) -> int:
        return 8

    def _fit_model(self, X) -> None:
        super()._fit_model(self._as_rows(X))

    def _scores_of(self, X: np.ndarray, criterion: str | None = None, batch: int = 1024) -> np.ndarray:
        windows = self._windows(X)
        return np.concatenate([self._anomaly(windows.inputs(slice(i, i + batch)), criterion)
                               for i in range(0, len(windows), batch)])

    def _inputs(self, X) -> torch.Tensor:
        """The windows ``[N, T, C]`` that end at each row."""
        return self._explained(X, None)

    def _explained(self, X, rows) -> torch.Tensor:
        """The windows ``[n, T, C]`` that end at ``rows`` (all rows: None); only those are copied."""
        check_is_fitted(self, "model_")
        X = validate_data(self, self._as_rows(X), dtype=np.float64, reset=False)
        return self._windows(self._standardize(X)).inputs(None if rows is None else np.asarray(rows, dtype=np.int64))

    def anomaly_score(self, X, criterion: str | None = None) -> np.ndarray:
        """One score per row, from the window that ends at it; higher for more anomalous rows."""
        check_is_fitted(self, "model_")
        if criterion is not None:
            anomaly.check_criterion(self.model_, criterion)
        X = validate_data(self, self._as_rows(X), dtype=np.float64, reset=False)
        return self._scores_of(self._standardize(X), criterion)
