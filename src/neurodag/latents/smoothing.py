"""Gaussian spike smoothing baseline, as the Neural Latents Benchmark runs it (Pei et al. 2021).

Held-in rates are the held-in spikes convolved with a Gaussian kernel; held-out rates come from a
Poisson GLM fitted on training trials from the log smoothed held-in rates to the held-out spikes.
The kernel width is chosen by co-bps on a split of the training trials. The baseline has no
dynamics, so it makes no forward prediction.
"""

from __future__ import annotations

import numpy as np
import torch
from scipy.ndimage import gaussian_filter1d

from neurodag.latents.metrics import bits_per_spike


def smooth(spikes: np.ndarray, sigma_bins: float) -> np.ndarray:
    """Gaussian smoothing along time of ``(trial, time, neuron)`` counts (edges reflected)."""
    return gaussian_filter1d(np.asarray(spikes, dtype=float), sigma_bins, axis=1, mode="nearest")


def fit_poisson_glm(x: np.ndarray, y: np.ndarray, alpha: float = 1e-2, iterations: int = 200):
    """Poisson regression ``y ~ Poisson(exp(x w + b))`` for every column of ``y`` at once,
    L2 penalty ``alpha`` on ``w``, by L-BFGS. Returns (w, b)."""
    xt = torch.as_tensor(x, dtype=torch.float64)
    yt = torch.as_tensor(y, dtype=torch.float64)
    w = torch.zeros(x.shape[1], y.shape[1], dtype=torch.float64, requires_grad=True)
    b = torch.log(yt.mean(0).clamp_min(1e-6)).clone().requires_grad_(True)
    optimiser = torch.optim.LBFGS([w, b], max_iter=iterations, line_search_fn="strong_wolfe")

    def closure():
        optimiser.zero_grad()
        eta = xt @ w + b
        loss = (torch.exp(eta) - yt * eta).mean(0).sum() + 0.5 * alpha * (w**2).sum()
        loss.backward()
        return loss

    optimiser.step(closure)
    return w.detach().numpy(), b.detach().numpy()


def _features(smoothed_heldin: np.ndarray) -> np.ndarray:
    return np.log(smoothed_heldin.reshape(-1, smoothed_heldin.shape[-1]) + 1e-3)


def smoothing_baseline(
    data, sigmas_bins=(1.0, 1.5, 2.0, 3.0, 4.0, 6.0), alpha: float = 1e-2
) -> dict:
    """Fit the baseline on ``data.train``; return eval rates ``(trial, time, neuron)`` over the
    held-in bins for ``data.valid`` (all neurons) and the chosen kernel width."""
    t_in = data.n_heldin_time
    spikes = data.counts[:, :t_in]
    train = data.train
    fit_part, check_part = train[: int(0.8 * len(train))], train[int(0.8 * len(train)) :]

    def predict_heldout(sigma, fit_trials, eval_trials):
        sm = smooth(spikes[:, :, data.heldin], sigma)
        w, b = fit_poisson_glm(
            _features(sm[fit_trials]),
            spikes[fit_trials][:, :, data.heldout].reshape(-1, len(data.heldout)),
            alpha,
        )
        pred = np.exp(_features(sm[eval_trials]) @ w + b)
        return sm[eval_trials], pred.reshape(len(eval_trials), t_in, len(data.heldout))

    scores = {}
    for sigma in sigmas_bins:
        _, held_out = predict_heldout(sigma, fit_part, check_part)
        scores[sigma] = bits_per_spike(held_out, spikes[check_part][:, :, data.heldout])
    best = max(scores, key=scores.get)
    smoothed, held_out = predict_heldout(best, train, data.valid)
    rates = np.empty((len(data.valid), t_in, data.n_neurons))
    rates[:, :, data.heldin] = smoothed
    rates[:, :, data.heldout] = held_out
    return {"rates": rates, "sigma_bins": best, "selection_co_bps": scores}
