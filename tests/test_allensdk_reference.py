"""The Allen reader against AllenSDK itself: a simulated session in the real layout read by
``EcephysSession.from_nwb_path`` (AllenSDK 2.16) and by ``neurodag.io.allen_nwb.read_session``.

AllenSDK pins libraries this project cannot install beside its own (pandas 1.x, numpy < 1.24), so
it lives in a Python of its own, named by ``NEURODAG_ALLENSDK_PYTHON``; without it the test is
skipped. Set one up with (docs/data-model.md, Allen section):

    python3 -m venv /tmp/allensdk && /tmp/allensdk/bin/pip install allensdk==2.16.2
    /tmp/allensdk/bin/pip install --no-deps pynwb==4.2.0 platformdirs   # NWB 2.9 files
    NEURODAG_ALLENSDK_PYTHON=/tmp/allensdk/bin/python pytest tests/test_allensdk_reference.py

(AllenSDK's own pynwb 2.8 cannot read files written under the NWB 2.9 schema, which types the
electrodes table ``ElectrodesTable``; the newer pynwb reads them and AllenSDK runs on it.)
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from test_allen_stimuli import stimulus_pieces

from neurodag.io.allen_nwb import DEFAULT_UNIT_FILTER, read_session
from neurodag.simulate.allen import compose_session, write_nwb

ALLENSDK_PYTHON = os.environ.get("NEURODAG_ALLENSDK_PYTHON")
pytestmark = pytest.mark.skipif(
    not ALLENSDK_PYTHON, reason="NEURODAG_ALLENSDK_PYTHON (a Python with AllenSDK) not set"
)


@pytest.fixture(scope="module")
def both(tmp_path_factory):
    """One session (gratings, spontaneous cut in parts, scenes with a blank, flashes; units on
    invalid and out-of-brain channels; invalid times of every scope), read both ways."""
    folder = tmp_path_factory.mktemp("allensdk")
    path = write_nwb(
        compose_session(stimulus_pieces(), seed=6, n_filtered_units=6), folder / "session.nwb"
    )
    report = folder / "allensdk.json"
    dump = Path(__file__).with_name("allensdk_dump.py")
    run = subprocess.run(
        [ALLENSDK_PYTHON, str(dump), str(path), str(report)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    return read_session(path, dict(DEFAULT_UNIT_FILTER)), json.loads(report.read_text())


def test_units_as_allensdk_gives_them(both):
    ours, sdk = both
    assert list(ours.units.index) == sdk["units"]["id"]  # the same units, in the same order
    np.testing.assert_array_equal(
        ours.units["structure_acronym"].astype(str), sdk["units"]["structure_acronym"]
    )
    np.testing.assert_array_equal(ours.units["probe_id"], sdk["units"]["probe_id"])


def test_presentations_as_allensdk_gives_them(both):
    ours, sdk = both
    table = pd.concat(ours.presentations.values()).sort_index()
    reference = pd.DataFrame(sdk["presentations"]).set_index("id")
    assert list(table.index) == list(reference.index)
    np.testing.assert_array_equal(table["start_time"], reference["start_time"])
    np.testing.assert_array_equal(table["stop_time"], reference["stop_time"])
    invalid = table["invalid_presentation"].to_numpy(dtype=bool)
    assert invalid.any()  # the session has presentations over a `stimulus` invalid interval
    np.testing.assert_array_equal(reference["stimulus_name"] == "invalid_presentation", invalid)
    valid = reference[~invalid]
    np.testing.assert_array_equal(table["stimulus_name"][~invalid], valid["stimulus_name"])
    np.testing.assert_array_equal(
        table["stimulus_condition_id"][~invalid], valid["stimulus_condition_id"].astype(int)
    )


def test_epochs_as_allensdk_gives_them(both):
    ours, sdk = both
    reference = pd.DataFrame(sdk["epochs"])
    assert (reference["stimulus_name"] == "spontaneous").sum() >= 2  # a spontaneous epoch each
    np.testing.assert_array_equal(ours.epochs["stimulus"], reference["stimulus_name"])
    np.testing.assert_array_equal(ours.epochs["start"], reference["start_time"])
    np.testing.assert_array_equal(ours.epochs["stop"], reference["stop_time"])
