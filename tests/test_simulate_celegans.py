"""neurodag simulate celegans: seeded NWB worms on the consensus connectome, and truth.nc."""

import numpy as np
import pytest
from conftest import run_cli

from neurodag.config import defaults
from neurodag.io.celegans_nwb import read_celegans_nwb
from neurodag.io.formats import read as ingest_read
from neurodag.io.netcdf import open_dataset
from neurodag.simulate.celegans import simulate_celegans, simulation_defaults, write_files

SMALL = {"n_worms": 3, "duration_s": 60.0, "epoch_s": 15.0, "seed": 3, "recorded_fraction": 0.25}


@pytest.fixture(scope="module")
def small_simulation(tmp_path_factory, packaged_connectome):
    folder = tmp_path_factory.mktemp("worms")
    options = {**simulation_defaults(), **SMALL}
    recordings, truth, _ = simulate_celegans(options, connectome=packaged_connectome)
    paths = write_files(folder, recordings, truth, options)
    return folder, paths, recordings, truth


def test_same_seed_same_worms_other_seed_other_worms(packaged_connectome):
    a, _, _ = simulate_celegans({**SMALL, "n_worms": 1}, connectome=packaged_connectome)
    b, _, _ = simulate_celegans({**SMALL, "n_worms": 1}, connectome=packaged_connectome)
    c, _, _ = simulate_celegans({**SMALL, "n_worms": 1, "seed": 4}, connectome=packaged_connectome)
    np.testing.assert_array_equal(a[0].traces, b[0].traces)
    assert a[0].labels == b[0].labels
    assert not np.array_equal(a[0].labels, c[0].labels)


def test_nwb_round_trip_is_exact(small_simulation):
    folder, paths, recordings, truth = small_simulation
    assert [p.name for p in paths] == ["worm000.nwb", "worm001.nwb", "worm002.nwb", "truth.nc"]
    for path, written in zip(paths[:-1], recordings, strict=True):
        read = read_celegans_nwb(path)
        np.testing.assert_array_equal(read.traces, written.traces)
        np.testing.assert_array_equal(read.timestamps, written.timestamps)
        assert read.labels == written.labels
        assert read.epochs == written.epochs
        assert read.identifier == written.identifier


def test_nwbinspector_finds_no_errors(small_simulation):
    from nwbinspector import Importance, inspect_nwbfile

    messages = list(inspect_nwbfile(nwbfile_path=str(small_simulation[0] / "worm000.nwb")))
    serious = [
        m for m in messages if m.importance.value >= Importance.BEST_PRACTICE_VIOLATION.value
    ]
    assert not serious, [m.message for m in serious]


def test_truth_describes_groups_epochs_and_labels(small_simulation):
    folder, _, recordings, truth = small_simulation
    saved = open_dataset(folder / "truth.nc")
    assert saved.sizes["worm"] == 3 and saved.sizes["neuron"] == 300
    assert saved["group_member"].sum("neuron").values.tolist() == [12, 12, 12]
    assert saved["group_member"].sum("group").max() == 1  # disjoint
    assert not saved["group_active"].isel(epoch=0).any()  # first epoch spontaneous
    assert saved["group_active"].isel(epoch=slice(1, None)).any("epoch").all()
    np.testing.assert_allclose(saved["epoch_start"].values, [0, 15, 30, 45])
    for w, recording in enumerate(recordings):
        n = len(recording.labels)
        assert list(saved["roi_label"].values[w, :n]) == recording.labels
        status = saved["label_status"].values[w, :n]
        true = saved["roi_neuron"].values[w, :n]
        for label, s, name in zip(recording.labels, status, true, strict=True):
            expected = {"correct": name, "uncertain": f"{name}?", "unlabeled": ""}
            if s == "wrong":
                assert label != name and not saved["recorded"].sel(
                    worm=f"worm{w:03d}", neuron=label
                )
            else:
                assert label == expected[s]
        assert saved["recorded"].values[w].sum() == n


def test_planted_groups_co_activate_only_in_their_epochs(small_simulation):
    truth = small_simulation[3]
    rate = truth["true_rate"].values
    for epoch in range(truth.sizes["epoch"]):
        in_epoch = (
            (truth.time >= truth.epoch_start[epoch] + 3) & (truth.time < truth.epoch_stop[epoch])
        ).values
        for group in range(truth.sizes["group"]):
            members = np.flatnonzero(truth["group_member"].values[group])
            corr = np.mean(
                [
                    np.corrcoef(rate[w][in_epoch][:, members].T)[
                        np.triu_indices(members.size, 1)
                    ].mean()
                    for w in range(truth.sizes["worm"])
                ]
            )
            if truth["group_active"].values[epoch, group]:
                assert corr > 0.6, (epoch, group, corr)
            elif epoch == 0:
                assert corr < 0.3, (epoch, group, corr)


@pytest.mark.slow
def test_cli_writes_the_files(tmp_path):
    spec = (
        '{"kind": "celegans", "format": "simulated", "simulate": {"n_worms": 1, "duration_s": 20}}'
    )
    result = run_cli("simulate", "celegans", "--spec", spec, "--output", str(tmp_path / "w"))
    assert result.returncode == 0, result.stderr
    assert sorted(p.name for p in (tmp_path / "w").iterdir()) == ["truth.nc", "worm000.nwb"]


def test_cli_refuses_a_dataset_that_is_not_simulated(tmp_path):
    spec = '{"kind": "celegans", "format": "celegans-nwb", "path": "x"}'
    result = run_cli("simulate", "celegans", "--spec", spec, "--output", str(tmp_path / "w"))
    assert result.returncode == 2
    assert "simulated" in result.stderr


def test_planted_behaviour_follows_its_groups_and_is_written(small_simulation):
    folder, paths, recordings, truth = small_simulation
    assert truth["behavior_group"].sel(variable="reversal") == 0
    assert truth["behavior_group"].sel(variable="velocity") == 1
    member = truth["group_member"].values
    rate = truth["true_rate"].values
    reversal = truth["true_behavior"].sel(variable="reversal").values
    velocity = truth["true_behavior"].sel(variable="velocity").values
    assert set(np.unique(reversal)) == {0.0, 1.0}
    # the group commands reversals: they fall in its epochs, where it is driven
    epoch = np.searchsorted(truth["epoch_start"].values, truth.time.values, side="right") - 1
    active = np.broadcast_to(truth["group_active"].values[epoch, 0], reversal.shape)
    assert reversal[active].mean() > 0.03 and reversal[~active].mean() < 0.01
    # while reversing the commanding group is active, far more than any other group
    rise = [
        rate[:, :, m].mean(axis=2)[reversal > 0].mean()
        - rate[:, :, m].mean(axis=2)[reversal == 0].mean()
        for m in member
    ]
    assert rate[:, :, member[0]].mean(axis=2)[reversal > 0].mean() > 0.5
    assert rise[0] > 0.2 and rise[0] > max(rise[1:]) + 0.1, rise
    forward = reversal == 0
    speed_rate = rate[:, :, member[1]].mean(axis=2)
    assert np.corrcoef(speed_rate[forward], velocity[forward])[0, 1] > 0.99
    assert (velocity[~forward] < 0).all() and (velocity[forward] > 0).all()
    for path, written in zip(paths[:-1], recordings, strict=True):
        read = read_celegans_nwb(path)
        assert set(read.behaviour) == {"velocity", "reversal"}
        for name, values in written.behaviour.items():
            np.testing.assert_array_equal(read.behaviour[name], values)
        assert read.behaviour_units == {"velocity": "mm/s", "reversal": "1"}
    spec = {"kind": "celegans", "format": "simulated"}
    params = {**defaults("stages.ingest.celegans"), "behavior": ["reversal"]}
    ds = ingest_read(spec, "worm000", [paths[0]], params)
    assert ds["behavior"].dims == ("worm", "time", "variable")
    np.testing.assert_array_equal(
        ds["behavior"].values[0, :, 0], recordings[0].behaviour["reversal"]
    )


def test_behaviour_is_a_readout_unless_it_feeds_back(packaged_connectome):
    options = {**SMALL, "n_worms": 1, "duration_s": 40.0}
    plain, truth, _ = simulate_celegans(options, connectome=packaged_connectome)
    other, truth_other, _ = simulate_celegans(
        {**options, "reversal_rate_hz": 1.0}, connectome=packaged_connectome
    )
    np.testing.assert_array_equal(plain[0].traces, other[0].traces)
    assert truth_other["true_behavior"].sel(variable="reversal").sum() > 0
    fed, _, _ = simulate_celegans(
        {**options, "reversal_rate_hz": 1.0, "reversal_drive": 2.0},
        connectome=packaged_connectome,
    )
    assert not np.array_equal(plain[0].traces, fed[0].traces)
