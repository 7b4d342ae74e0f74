"""Multinomial logistic regression with an L2 penalty, fitted by L-BFGS in float64: the identity head."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from evalkit.errors import EvalError
from evalkit.threads import limited_pools


@dataclass(frozen=True)
class LinearHead:
    """Softmax classifier over standardised features; ``classes`` names the output columns."""

    classes: tuple[str, ...]
    mean: np.ndarray
    scale: np.ndarray
    weight: np.ndarray
    bias: np.ndarray

    def scores(self, features: np.ndarray) -> np.ndarray:
        z = (np.asarray(features, np.float64) - self.mean) / self.scale
        return z @ self.weight + self.bias

    def predict(self, features: np.ndarray) -> np.ndarray:
        """Index into ``classes`` of the most likely class of each row."""
        return self.scores(features).argmax(axis=1)


def _objective(packed: np.ndarray, z: np.ndarray, onehot: np.ndarray, l2: float) -> tuple[float, np.ndarray]:
    """Mean cross-entropy + l2/2 ||W||^2 of softmax(z W + b) and its gradient, W and b packed in one vector."""
    d, k = z.shape[1], onehot.shape[1]
    weight, bias = packed[: d * k].reshape(d, k), packed[d * k :]
    logits = z @ weight + bias
    logits -= logits.max(axis=1, keepdims=True)
    log_p = logits - np.log(np.exp(logits).sum(axis=1, keepdims=True))
    loss = -(onehot * log_p).sum() / len(z) + 0.5 * l2 * (weight**2).sum()
    residual = (np.exp(log_p) - onehot) / len(z)
    return float(loss), np.concatenate([(z.T @ residual + l2 * weight).ravel(), residual.sum(axis=0)])


def fit_logistic_regression(features: np.ndarray, labels: np.ndarray, classes: tuple[str, ...],
                            l2: float = 1e-3, max_iter: int = 500) -> LinearHead:
    """Minimise mean cross-entropy + l2/2 ||W||^2 (bias unpenalised); labels index ``classes``.

    Solved by SciPy's L-BFGS-B (a convex problem: one optimum) on the exact gradient, in float64; torch's LBFGS did the
    same but its constructor imports torch._dynamo, seconds of a run (45 s on a loaded 2-core machine)."""
    from scipy.optimize import minimize

    x = np.asarray(features, np.float64)
    y = np.asarray(labels, np.int64)
    if len(set(y.tolist())) < 2:
        raise EvalError(
            f"the identity head needs real training faces of at least 2 identities, got {len(set(y.tolist()))}")
    mean = x.mean(axis=0)
    scale = x.std(axis=0)
    scale[scale == 0] = 1.0
    z = (x - mean) / scale
    onehot = np.eye(len(classes))[y]
    start = np.zeros(z.shape[1] * len(classes) + len(classes))
    with limited_pools(1, "blas"):  # a few hundred rows: one thread beats a contended pool
        solution = minimize(_objective, start, args=(z, onehot, l2), jac=True, method="L-BFGS-B",
                            options={"maxiter": max_iter, "maxcor": 20, "gtol": 1e-9, "ftol": 1e-12})
    d, k = z.shape[1], len(classes)
    return LinearHead(tuple(classes), mean, scale, solution.x[: d * k].reshape(d, k).copy(), solution.x[d * k :].copy())
