"""The mds stage: metrics, the model's centring, the MDS constraints, and the CLI end to end."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from conftest import run_cli
from hypothesis import given, settings
from hypothesis import strategies as st

from neurodag.mds.clustering import (
    MDSClustering,
    MDSResult,
    kmeans,
    versus_chance,
)
from neurodag.mds.model import (
    ResponseModel,
    column_correlation,
    search_positions,
    sta_positions,
)
from neurodag.partitions import adjusted_rand

torch.set_num_threads(1)


@given(st.lists(st.integers(0, 4), min_size=2, max_size=40), st.permutations(range(5)))
@settings(max_examples=50, deadline=None)
def test_ari_is_one_for_relabelled_partitions(labels, permutation):
    labels = np.array(labels)
    assert adjusted_rand(labels, np.array(permutation)[labels]) == pytest.approx(1.0)


def test_ari_is_near_zero_for_random_labels():
    rng = np.random.default_rng(0)
    a, b = rng.integers(0, 6, 3000), rng.integers(0, 6, 3000)
    assert abs(adjusted_rand(a, b)) < 0.01
    # Known small case: ARI of [0,0,1,1] vs [0,0,0,1] is 0 (Hubert & Arabie).
    assert adjusted_rand([0, 0, 1, 1], [0, 0, 0, 1]) == pytest.approx(0.0)


def test_kmeans_recovers_separated_blobs():
    rng = np.random.default_rng(1)
    centres = rng.normal(0, 10, (4, 3))
    truth = np.repeat(np.arange(4), 25)
    data = centres[truth] + rng.normal(0, 0.5, (100, 3))
    assert adjusted_rand(truth, kmeans(data, 4, seed=0)) == pytest.approx(1.0)


def test_versus_chance_is_zero_at_chance():
    assert versus_chance(float(np.log(7)), 7) == pytest.approx(0.0)


def test_column_correlation():
    a = np.random.default_rng(2).normal(size=(50, 3))
    assert np.allclose(column_correlation(a, 2 * a + 1), 1.0)
    assert column_correlation(a, np.ones_like(a)).tolist() == [0.0, 0.0, 0.0]


def test_sta_finds_the_pixel_a_neuron_reads():
    rng = np.random.default_rng(3)
    images = rng.normal(size=(400, 16, 20))
    responses = np.maximum(images[:, 5, 12], 0)[:, None]
    x, y = sta_positions(images, responses, smooth_px=0.5)[0]
    assert (x + 1) / 2 * 19 == pytest.approx(12) and (y + 1) / 2 * 15 == pytest.approx(5)


def _tiny_model(n_neurons=6, seed=0):
    torch.manual_seed(seed)
    model = ResponseModel(n_neurons, channels=3, first_kernel=5, second_kernel=3)
    with torch.no_grad():
        model.position.uniform_(-0.8, 0.8)
    return model.eval()


def test_centred_model_reads_every_neuron_at_the_centre():
    model = _tiny_model()
    centred = model.centred((15, 15))
    image = torch.zeros(1, 1, 15, 15)
    image[0, 0, 7, 7] = 3.0
    # Moving the image off-centre changes a centred model's response; the original's positions
    # are left as they were and nothing of the centred copy trains.
    assert not torch.allclose(centred(image), centred(torch.roll(image, 4, dims=3)))
    assert not torch.equal(model.position, torch.zeros_like(model.position))
    assert not any(p.requires_grad for p in centred.parameters())


def test_centring_puts_each_receptive_field_at_the_centre():
    # Two neurons of one "type" (same feature weights) read at places 3 px apart: the centred
    # model must make them respond alike, and put every RF centre at the image centre.
    model = _tiny_model(3)
    size = 31
    with torch.no_grad():
        model.features[1] = model.features[0]
        model.bias[1] = model.bias[0]
        model.position[0] = torch.tensor([-0.2, 0.1])
        model.position[1] = model.position[0] + torch.tensor([3 * 2 / (size - 1), 0.0])
    before = model.receptive_field_centres((size, size))
    assert torch.allclose(before[1] - before[0], torch.tensor([3 * 2 / (size - 1), 0.0]), atol=1e-4)
    centred = model.centred((size, size))
    centres = centred.receptive_field_centres((size, size))
    assert torch.all(centres.abs() < 0.2 * 2 / (size - 1))
    images = torch.as_tensor(np.random.default_rng(6).normal(size=(20, 1, size, size))).float()
    with torch.no_grad():
        response = centred(images)
    assert torch.allclose(response[:, 0], response[:, 1], rtol=1e-3, atol=1e-5)


@pytest.mark.slow
def test_mds_stimuli_keep_the_norm_and_range_and_are_deterministic():
    images = np.random.default_rng(4).normal(size=(30, 15, 15))
    labels = np.array([0, 0, 1, 1, 2, 2])

    def run():
        mds = MDSClustering(_tiny_model().centred((15, 15)), images, steps=15, seed=1)
        return mds, *mds.optimise(labels, mds.random_stimuli(3))

    mds, stimuli, objective = run()
    norms = stimuli.flatten(1).norm(dim=1).numpy()
    assert np.all(norms <= mds.norm * 1.0001) and np.all(norms > 0.8 * mds.norm)
    assert stimuli.min() >= mds.low - 1e-6 and stimuli.max() <= mds.high + 1e-6
    assert objective >= 0
    _, again, objective_again = run()
    assert torch.equal(stimuli, again) and objective == objective_again


def test_objective_weighs_each_cluster_by_its_share_of_neurons():
    images = np.random.default_rng(8).normal(size=(30, 15, 15))
    labels = np.array([0, 0, 0, 0, 0, 1, 2, 2])
    mds = MDSClustering(_tiny_model(8).centred((15, 15)), images, steps=3, seed=0)
    stimuli, objective = mds.optimise(labels, mds.random_stimuli(3))
    membership = torch.nn.functional.one_hot(torch.as_tensor(labels)).float()
    with torch.no_grad():
        terms = mds.objective_terms(stimuli, membership).numpy()
    assert objective == pytest.approx(-(terms * np.array([5, 1, 2]) / 8).sum(), rel=1e-5)


def test_fit_returns_consistent_outputs():
    images = np.random.default_rng(5).normal(size=(40, 15, 15))
    mds = MDSClustering(
        _tiny_model(8).centred((15, 15)), images, steps=10, max_iterations=3, seed=0
    )
    result = mds.fit(initial_clusters=3)
    k = result.stimuli.shape[0]
    assert set(np.unique(result.labels)) == set(range(k))  # no empty cluster is kept
    assert result.responses.shape == (k, 8)
    assert len(result.objective) == len(result.objective_step) == len(result.objective_clusters)


def test_excluded_neurons_only_get_assigned_at_the_end():
    images = np.random.default_rng(7).normal(size=(40, 15, 15))
    include = np.array([True] * 6 + [False] * 4)
    mds = MDSClustering(
        _tiny_model(10).centred((15, 15)), images, steps=10, max_iterations=3, include=include
    )
    assert mds.profiles.shape[0] == 6
    result = mds.fit(initial_clusters=2)
    assert result.labels.shape == (10,) and result.responses.shape[1] == 10
    # Every neuron ends in the cluster whose MDS drives it most (shift tolerant).
    assert np.array_equal(result.labels, result.responses.argmax(axis=0))
    with torch.no_grad():
        tolerant = mds.tolerant_responses(torch.as_tensor(result.stimuli), every_neuron=True)
    assert np.allclose(result.responses, tolerant.numpy())
    with pytest.raises(ValueError, match="include"):
        MDSClustering(_tiny_model(10).centred((15, 15)), images, include=np.zeros(10, bool))


def _typed_model(shift_px: float, per_type: int = 4, n_types: int = 3, size: int = 15):
    """Three types, each reading its own core channel; type 0's second half reads ``shift_px``
    to the right, as a centring error of that size would leave it (seeded random core)."""
    torch.manual_seed(0)
    model = ResponseModel(per_type * n_types, channels=n_types, first_kernel=5, second_kernel=3)
    types = torch.arange(per_type * n_types) // per_type
    with torch.no_grad():
        model.features.copy_(3 * torch.eye(n_types)[types])
        model.bias.fill_(-1.0)
        model.position.zero_()
        model.position[per_type // 2 : per_type, 0] = shift_px * 2 / (size - 1)
    for parameter in model.parameters():
        parameter.requires_grad_(False)
    return model.eval(), types.numpy()


def test_merge_joins_two_halves_of_one_type_and_keeps_types_apart():
    model, truth = _typed_model(shift_px=0.75)
    images = np.random.default_rng(0).normal(size=(40, 15, 15))
    # The tiny core sees 7 px; a 1 px tolerance is to it what 2 px is to the default model.
    mds = MDSClustering(model, images, steps=30, max_iterations=5, seed=0, shift_tolerance_px=1.0)
    trace = MDSResult(labels=truth, stimuli=np.empty(0), responses=np.empty(0))
    split = truth.copy()
    split[[2, 3]] = 3  # type 0 cut in two: its shifted half is a cluster of its own
    labels, stimuli, objective = mds.refine(split, mds.random_stimuli(4), trace, "optimise")
    assert adjusted_rand(split, labels) == pytest.approx(1.0)  # the refinement keeps the cut
    pairs = mds.mergeable(labels, stimuli)
    assert [(a, b) for _, a, b in pairs] == [(0, 3)]  # the halves, and no pair of types
    merged, merged_stimuli, _ = mds.merge(labels, stimuli, objective, trace)
    assert adjusted_rand(truth, merged) == pytest.approx(1.0)
    assert merged_stimuli.shape[0] == 3 and "merge" in trace.objective_step
    # The planted types themselves are kept apart.
    labels, stimuli, _ = mds.refine(truth, mds.random_stimuli(3), trace, "optimise")
    assert adjusted_rand(truth, labels) == pytest.approx(1.0)
    assert mds.mergeable(labels, stimuli) == []


def test_tolerant_responses_are_the_best_over_readout_offsets():
    model, _ = _typed_model(shift_px=0.0)
    images = np.random.default_rng(1).normal(size=(20, 15, 15))
    stimuli = torch.as_tensor(images[:3], dtype=torch.float32)
    strict = MDSClustering(model, images, shift_tolerance_px=0.0)
    tolerant = MDSClustering(model, images, shift_tolerance_px=1.0)
    assert len(strict.offsets) == 1 and len(tolerant.offsets) == 49
    with torch.no_grad():
        plain = strict.tolerant_responses(stimuli)
        best = tolerant.tolerant_responses(stimuli)
    assert torch.equal(plain, strict.normalised_responses(stimuli))
    assert torch.all(best >= plain) and torch.any(best > plain * 1.01)


def test_position_search_moves_a_readout_back_onto_its_receptive_field():
    # A teacher model's responses; the student reads neuron 0 two pixels off (a side lobe).
    teacher = _tiny_model(2, seed=4)
    size = 15
    with torch.no_grad():
        teacher.position.copy_(torch.tensor([[0.1, -0.2], [-0.3, 0.3]]))
        teacher.bias.fill_(0.5)
    images = torch.as_tensor(np.random.default_rng(9).normal(size=(300, 1, size, size))).float()
    with torch.no_grad():
        responses = teacher(images)
    student = _tiny_model(2, seed=4)
    with torch.no_grad():
        student.load_state_dict(teacher.state_dict())
        student.position[0, 0] += 2 * 2 / (size - 1)
        student.features[0] *= 0.5
    moved = search_positions(student, images, responses, 3.0)
    assert moved.tolist() == [True, False]
    assert torch.allclose(student.position, teacher.position, atol=1e-5)
    assert torch.allclose(student.features, teacher.features, atol=1e-2)


@pytest.fixture(scope="module")
def ingest_files(tmp_path_factory):
    """A contract-shaped ingest file (and truth) written from the functional-types piece."""
    from neurodag.io.netcdf import write_dataset
    from neurodag.simulate.functional_types import functional_types, sample_responses

    folder = tmp_path_factory.mktemp("mds")
    piece = functional_types(neurons_per_type=5, n_images=150, repeats=2, seed=2)
    responses = sample_responses(piece, seed=3)
    ingest = write_dataset(responses, folder / "session" / "natural_scenes.nc", stage="ingest")
    truth = write_dataset(piece[["true_type"]], folder / "truth.nc", stage="simulate")
    return ingest, truth


FAST_PARAMS = {
    "model": {"max_epochs": 8, "patience": 3},
    "clustering": {"steps": 10, "max_iterations": 2, "max_clusters": 6, "initial_clusters": 3},
}


@pytest.mark.slow
def test_cli_end_to_end(ingest_files, tmp_path):
    from neurodag.io.netcdf import open_dataset, provenance

    ingest, truth = ingest_files
    out = tmp_path / "allen.nc"
    result = run_cli(
        "mds", "--input", str(ingest), "--params", json.dumps(FAST_PARAMS),
        "--device", "cpu", "--truth", str(truth), "-o", str(out),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    ds = open_dataset(out)
    assert ds.sizes["neuron"] == 30
    assert ds["mds"].dims == ("cluster_id", "y", "x")
    assert set(np.unique(ds["cluster"].values)) == set(range(ds.sizes["cluster_id"]))
    assert ds.sizes["step"] >= 1
    assert -1 <= ds.attrs["held_out_correlation_median"] <= 1
    assert ds["validation_n_true_types"].item() == 6
    assert ds["validation_n_clusters"].item() == ds.sizes["cluster_id"]
    assert "validation_ari" in ds and "validation_ari_kmeans_mean_response" in ds
    assert provenance(ds)["stage"] == "mds"
    assert (tmp_path / "allen.mds.png").stat().st_size > 0


def test_cli_rejects_a_region_with_no_neurons(ingest_files, tmp_path):
    ingest, _ = ingest_files
    out = tmp_path / "none.nc"
    params = {**FAST_PARAMS, "regions": ["CA1"]}
    result = run_cli("mds", "--input", str(ingest), "--params", json.dumps(params), "-o", str(out))
    assert result.returncode == 2
    assert "region" in result.stderr and str(ingest) in result.stderr
    assert not out.exists()
