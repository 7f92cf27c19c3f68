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
point readouts only get gradients from their immediate neighbourhood.
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
    seed: int = 0,
    device: torch.device | str = "cpu",
) -> TrainedModel:
    """Fit the model to ``responses`` (frame, neuron): mean counts per presentation of each image.

    ``images`` (frame, height, width) should be normalised (zero mean, unit SD over the set).
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

    best_loss, best_state, best_epoch, epoch = math.inf, None, 0, 0
    started = time.perf_counter()
    for epoch in progress(range(max_epochs), desc="mds model", unit="epoch"):
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
