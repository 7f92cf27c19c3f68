"""Most discriminative stimuli (MDS) clustering (Burg et al., ICLR 2024).

Given a predictive model whose readouts are centred (one stimulus drives every neuron), clusters
are found by optimising one stimulus per cluster so that it drives its cluster's neurons and not
the others, and reassigning each neuron to the cluster whose stimulus drives it most:

1. start from ``initial_clusters`` clusters (k-means on the centred model's responses to the
   training images, z-scored per neuron);
2. for each cluster ``k`` optimise its stimulus ``x_k`` by gradient ascent on
   ``L_k = m_k(x_k) / tau - logsumexp_j(m_j(x_k) / tau)``, where ``m_j(x)`` is the mean over
   cluster ``j``'s neurons of their predicted response to ``x`` (each neuron's response divided
   by its largest response to a training image, so that gain does not weigh a neuron), under a
   fixed L2 norm (the median norm of the training images), with pixel values clipped to the
   training images' range and the gradient smoothed by a Gaussian (``smoothing_px``);
3. move every neuron to the cluster whose MDS drives it most (normalised response); drop empty
   clusters; repeat 2-3 until no neuron moves;
4. try splitting each cluster in two (2-means on its members' responses to the training images),
   refine as in 2-3, and keep the split when it lowers the objective ``-sum_k w_k L_k`` relative to
   chance by more than ``split_tolerance`` (default 0) and leaves no pair to merge (step 5);
   repeat until no split is kept. Relative to chance means ``-sum_k w_k L_k - log K``: with K
   clusters no better than chance, ``-L_k = log K``, so the raw value grows with K by itself and
   is not comparable across K. The weights ``w_k = n_k / N`` are the clusters' shares of the
   neurons, so the objective is the average over neurons of how well their cluster's MDS tells it
   apart: with an unweighted mean, a split that carves a handful of neurons off a type gains as
   much as one that separates two types; weighted, its gain scales with the neurons it concerns.
   The weights do not change the stimuli: each ``x_k`` enters its own ``L_k`` only. The gain
   alone does not tell a type from half a type: on the planted types the split of one Gabor type
   into two phase-shifted halves (RFs centred ~0.7 px apart) gained 0.054 nats, the split of
   two merged types 0.041, so no tolerance on the gain separates them; the merge test does.
5. merge (the step Burg et al. end with): two clusters whose MDS drive each other's members alike
   are one type. For clusters ``a`` and ``b``, the cross drive ``c_ab`` is the median over
   ``b``'s members of their response to ``x_a`` over their response to ``x_b``; the pair merges
   when ``min(c_ab, c_ba) >= merge_drive`` (0.5: each half answers the other's MDS at least half
   as much as its own), most alike pair first, refining (2-3) after each merge. Two types each
   have a stimulus the other barely answers (cross drives at most 0.34 on the planted types), so one
   of their cross drives stays low; two halves of one type answer both (0.6-0.9). The merge runs
   after the first refinement (k-means may cut a type), and a split whose result holds a
   mergeable pair is rejected, so that splits and merges cannot undo each other.
   Responses here are *shift tolerant*: each neuron's response to a stimulus is the largest over
   readout offsets within ``shift_tolerance_px`` (0.25 px grid). The centring is good to a pixel
   or two (0.4-1.7 px on the poorer-fitted planted Gabor neurons), and a sub-pixel error is a
   phase shift of a fine grating (0.5 px is 36 degrees at a 5 px wavelength); without the
   tolerance, halves of one Gabor type centred ~0.7 px apart drive each other at 0.3-0.5, as much
   as some distinct types (with 2 px: halves 0.67, distinct types at most 0.34).

Only neurons the model predicts reliably (``include``: the stage keeps those whose held-out
correlation reaches ``min_correlation``) take part in steps 1-5. At the end every neuron, these
and the others, goes to the cluster whose MDS drives it most, shift tolerant as in the merge. A
cluster built on poorly modelled neurons follows the model's error, not a type: on planted Gabor
types the neurons whose readout settled on a side lobe of their RF (held-out correlation ~0.6
against ~0.89) have a phase-shifted RF in the model and otherwise form clusters of their own (the
model's readout position search, :func:`neurodag.mds.model.search_positions`, moves most of them
back before clustering).

The objective trace records the objective after every optimisation, with the number of clusters
and the step that produced it (``optimise``, ``split``, ``rejected_split``, ``merge``).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field

import numpy as np
import torch
from torch.nn import functional as F

log = logging.getLogger(__name__)


def kmeans(data: np.ndarray, k: int, *, seed: int = 0, restarts: int = 10, iterations: int = 100):
    """Labels of Lloyd's k-means with k-means++ starts; the best of ``restarts`` by inertia."""
    rng = np.random.default_rng(seed)
    n = len(data)
    k = min(k, n)
    best_labels, best_inertia = np.zeros(n, dtype=int), np.inf
    for _ in range(restarts):
        centres = [data[rng.integers(n)]]
        for _ in range(1, k):
            distance = np.min([((data - c) ** 2).sum(axis=1) for c in centres], axis=0)
            total = distance.sum()
            probability = distance / total if total > 0 else np.full(n, 1.0 / n)
            centres.append(data[rng.choice(n, p=probability)])
        centres = np.array(centres)
        labels = np.full(n, -1)
        for _ in range(iterations):
            distance = ((data[:, None, :] - centres[None]) ** 2).sum(axis=2)
            new = distance.argmin(axis=1)
            if np.array_equal(new, labels):
                break
            labels = new
            for j in range(k):
                if np.any(labels == j):
                    centres[j] = data[labels == j].mean(axis=0)
        inertia = ((data - centres[labels]) ** 2).sum()
        if inertia < best_inertia:
            best_labels, best_inertia = labels.copy(), inertia
    return best_labels


def zscore_rows(x: np.ndarray) -> np.ndarray:
    x = x - x.mean(axis=1, keepdims=True)
    return x / np.maximum(x.std(axis=1, keepdims=True), 1e-12)


def relabel(labels: np.ndarray) -> np.ndarray:
    """Labels renumbered 0..K-1 in order of first appearance of each sorted old label."""
    _, new = np.unique(labels, return_inverse=True)
    return new


@dataclass
class MDSResult:
    labels: np.ndarray  # (neuron,) cluster index
    stimuli: np.ndarray  # (cluster, height, width) in the model's normalised image units
    responses: np.ndarray  # (cluster stimulus, neuron) shift-tolerant normalised responses
    objective: list[float] = field(default_factory=list)
    objective_clusters: list[int] = field(default_factory=list)
    objective_step: list[str] = field(default_factory=list)
    seconds: float = 0.0
    final_objective: float = float("nan")


class MDSClustering:
    """The MDS loop around a centred model (see the module docstring)."""

    def __init__(
        self,
        model: torch.nn.Module,
        train_images: np.ndarray,
        *,
        tau: float = 1.6,
        steps: int = 100,
        learning_rate: float = 0.05,
        smoothing_px: float = 1.0,
        max_iterations: int = 20,
        max_clusters: int = 15,
        min_cluster_size: int = 3,
        split_tolerance: float = 0.0,
        shift_tolerance_px: float = 2.0,
        merge_drive: float = 0.5,
        include: np.ndarray | None = None,
        seed: int = 0,
        device: torch.device | str = "cpu",
    ) -> None:
        self.device = torch.device(device)
        self.model = model.to(self.device)
        self.tau = tau
        self.steps = steps
        self.learning_rate = learning_rate
        self.max_iterations = max_iterations
        self.max_clusters = max_clusters
        self.min_cluster_size = min_cluster_size
        self.split_tolerance = split_tolerance
        self.merge_drive = merge_drive
        self.seed = seed
        self.shape = train_images.shape[1:]
        images = torch.as_tensor(train_images, dtype=torch.float32, device=self.device)
        with torch.no_grad():
            train_responses = torch.cat(
                [self.model(images[i : i + 256, None]) for i in range(0, len(images), 256)]
            )
        n_neurons = train_responses.shape[1]
        include = np.ones(n_neurons, bool) if include is None else np.asarray(include, bool)
        if include.shape != (n_neurons,) or not include.any():
            raise ValueError("include must mark at least one of the model's neurons")
        #: the neurons that form the clusters (the others are assigned at the end)
        self.include = torch.as_tensor(np.flatnonzero(include), device=self.device)
        # Per-neuron response unit: the largest predicted response to a training image, so
        # that m_j is in units of "best natural image" and tau = 1.6 is on that scale.
        self.scale = train_responses.amax(dim=0).clamp_min(1e-6)
        #: normalised centred responses of the included neurons to the training images, z-scored
        profiles = (train_responses / self.scale)[:, self.include]
        self.profiles = zscore_rows(profiles.T.cpu().numpy())
        norms = train_images.reshape(len(train_images), -1)
        self.norm = float(np.median(np.linalg.norm(norms, axis=1)))
        self.low, self.high = float(train_images.min()), float(train_images.max())
        self.blur = _gaussian_kernel(smoothing_px).to(self.device) if smoothing_px > 0 else None
        self.generator = torch.Generator().manual_seed(seed)
        #: readout offsets (offset, 2), grid units (x, y), within ``shift_tolerance_px``
        self.offsets = _disk_offsets(shift_tolerance_px, self.shape).to(self.device)

    # -- pieces ---------------------------------------------------------------------------
    def normalised_responses(self, stimuli: torch.Tensor, every_neuron: bool = False):
        """(stimulus, neuron) responses divided by each neuron's largest training response.

        The included neurons only, unless ``every_neuron``.
        """
        response = self.model(stimuli[:, None]) / self.scale
        return response if every_neuron else response[:, self.include]

    def _project(self, x: torch.Tensor) -> torch.Tensor:
        # Fixed norm, then clipping; rescale once more so clipping does not shrink the norm much.
        for _ in range(2):
            x = x * (self.norm / x.flatten(1).norm(dim=1).clamp_min(1e-8))[:, None, None]
            x = x.clamp(self.low, self.high)
        return x

    def random_stimuli(self, k: int) -> torch.Tensor:
        noise = torch.randn((k, *self.shape), generator=self.generator).to(self.device)
        if self.blur is not None:
            noise = _smooth(noise, self.blur)
        return self._project(noise)

    def objective_terms(self, stimuli: torch.Tensor, membership: torch.Tensor) -> torch.Tensor:
        """L_k for each cluster k (its own stimulus); membership is (neuron, cluster) one-hot."""
        response = self.normalised_responses(stimuli)  # stimulus k, neuron
        mean = response @ membership / membership.sum(dim=0).clamp_min(1)  # stimulus k, cluster j
        own = torch.diagonal(mean)
        return own / self.tau - torch.logsumexp(mean / self.tau, dim=1)

    def optimise(self, labels: np.ndarray, stimuli: torch.Tensor) -> tuple[torch.Tensor, float]:
        """Gradient ascent on sum_k L_k for fixed labels; returns the stimuli and the objective.

        The objective is ``-sum_k w_k L_k`` with ``w_k`` cluster k's share of the neurons.
        """
        membership = F.one_hot(torch.as_tensor(labels, device=self.device)).float()
        x = stimuli.detach().clone().requires_grad_(True)
        optimiser = torch.optim.Adam([x], lr=self.learning_rate)
        for _ in range(self.steps):
            loss = -self.objective_terms(x, membership).sum()
            optimiser.zero_grad()
            loss.backward()
            if self.blur is not None:
                x.grad = _smooth(x.grad, self.blur)
            optimiser.step()
            with torch.no_grad():
                x.copy_(self._project(x))
        with torch.no_grad():
            share = membership.sum(dim=0) / membership.sum()
            objective = float(-(self.objective_terms(x, membership) * share).sum())
        return x.detach(), objective

    def reassign(self, stimuli: torch.Tensor) -> np.ndarray:
        with torch.no_grad():
            return self.normalised_responses(stimuli).argmax(dim=0).cpu().numpy()

    def refine(self, labels: np.ndarray, stimuli: torch.Tensor, result: MDSResult, step: str):
        """Optimise and reassign until no neuron moves; empty clusters are dropped."""
        objective = np.inf
        for _ in range(self.max_iterations):
            stimuli, objective = self.optimise(labels, stimuli)
            self._record(result, objective, stimuli.shape[0], step)
            new = self.reassign(stimuli)
            kept = np.unique(new)
            if len(kept) < stimuli.shape[0]:
                log.info("mds: dropping %d empty cluster(s)", stimuli.shape[0] - len(kept))
                stimuli = stimuli[torch.as_tensor(kept, device=self.device)]
                new = relabel(new)
            moved = len(new) != len(labels) or np.any(new != labels)
            same_clusters = len(kept) == membership_count(labels)
            labels = new
            if not moved and same_clusters:
                break
        else:
            stimuli, objective = self.optimise(labels, stimuli)
            self._record(result, objective, stimuli.shape[0], step)
        return labels, stimuli, objective

    @staticmethod
    def _record(result: MDSResult, objective: float, k: int, step: str) -> None:
        result.objective.append(objective)
        result.objective_clusters.append(k)
        result.objective_step.append(step)

    def split_candidates(self, labels: np.ndarray, cluster: int, k: int) -> np.ndarray | None:
        members = np.flatnonzero(labels == cluster)
        if len(members) < 2 * self.min_cluster_size:
            return None
        halves = kmeans(self.profiles[members], 2, seed=self.seed + cluster)
        if min(np.bincount(halves, minlength=2)) < self.min_cluster_size:
            return None
        new = labels.copy()
        new[members[halves == 1]] = k
        return new

    def tolerant_responses(self, stimuli: torch.Tensor, every_neuron: bool = False):
        """Like :meth:`normalised_responses`, each the largest over the readout offsets.

        A neuron's response to a stimulus is taken at the best readout position within
        ``shift_tolerance_px`` of its centred one: the centring is good to about a pixel, and a
        sub-pixel error is a phase shift of a fine grating (0.5 px is 36 degrees at a 5 px
        wavelength), which a type's MDS should not be penalised for.
        """
        if not hasattr(self.model, "shifted_responses") or len(self.offsets) == 1:
            return self.normalised_responses(stimuli, every_neuron)
        response = self.model.shifted_responses(stimuli[:, None], self.offsets).amax(dim=0)
        response = response / self.scale
        return response if every_neuron else response[:, self.include]

    def cross_drive(self, labels: np.ndarray, stimuli: torch.Tensor) -> np.ndarray:
        """(k, j): median over cluster j's members of (drive by MDS k) / (drive by MDS j).

        Drives are :meth:`tolerant_responses`; the diagonal is 1.
        """
        with torch.no_grad():
            response = self.tolerant_responses(stimuli).cpu().numpy()  # stimulus, neuron
        k = stimuli.shape[0]
        drive = np.ones((k, k))
        for j in range(k):
            members = labels == j
            if not members.any():
                continue
            own = np.maximum(response[j, members], 1e-6)
            drive[:, j] = np.median(response[:, members] / own, axis=1)
        return drive

    def mergeable(self, labels: np.ndarray, stimuli: torch.Tensor) -> list[tuple[float, int, int]]:
        """Pairs (drive, a, b) whose MDS drive each other's members alike, most alike first.

        ``drive`` is the smaller of the two cross drives (:meth:`cross_drive`): each cluster's
        members respond to the other's MDS at least ``merge_drive`` times as much as to their
        own. Two types each have a stimulus the other barely answers, so one of their cross
        drives stays low; two halves of one type answer both stimuli.
        """
        drive = self.cross_drive(labels, stimuli)
        both = np.minimum(drive, drive.T)
        pairs = [
            (float(both[a, b]), a, b)
            for a in range(len(both))
            for b in range(a + 1, len(both))
            if both[a, b] >= self.merge_drive
        ]
        return sorted(pairs, reverse=True)

    def merge(self, labels, stimuli, objective, result: MDSResult):
        """Merge the most alike mergeable pair and refine, until no pair is mergeable."""
        while stimuli.shape[0] > 1:
            pairs = self.mergeable(labels, stimuli)
            if not pairs:
                break
            drive, a, b = pairs[0]
            sizes = np.bincount(labels, minlength=stimuli.shape[0])
            keep, drop = (a, b) if sizes[a] >= sizes[b] else (b, a)
            merged = labels.copy()
            merged[merged == drop] = keep
            kept = torch.as_tensor(
                [j for j in range(stimuli.shape[0]) if j != drop], device=self.device
            )
            log.info(
                "mds: merging clusters %d and %d (%d clusters; cross drive %.2f >= %.2f)",
                a,
                b,
                stimuli.shape[0],
                drive,
                self.merge_drive,
            )
            labels, stimuli, objective = self.refine(
                relabel(merged), stimuli[kept], result, "merge"
            )
        return labels, stimuli, objective

    # -- the loop -------------------------------------------------------------------------
    def fit(self, initial_clusters: int = 5) -> MDSResult:
        started = time.perf_counter()
        labels = relabel(kmeans(self.profiles, initial_clusters, seed=self.seed))
        result = MDSResult(labels=labels, stimuli=np.empty(0), responses=np.empty(0))
        stimuli = self.random_stimuli(int(labels.max()) + 1)
        labels, stimuli, objective = self.refine(labels, stimuli, result, "optimise")
        labels, stimuli, objective = self.merge(labels, stimuli, objective, result)
        improved = True
        while improved and stimuli.shape[0] < self.max_clusters:
            improved = False
            sizes = np.bincount(labels)
            for cluster in np.argsort(-sizes, kind="stable"):
                k = stimuli.shape[0]
                candidate = self.split_candidates(labels, int(cluster), k)
                if candidate is None:
                    continue
                parent = stimuli[int(cluster)][None]
                trial_stimuli = torch.cat(
                    [stimuli, self._project(parent + 0.1 * self.random_stimuli(1))]
                )
                trial_result = MDSResult(labels=labels, stimuli=np.empty(0), responses=np.empty(0))
                new_labels, new_stimuli, new_objective = self.refine(
                    candidate, trial_stimuli, trial_result, "split"
                )
                accepted = (
                    new_stimuli.shape[0] > stimuli.shape[0]
                    and versus_chance(new_objective, new_stimuli.shape[0])
                    < versus_chance(objective, stimuli.shape[0]) - self.split_tolerance
                )
                alike = accepted and bool(self.mergeable(new_labels, new_stimuli))
                verdict = "kept" if accepted and not alike else "rejected"
                log.info(
                    "mds: split of cluster %d (%d -> %d clusters): objective %.4f -> %.4f, %s",
                    cluster,
                    stimuli.shape[0],
                    new_stimuli.shape[0],
                    objective,
                    new_objective,
                    verdict + (" (a pair would merge)" if alike else ""),
                )
                accepted = accepted and not alike
                if accepted:
                    for value, k_, step in zip(
                        trial_result.objective,
                        trial_result.objective_clusters,
                        trial_result.objective_step,
                        strict=True,
                    ):
                        self._record(result, value, k_, step)
                    labels, stimuli, objective = new_labels, new_stimuli, new_objective
                    improved = True
                    break
                self._record(result, new_objective, new_stimuli.shape[0], "rejected_split")
        # Every neuron, the excluded ones included, goes to the cluster whose MDS drives it most,
        # shift tolerant: a centring error of a pixel or two does not move a neuron across types.
        with torch.no_grad():
            responses = self.tolerant_responses(stimuli, every_neuron=True).cpu().numpy()
        labels = responses.argmax(axis=0)
        kept = np.unique(labels)
        if len(kept) < stimuli.shape[0]:
            log.info("mds: dropping %d empty cluster(s)", stimuli.shape[0] - len(kept))
            stimuli, responses = stimuli[torch.as_tensor(kept, device=self.device)], responses[kept]
            labels = relabel(labels)
        result.labels = labels
        result.stimuli = stimuli.cpu().numpy()
        result.responses = responses
        result.final_objective = objective
        result.seconds = time.perf_counter() - started
        log.info(
            "mds: %d clusters, objective %.4f, %.1f s",
            stimuli.shape[0],
            objective,
            result.seconds,
        )
        return result


def versus_chance(objective: float, k: int) -> float:
    """The objective relative to chance, ``-sum_k w_k L_k - log K``, comparable across K.

    ``-L_k`` is at least 0 and equals ``log K`` when no cluster's stimulus is told apart, so the
    raw objective grows with K by itself; splits are judged on the gain over chance.
    """
    return objective - float(np.log(k))


def membership_count(labels: np.ndarray) -> int:
    return len(np.unique(labels))


def _disk_offsets(radius_px: float, shape: tuple[int, int], step_px: float = 0.25) -> torch.Tensor:
    """Readout offsets (offset, 2) in grid units (x, y) on a ``step_px`` grid within the radius.

    The first offset is 0.
    """
    height, width = shape
    n = int(np.floor(radius_px / step_px))
    grid = np.arange(-n, n + 1) * step_px
    offsets = [(0.0, 0.0)] + [
        (dx, dy)
        for dy in grid
        for dx in grid
        if (dx or dy) and dx * dx + dy * dy <= radius_px**2 + 1e-9
    ]
    scale = np.array([2 / max(width - 1, 1), 2 / max(height - 1, 1)])
    return torch.as_tensor(np.array(offsets) * scale, dtype=torch.float32)


def _gaussian_kernel(sigma: float) -> torch.Tensor:
    radius = max(1, int(round(3 * sigma)))
    offsets = torch.arange(-radius, radius + 1, dtype=torch.float32)
    kernel = torch.exp(-(offsets**2) / (2 * sigma**2))
    return kernel / kernel.sum()


def _smooth(images: torch.Tensor, kernel: torch.Tensor) -> torch.Tensor:
    """Separable Gaussian blur of (k, height, width) images, reflecting at the borders."""
    radius = len(kernel) // 2
    x = images[:, None]
    x = F.conv2d(F.pad(x, (radius, radius, 0, 0), mode="reflect"), kernel[None, None, None, :])
    x = F.conv2d(F.pad(x, (0, 0, radius, radius), mode="reflect"), kernel[None, None, :, None])
    return x[:, 0]
