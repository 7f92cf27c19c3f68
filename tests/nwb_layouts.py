"""Small NWB spiking sessions in the layouts labs write (NeuroConv / DANDI best practice), built
with pynwb: units with or without an ``electrodes`` reference, a ``location`` column on units,
trials with event columns (NaN where the event did not happen), epochs with tags, and a
behavioural SpatialSeries in ``processing/behavior``.

The spikes are seeded Poisson trains: every unit fires at ``BASE_HZ`` and, from each trial's
go cue for ``RESPONSE_S``, at a rate set by the trial's target (units of the first probe prefer
target 0 deg, those of the second 180 deg), so a test can check counts and alignment against the
spike times it wrote.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import numpy as np

BASE_HZ = 5.0
RESPONSE_S = 0.3
DURATION_S = 60.0
N_TRIALS = 24
REGIONS = ("CA1", "VISp")
TARGETS = (0, 180)  # target direction (deg); units of REGIONS[k] prefer TARGETS[k]


def write_session(
    path: str | Path,
    *,
    seed: int = 0,
    n_units: int = 8,
    electrodes_ref: bool = True,
    location_column: bool = False,
    trials: bool = True,
    nan_events: int = 3,
    epochs: bool = True,
    behavior: bool = True,
    units: bool = True,
) -> dict:
    """Write the session; returns what was planted (spike times per unit, unit regions, trial
    table as arrays)."""
    from pynwb import NWBHDF5IO, NWBFile
    from pynwb.behavior import Position, SpatialSeries
    from pynwb.file import Subject
    from pynwb.misc import Units

    rng = np.random.default_rng(seed)
    nwb = NWBFile(
        session_description="Generic-layout test session: units, trials, epochs, behaviour.",
        identifier=f"neurodag-generic-{seed}",
        session_start_time=datetime(2024, 1, 1, 12, 0, tzinfo=UTC),
        session_id=f"generic{seed}",
        experimenter=["Doe, Jane"],
        lab="Test lab",
        institution="Test institution",
        experiment_description="A seeded session written by the neurodag tests.",
        keywords=["neuropixels", "test"],
        subject=Subject(
            subject_id="mouse1", species="Mus musculus", sex="F", age="P90D", description="test"
        ),
    )
    # trials: a go cue 0.2-0.5 s after each start (NaN for the first nan_events: aborted trials)
    starts = np.arange(N_TRIALS) * 2.0 + 5.0
    go = starts + rng.uniform(0.2, 0.5, N_TRIALS)
    go[:nan_events] = np.nan
    target = rng.choice(TARGETS, N_TRIALS)
    target[nan_events : nan_events + 2] = TARGETS  # both targets among the kept trials
    stops = starts + 1.5
    region_of = np.array([REGIONS[u % 2] for u in range(n_units)])
    spikes = []
    for u in range(n_units):
        t = np.sort(rng.uniform(0, DURATION_S, rng.poisson(BASE_HZ * DURATION_S)))
        extra = []
        for g, k in zip(go, target, strict=True):
            if np.isfinite(g):
                rate = 40.0 if k == TARGETS[u % 2] else 10.0
                extra.append(g + rng.uniform(0, RESPONSE_S, rng.poisson(rate * RESPONSE_S)))
        spikes.append(np.sort(np.concatenate([t, *extra])))
    if units:
        device = nwb.create_device(name="probe_device", description="Neuropixels 1.0")
        groups = [
            nwb.create_electrode_group(
                name=f"probe{k}", description=f"shank {k}", location=region, device=device
            )
            for k, region in enumerate(REGIONS)
        ]
        for channel in range(4):
            nwb.add_electrode(group=groups[channel % 2], location=REGIONS[channel % 2])
        nwb.units = Units(name="units", description="sorted units", resolution=1 / 30000)
        if location_column:
            nwb.add_unit_column(name="location", description="brain area of the unit")
        nwb.add_unit_column(name="snr", description="signal-to-noise ratio")
        for u in range(n_units):
            kwargs = {"spike_times": spikes[u], "snr": float(1.0 + u)}
            if electrodes_ref:
                kwargs["electrodes"] = [u % 4]
            if location_column:
                kwargs["location"] = region_of[u]
            nwb.add_unit(**kwargs)
    if trials:
        nwb.add_trial_column(name="go_cue_time", description="time of the go cue (s)")
        nwb.add_trial_column(name="target", description="target direction (deg)")
        for row in range(N_TRIALS):
            nwb.add_trial(
                start_time=starts[row],
                stop_time=stops[row],
                go_cue_time=go[row],
                target=int(target[row]),
            )
    if epochs:
        nwb.add_epoch(start_time=0.0, stop_time=4.5, tags=["spontaneous"])
        nwb.add_epoch(start_time=4.5, stop_time=DURATION_S, tags=["task"])
    if behavior:
        module = nwb.create_processing_module(name="behavior", description="wheel position")
        position = Position(name="Position")
        rate = 20.0
        n = int(DURATION_S * rate)
        xy = np.stack([np.sin(np.arange(n) / 50), np.cos(np.arange(n) / 50)], axis=1)
        position.add_spatial_series(
            SpatialSeries(
                name="position",
                description="x, y of the animal",
                data=xy,
                starting_time=0.0,
                rate=rate,
                reference_frame="arena centre",
                unit="meters",
            )
        )
        module.add(position)
    with NWBHDF5IO(str(path), "w") as io:
        io.write(nwb)
    return {
        "spikes": spikes,
        "region": region_of,
        "go": go,
        "target": target,
        "start": starts,
        "stop": stops,
    }
