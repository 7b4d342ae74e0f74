"""Multinomial logistic regression with an L2 penalty, fitted by L-BFGS in float64: the identity head."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from evalkit.threads import cpu_threads

from evalkit.errors import EvalError


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


def fit_logistic_regression(features: np.ndarray, labels: np.ndarray, classes: tuple[str, ...],
                            l2: float = 1e-3, max_iter: int = 500) -> LinearHead:
    """Minimise mean cross-entropy + l2/2 ||W||^2 (bias unpenalised); labels index ``classes``."""
    x = np.asarray(features, np.float64)
    y = np.asarray(labels, np.int64)
    if len(set(y.tolist())) < 2:
        raise EvalError(f"the identity head needs real training faces of at least 2 identities, got {len(set(y.tolist()))}")
    mean = x.mean(axis=0)
    scale = x.std(axis=0)
    scale[scale == 0] = 1.0
    z = torch.from_numpy((x - mean) / scale)
    target = torch.from_numpy(y)
    weight = torch.zeros(x.shape[1], len(classes), dtype=torch.float64, requires_grad=True)
    bias = torch.zeros(len(classes), dtype=torch.float64, requires_grad=True)
    optimiser = torch.optim.LBFGS([weight, bias], lr=1.0, max_iter=max_iter, tolerance_grad=1e-9,
                                  tolerance_change=1e-12, history_size=20, line_search_fn="strong_wolfe")

    def closure() -> torch.Tensor:
        optimiser.zero_grad()
        loss = torch.nn.functional.cross_entropy(z @ weight + bias, target) + 0.5 * l2 * (weight**2).sum()
        loss.backward()
        return loss

    with cpu_threads(1):  # a few hundred rows: one thread; a pool on a busy machine made this 100x slower (17 s)
        optimiser.step(closure)
    return LinearHead(tuple(classes), mean, scale, weight.detach().numpy().copy(), bias.detach().numpy().copy())
