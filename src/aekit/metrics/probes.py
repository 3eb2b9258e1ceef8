"""How much of the labels a representation holds: linear-probe and k-NN accuracy on frozen embeddings."""

from __future__ import annotations

import numpy as np


def _single_threaded():
    """scikit-learn's BLAS threads and torch's OpenMP threads in one process oversubscribe the cores and stall
    each other; the probes are small, so one thread is fastest."""
    from threadpoolctl import threadpool_limits

    return threadpool_limits(limits=1)


def _arrays(*xs):
    return [np.asarray(x.detach().cpu().numpy() if hasattr(x, "detach") else x) for x in xs]


def linear_probe_accuracy(z_train, y_train, z_test, y_test, max_iter: int = 1000, seed: int = 0) -> float:
    """Test accuracy of a multinomial logistic regression fit on standardised train embeddings (the
    linear-evaluation protocol of representation learning)."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    z_train, y_train, z_test, y_test = _arrays(z_train, y_train, z_test, y_test)
    clf = make_pipeline(StandardScaler(), LogisticRegression(max_iter=max_iter, random_state=seed))
    with _single_threaded():
        clf.fit(z_train, y_train)
        return float(clf.score(z_test, y_test))


def knn_accuracy(z_train, y_train, z_test, y_test, k: int = 5) -> float:
    """Test accuracy of a k-nearest-neighbour classifier (Euclidean) on the embeddings."""
    from sklearn.neighbors import KNeighborsClassifier

    z_train, y_train, z_test, y_test = _arrays(z_train, y_train, z_test, y_test)
    clf = KNeighborsClassifier(n_neighbors=min(k, len(z_train)))
    with _single_threaded():
        clf.fit(z_train, y_train)
        return float(clf.score(z_test, y_test))
