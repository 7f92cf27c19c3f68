"""Connectome readers and consensus on the real connectomes the wormneuroatlas package ships."""

import logging

import numpy as np
import pytest

from neurodag.homogenize.connectomes import build_connectome, consensus_weights
from neurodag.io.wormneuroatlas import data_dir, read_default_h5, read_nemanode_tsv


def test_layout(packaged_connectome):
    ds = packaged_connectome
    assert ds.sizes["pre"] == ds.sizes["post"] == 300
    assert list(ds.synapse.values) == ["chemical", "electrical", "functional"]
    assert list(ds.source.values) == [
        "white_1986_whole",
        "witvliet_2020_7",
        "witvliet_2020_8",
        "wormneuroatlas_default",
        "randi_2023",
        "consensus",
    ]
    # A source measures only its own synapse types; the rest is NaN, not a fake zero.
    assert ds.weight.sel(source="white_1986_whole", synapse="functional").isnull().all()
    assert ds.weight.sel(source="randi_2023", synapse="chemical").isnull().all()


@pytest.mark.parametrize(("pre", "post"), [("AIYL", "AIZL"), ("ASHL", "AVAL"), ("ADEL", "ADAL")])
def test_known_chemical_edges_in_every_reconstruction(packaged_connectome, pre, post):
    chem = packaged_connectome.weight.sel(synapse="chemical", pre=pre, post=post)
    for source in ("white_1986_whole", "witvliet_2020_7", "witvliet_2020_8", "consensus"):
        assert chem.sel(source=source) > 0, source
    assert packaged_connectome.support.sel(synapse="chemical", pre=pre, post=post) == 3


def test_direction_is_pre_to_post(packaged_connectome):
    # White 1986: AVDL makes 13 chemical synapses onto AVAL, AVAL 1 onto AVDL.
    chem = packaged_connectome.weight.sel(source="white_1986_whole", synapse="chemical")
    assert chem.sel(pre="AVDL", post="AVAL") == 13
    assert chem.sel(pre="AVAL", post="AVDL") == 1
    # AVAL -> AVBL is absent from all three reconstructions; AVAL -> AVBR is in White 1986.
    assert chem.sel(pre="AVAL", post="AVBR") == 1
    assert packaged_connectome.support.sel(synapse="chemical", pre="AVAL", post="AVBL") == 0


def test_gap_junctions_symmetric_everywhere(packaged_connectome):
    gap = packaged_connectome.weight.sel(synapse="electrical")
    for source in gap.source.values:
        matrix = gap.sel(source=source).values
        if not np.isnan(matrix).all():
            np.testing.assert_array_equal(matrix, matrix.T, err_msg=str(source))
    assert gap.sel(source="consensus", pre="AVAL", post="AVAR") > 0


def test_consensus_is_mean_of_nonzero_with_support():
    a = {"chemical": np.array([[0, 2], [4, 0.0]]), "electrical": np.zeros((2, 2))}
    b = {"chemical": np.array([[0, 4], [0, 0.0]]), "electrical": np.zeros((2, 2))}
    consensus, support = consensus_weights([a, b])
    np.testing.assert_array_equal(consensus["chemical"], [[0, 3], [4, 0]])
    np.testing.assert_array_equal(support["chemical"], [[0, 2], [1, 0]])


def test_consensus_matches_sources(packaged_connectome):
    ds = packaged_connectome
    recon = ds.weight.sel(source=["white_1986_whole", "witvliet_2020_7", "witvliet_2020_8"])
    for synapse in ("chemical", "electrical"):
        stack = recon.sel(synapse=synapse).values
        count = (stack > 0).sum(axis=0)
        expected = np.where(count > 0, stack.sum(axis=0) / np.maximum(count, 1), 0)
        got = ds.weight.sel(source="consensus", synapse=synapse).values
        np.testing.assert_allclose(got, expected, rtol=1e-6)
        np.testing.assert_array_equal(ds.support.sel(synapse=synapse).values, count)


def test_default_h5_is_read_in_its_own_neuron_order():
    """The compiled default must agree with the sum of the edge lists it was compiled from;
    reading its axis in neuron_ids.txt order instead gives an unrelated matrix."""
    folder = data_dir()
    names = ["white_1986_whole", "white_1986_L4", "witvliet_2020_7", "witvliet_2020_8"]
    parts = [read_nemanode_tsv(folder / f"aconnectome_{n}.csv") for n in names]
    default = read_default_h5(folder / "aconnectome_default.h5")
    for synapse, floor in (("chemical", 0.75), ("electrical", 0.95)):
        total = sum(p[synapse] for p in parts).ravel()
        r = np.corrcoef(total, default[synapse].ravel())[0, 1]
        assert r > floor, (synapse, r)


def test_functional_atlas(packaged_connectome):
    ds = packaged_connectome
    q, dff, trials = ds.functional_q.values, ds.functional_dff.values, ds.functional_trials.values
    measured = np.isfinite(dff)
    assert ((q[np.isfinite(q)] >= 0) & (q[np.isfinite(q)] <= 1)).all()
    assert (trials[measured] > 0).all()
    functional = ds.weight.sel(source="consensus", synapse="functional").values
    significant = measured & (q < 0.05)
    np.testing.assert_allclose(functional[significant], dff[significant], rtol=1e-6)
    assert (functional[~significant] == 0).all()
    assert significant.sum() > 500


def test_functional_threshold_parameter():
    spec = {"kind": "connectome", "format": "wormneuroatlas", "sources": ["randi_2023"]}
    strict = build_connectome(spec, {"functional_q_max": 0.001, "consensus_sources": None})
    loose = build_connectome(spec, {"functional_q_max": 0.05})
    count = lambda ds: int((ds.weight.sel(source="consensus", synapse="functional") != 0).sum())  # noqa: E731
    assert 0 < count(strict) < count(loose)


def test_non_neuronal_cells_are_logged_by_name(caplog):
    with caplog.at_level(logging.WARNING):
        build_connectome(
            {"kind": "connectome", "format": "wormneuroatlas", "sources": ["witvliet_2020_7"]}
        )
    text = caplog.text
    assert "BWM-DL01" in text and "CEPshDL" in text and "excluded" in text
