"""The identity head: multinomial logistic regression by L-BFGS."""

import numpy as np
import pytest

from evalkit.classifier import fit_logistic_regression
from evalkit.errors import EvalError


def blobs(per_class: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    centres = np.array([[3.0, 0, 0, 0], [0, 3.0, 0, 0], [0, 0, 3.0, 0]])
    labels = np.repeat(np.arange(3), per_class)
    return centres[labels] + rng.normal(0, 0.7, (len(labels), 4)), labels


def test_head_separates_three_identities_on_held_out_samples():
    x, y = blobs(40, 0)
    head = fit_logistic_regression(x, y, ("a", "b", "c"))
    test_x, test_y = blobs(30, 1)
    assert (head.predict(test_x) == test_y).mean() > 0.95
    assert head.scores(test_x).shape == (90, 3)


def test_head_is_deterministic_and_the_penalty_shrinks_weights():
    x, y = blobs(20, 2)
    first = fit_logistic_regression(x, y, ("a", "b", "c"), l2=1e-3)
    np.testing.assert_array_equal(first.weight, fit_logistic_regression(x, y, ("a", "b", "c"), l2=1e-3).weight)
    strong = fit_logistic_regression(x, y, ("a", "b", "c"), l2=1.0)
    assert np.abs(strong.weight).sum() < np.abs(first.weight).sum()


def test_head_needs_two_identities():
    x, _ = blobs(5, 3)
    with pytest.raises(EvalError, match="at least 2 identities"):
        fit_logistic_regression(x, np.zeros(len(x), dtype=int), ("a", "b"))


def test_head_is_the_optimum_torchs_lbfgs_found():
    """The head evalkit 0.1 fitted with torch's LBFGS (strong Wolfe, the same objective): the same optimum."""
    import torch

    x, y = blobs(30, 4)
    head = fit_logistic_regression(x, y, ("a", "b", "c"), l2=1e-2)
    z = torch.from_numpy((x - x.mean(axis=0)) / x.std(axis=0))
    weight = torch.zeros(4, 3, dtype=torch.float64, requires_grad=True)
    bias = torch.zeros(3, dtype=torch.float64, requires_grad=True)
    optimiser = torch.optim.LBFGS([weight, bias], lr=1.0, max_iter=500, tolerance_grad=1e-9, tolerance_change=1e-12,
                                  history_size=20, line_search_fn="strong_wolfe")

    def closure() -> torch.Tensor:
        optimiser.zero_grad()
        loss = torch.nn.functional.cross_entropy(z @ weight + bias, torch.from_numpy(y)) + 0.005 * (weight**2).sum()
        loss.backward()
        return loss

    optimiser.step(closure)
    np.testing.assert_allclose(head.weight, weight.detach().numpy(), atol=1e-5)
    # the bias is defined up to a constant added to every class (softmax): compare it centred
    np.testing.assert_allclose(head.bias - head.bias.mean(), (bias - bias.mean()).detach().numpy(), atol=1e-5)
