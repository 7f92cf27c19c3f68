"""Predictive model of image responses: convolutional core plus a per-neuron point readout.

The architecture follows the models Burg et al. (ICLR 2024, "Most discriminative stimuli for
functional cell type clustering") and Lurz et al. (ICLR 2021, Gaussian readout) use: a small
convolutional core shared by all neurons computes feature maps of the image; each neuron reads the
feature vector at its own learned position (bilinear sampling, ``grid_sample``) and weighs it
with its own feature weights; a softplus gives a non-negative rate. Because the core is
translation-equivariant, shifting every neuron's readout so that its receptive field (RF) sits at
the image centre (:meth:`ResponseModel.centred`) gives a model in which one stimulus at the centre
can drive every neuron, and neurons of one type respond alike wherever their RFs were.

Centring moves the RF, not the readout position, to the centre: the position alone is not
identifiable, since the readout's feature weights can absorb a shift of a pixel or two (the core
has ON and OFF, odd and even features). On planted Gabor types, readouts trained from one start
settle half a wavelength apart (about +-1 px around the true centre, or on a side lobe), and
centring those positions hands the MDS a phase-shifted copy of the type that it then splits off.
The RF centre is the centroid of the squared gradient of the neuron's response with respect to
the image at a blank (mean-luminance) image, a phase-invariant measure of where the model reads.

Training minimises the Poisson negative log-likelihood of each frame's mean spike count over its
presentations, with a Laplacian smoothness penalty on the first-layer filters and an L1 penalty on
the readout weights, and stops early on held-out frames (images never seen in training).
Readout positions start at the peak of each neuron's smoothed spike-triggered-average energy, since
point readouts only get gradients from their immediate neighbourhood. For the same reason a readout
can settle on a side lobe of its RF (on planted Gabor types, 1.5-2.5 px, about half a wavelength,
from the true centre for ~8% of the neurons; held-out correlation ~0.6 against ~0.88), where the
model can only fit a phase-shifted copy of the RF. After training, every readout is therefore
searched on a grid of whole-pixel offsets within ``position_search_px`` of where it settled: at each
candidate the neuron's feature weights and bias are refitted with the core fixed (a Poisson GLM on
the training images), the candidate with the lowest training loss is kept, and the whole model
trains on from there with the same early stopping (:func:`search_positions`).
"""

from __future__ import annotations

import copy
import logging
import math
import time
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from neurodag.progress import progress

log = logging.getLogger(__name__)


class ResponseModel(nn.Module):
    """Conv core (two layers, ELU) + per-neuron point readout + softplus."""

    def __init__(
        self,
        n_neurons: int,
        *,
        channels: int = 8,
        first_kernel: int = 11,
        second_kernel: int = 5,
    ) -> None:
        super().__init__()
        self.core = nn.Sequential(
            nn.Conv2d(1, channels, first_kernel, padding=first_kernel // 2),
            nn.ELU(),
            nn.Conv2d(channels, channels, second_kernel, padding=second_kernel // 2),
            nn.ELU(),
        )
        # Position in grid_sample coordinates: (x, y) in [-1, 1], 0 = image centre.
        self.position = nn.Parameter(torch.zeros(n_neurons, 2))
        self.features = nn.Parameter(torch.randn(n_neurons, channels) / math.sqrt(channels))
        self.bias = nn.Parameter(torch.zeros(n_neurons))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """Rates (batch, neuron) for images (batch, 1, height, width)."""
        maps = self.core(images)
        grid = self.position.clamp(-1, 1)[None, :, None, :].expand(maps.shape[0], -1, -1, -1)
        sampled = F.grid_sample(maps, grid, align_corners=True)[..., 0]  # batch, channel, neuron
        drive = torch.einsum("bcn,nc->bn", sampled, self.features) + self.bias
        return F.softplus(drive)

    def shifted_responses(self, images: torch.Tensor, offsets: torch.Tensor) -> torch.Tensor:
        """Rates (offset, batch, neuron) with every readout moved by each of ``offsets``.

        ``offsets`` (offset, 2) are in grid units (x, y). Moving a readout by ``d`` is, by the
        core's translation equivariance, showing the image moved by ``-d``; the core runs once.
        """
        maps = self.core(images)
        rates = []
        for offset in offsets:
            grid = (self.position + offset).clamp(-1, 1)[None, :, None, :]
            grid = grid.expand(maps.shape[0], -1, -1, -1)
            sampled = F.grid_sample(maps, grid, align_corners=True)[..., 0]
            rates.append(F.softplus(torch.einsum("bcn,nc->bn", sampled, self.features) + self.bias))
        return torch.stack(rates)

    def receptive_field_centres(self, image_shape: tuple[int, int], chunk: int = 64):
        """RF centres (neuron, 2) in grid coordinates (x, y), from the blank-image gradient.

        The centroid of each neuron's squared response gradient with respect to the pixels,
        taken at a blank image (0 in normalised units); the gradient's overall scale (the
        softplus slope) does not move the centroid.
        """
        height, width = image_shape
        n_neurons = self.position.shape[0]
        device = self.position.device
        y, x = torch.meshgrid(
            torch.linspace(-1, 1, height, device=device),
            torch.linspace(-1, 1, width, device=device),
            indexing="ij",
        )
        centres = torch.zeros(n_neurons, 2, device=device)
        for start in range(0, n_neurons, chunk):
            neurons = torch.arange(start, min(n_neurons, start + chunk), device=device)
            blank = torch.zeros(len(neurons), 1, height, width, device=device, requires_grad=True)
            own = self(blank)[torch.arange(len(neurons), device=device), neurons]
            (gradient,) = torch.autograd.grad(own.sum(), blank)
            energy = gradient[:, 0] ** 2
            weight = energy / energy.sum(dim=(1, 2), keepdim=True).clamp_min(1e-30)
            centres[neurons, 0] = (weight * x).sum(dim=(1, 2))
            centres[neurons, 1] = (weight * y).sum(dim=(1, 2))
        return centres.detach()

    def centred(self, image_shape: tuple[int, int]) -> ResponseModel:
        """A frozen copy whose RFs all sit at the centre of ``image_shape`` images (for the MDS).

        Each readout moves by minus its RF centre (grid coordinates, 0 = image centre), which
        moves the RF, by the core's translation equivariance, to the centre.
        """
        model = copy.deepcopy(self).eval()
        for parameter in model.parameters():
            parameter.requires_grad_(False)
        with torch.enable_grad():
            centres = model.receptive_field_centres(image_shape)
        model.position.sub_(centres)
        return model

    def first_layer_roughness(self) -> torch.Tensor:
        weight = self.core[0].weight
        laplacian = torch.tensor(
            [[0.0, -1.0, 0.0], [-1.0, 4.0, -1.0], [0.0, -1.0, 0.0]], device=weight.device
        )[None, None]
        rough = F.conv2d(weight.reshape(-1, 1, *weight.shape[-2:]), laplacian)
        return (rough**2).sum() / (weight**2).sum().clamp_min(1e-8)


@dataclass
class TrainedModel:
    model: ResponseModel
    test_correlation: np.ndarray  # per neuron, on held-out test frames
    validation_correlation: np.ndarray
    epochs: int
    seconds: float
    train_frames: np.ndarray
    validation_frames: np.ndarray
    test_frames: np.ndarray


def sta_positions(images: np.ndarray, responses: np.ndarray, smooth_px: float = 2.0) -> np.ndarray:
    """Readout start positions (neuron, 2) in grid coordinates (x, y) from the STA energy peak."""
    from scipy.ndimage import gaussian_filter

    n_frames, height, width = images.shape
    centred = responses - responses.mean(axis=0)
    sta = np.tensordot(centred, images, axes=(0, 0)) / n_frames  # neuron, y, x
    energy = gaussian_filter(sta**2, sigma=(0, smooth_px, smooth_px))
    flat = energy.reshape(len(sta), -1).argmax(axis=1)
    y, x = np.unravel_index(flat, (height, width))
    return np.stack([2 * x / (width - 1) - 1, 2 * y / (height - 1) - 1], axis=1)


def split_frames(n_frames: int, validation: float, test: float, seed: int):
    rng = np.random.default_rng(seed)
    order = rng.permutation(n_frames)
    n_val = max(1, round(validation * n_frames))
    n_test = max(1, round(test * n_frames))
    return (
        np.sort(order[n_val + n_test :]),
        np.sort(order[:n_val]),
        np.sort(order[n_val : n_val + n_test]),
    )


def column_correlation(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pearson correlation of each column of ``a`` with the same column of ``b`` (0 if flat)."""
    a = a - a.mean(axis=0)
    b = b - b.mean(axis=0)
    denominator = np.sqrt((a**2).sum(axis=0) * (b**2).sum(axis=0))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(denominator > 0, (a * b).sum(axis=0) / denominator, 0.0)


def search_positions(
    model: ResponseModel,
    images: torch.Tensor,
    responses: torch.Tensor,
    radius_px: float,
    *,
    iterations: int = 10,
    chunk: int = 64,
) -> np.ndarray:
    """Move each readout to the best whole-pixel offset within ``radius_px``; in place.

    ``images`` (frame, 1, height, width) and ``responses`` (frame, neuron) are training data. At
    every candidate offset (the current position included) the neuron's feature weights and bias
    are refitted with the core fixed: a Poisson GLM with the model's softplus link, by Fisher
    scoring (iteratively reweighted least squares) from the current weights. The candidate with
    the lowest Poisson negative log-likelihood wins. Returns which neurons moved.
    """
    height, width = images.shape[-2:]
    r = int(np.floor(radius_px))
    offsets = [
        (dy, dx)
        for dy in range(-r, r + 1)
        for dx in range(-r, r + 1)
        if dy * dy + dx * dx <= radius_px**2
    ]
    # Offset 0 first, so that ties keep the current position.
    offsets.sort(key=lambda o: (o[0] ** 2 + o[1] ** 2, o))
    device = images.device
    step = torch.tensor(
        [[dx * 2 / (width - 1), dy * 2 / (height - 1)] for dy, dx in offsets],
        dtype=torch.float32,
        device=device,
    )
    n_neurons = model.position.shape[0]
    n_frames = images.shape[0]
    moved = np.zeros(n_neurons, bool)
    with torch.no_grad():
        maps = model.core(images)  # frame, channel, y, x
        for start in range(0, n_neurons, chunk):
            neurons = torch.arange(start, min(n_neurons, start + chunk), device=device)
            candidates = (model.position[neurons, None, :] + step[None]).clamp(-1, 1)
            grid = candidates[None].expand(n_frames, -1, -1, -1)  # frame, neuron, offset, 2
            sampled = F.grid_sample(maps, grid, align_corners=True)  # frame, ch, neuron, offset
            design = torch.cat(  # neuron, offset, frame, channel + 1 (the bias)
                [sampled.permute(2, 3, 0, 1), torch.ones_like(sampled[:, :1].permute(2, 3, 0, 1))],
                dim=-1,
            ).double()
            beta = torch.cat([model.features[neurons], model.bias[neurons, None]], dim=1).double()
            beta = beta[:, None, :].expand(-1, len(offsets), -1).clone()  # neuron, offset, p
            target = responses[:, neurons].T.double()[:, None, :]  # neuron, 1, frame
            ridge = 1e-6 * torch.eye(beta.shape[-1], dtype=torch.float64, device=device)
            for _ in range(iterations):
                eta = (design @ beta[..., None])[..., 0]  # neuron, offset, frame
                mu = F.softplus(eta).clamp_min(1e-8)
                slope = torch.sigmoid(eta).clamp_min(1e-8)
                weight = slope**2 / mu
                working = eta + (target - mu) / slope
                weighted = design * weight[..., None]
                normal = weighted.transpose(-1, -2) @ design + ridge
                rhs = (weighted.transpose(-1, -2) @ working[..., None])[..., 0]
                update = torch.linalg.solve(normal, rhs)
                beta = torch.where(torch.isfinite(update), update, beta)
            mu = F.softplus((design @ beta[..., None])[..., 0]).clamp_min(1e-8)
            nll = (mu - target * torch.log(mu)).mean(dim=-1)  # neuron, offset
            nll = torch.where(torch.isfinite(nll), nll, torch.inf)
            best = nll.argmin(dim=1)
            rows = torch.arange(len(neurons), device=device)
            chosen = beta[rows, best].float()
            model.position[neurons] = candidates[rows, best]
            model.features[neurons] = chosen[:, :-1]
            model.bias[neurons] = chosen[:, -1]
            moved[neurons.cpu().numpy()] = (best != 0).cpu().numpy()
    return moved


def train_model(
    images: np.ndarray,
    responses: np.ndarray,
    *,
    channels: int = 8,
    first_kernel: int = 11,
    second_kernel: int = 5,
    learning_rate: float = 0.01,
    batch_size: int = 64,
    max_epochs: int = 200,
    patience: int = 15,
    smoothness: float = 0.01,
    readout_l1: float = 1e-4,
    validation_fraction: float = 0.1,
    test_fraction: float = 0.1,
    position_search_px: float = 3.0,
    seed: int = 0,
    device: torch.device | str = "cpu",
) -> TrainedModel:
    """Fit the model to ``responses`` (frame, neuron): mean counts per presentation of each image.

    ``images`` (frame, height, width) should be normalised (zero mean, unit SD over the set).
    With ``position_search_px > 0`` training runs in two phases, each of at most ``max_epochs``
    with early stopping: before and after the readout position search.
    """
    torch.manual_seed(seed)
    device = torch.device(device)
    n_frames, n_neurons = responses.shape
    train, validation, test = split_frames(n_frames, validation_fraction, test_fraction, seed)
    model = ResponseModel(
        n_neurons, channels=channels, first_kernel=first_kernel, second_kernel=second_kernel
    )
    with torch.no_grad():
        model.position.copy_(torch.as_tensor(sta_positions(images[train], responses[train])))
        model.bias.copy_(torch.as_tensor(np.log(np.expm1(np.maximum(responses.mean(0), 1e-3)))))
    model.to(device)
    x = torch.as_tensor(images, dtype=torch.float32, device=device)[:, None]
    y = torch.as_tensor(responses, dtype=torch.float32, device=device)
    optimiser = torch.optim.Adam(model.parameters(), lr=learning_rate)
    generator = torch.Generator().manual_seed(seed)

    def validation_loss() -> float:
        model.eval()
        with torch.no_grad():
            rate = model(x[validation])
            loss = F.poisson_nll_loss(rate, y[validation], log_input=False, full=False)
        model.train()
        return float(loss)

    def train_epochs(first_epoch: int, last_epoch: int) -> int:
        """Epochs until ``patience`` epochs without improvement; keeps the best state."""
        nonlocal best_loss, best_state, best_epoch
        epoch = first_epoch
        for epoch in progress(range(first_epoch, last_epoch), desc="mds model", unit="epoch"):
            order = torch.as_tensor(train)[torch.randperm(len(train), generator=generator)]
            for start in range(0, len(order), batch_size):
                batch = order[start : start + batch_size].to(device)
                rate = model(x[batch])
                loss = F.poisson_nll_loss(rate, y[batch], log_input=False, full=False)
                loss = loss + smoothness * model.first_layer_roughness()
                loss = loss + readout_l1 * model.features.abs().sum() / n_neurons
                optimiser.zero_grad()
                loss.backward()
                optimiser.step()
            current = validation_loss()
            if current < best_loss - 1e-5:
                best_loss, best_epoch = current, epoch
                best_state = copy.deepcopy(model.state_dict())
            elif epoch - best_epoch >= patience:
                break
        return epoch + 1

    best_loss, best_state, best_epoch = math.inf, None, 0
    started = time.perf_counter()
    epochs = train_epochs(0, max_epochs)
    if position_search_px > 0:
        model.load_state_dict(best_state)
        moved = search_positions(model, x[train], y[train], position_search_px)
        log.info("model: %d of %d readouts moved by the position search", moved.sum(), n_neurons)
        # Train on from the searched positions: early stopping starts afresh from their state.
        best_loss, best_epoch = validation_loss(), epochs - 1
        best_state = copy.deepcopy(model.state_dict())
        optimiser = torch.optim.Adam(model.parameters(), lr=learning_rate)
        epochs = train_epochs(epochs, epochs + max_epochs)
    epoch = epochs - 1
    seconds = time.perf_counter() - started
    model.load_state_dict(best_state)
    model.eval()
    with torch.no_grad():
        predicted = model(x).cpu().numpy()
    log.info(
        "model: stopped after %d epochs (best %d) in %.1f s", epoch + 1, best_epoch + 1, seconds
    )
    return TrainedModel(
        model=model,
        test_correlation=column_correlation(predicted[test], responses[test]),
        validation_correlation=column_correlation(predicted[validation], responses[validation]),
        epochs=epoch + 1,
        seconds=seconds,
        train_frames=train,
        validation_frames=validation,
        test_frames=test,
    )
