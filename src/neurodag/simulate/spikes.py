"""Simulated generic NWB spiking sessions (kind ``spikes``, format ``simulated``).

The session is composed exactly as a simulated Allen session (:mod:`neurodag.simulate.allen`:
the same planted pieces, seeds, spike generation and ``truth.nc``, one group per piece), and
written in the layout any lab's NWB file has instead of Allen's (the layout
:mod:`neurodag.io.nwb_spikes` reads; NWB core schema, as NeuroConv writes it):

- ``units`` with ``spike_times``, an ``electrodes`` reference (the unit's peak channel) and numeric
  quality metrics (``snr``, ``firing_rate``, ``amplitude_cutoff``, ``presence_ratio``,
  ``isi_violations``) instead of Allen's text ``quality`` and ``peak_channel_id``;
- the ``electrodes`` table with ``location`` (``root`` for the channels above the brain) and one
  electrode group per probe;
- each planted piece's stimulus table as the interval table ``intervals/<stimulus>`` with numeric
  columns (``frame``, ``orientation``, ...) and an event column ``stim_on_time``;
- ``epochs``, one per stimulus block, tagged with the stimulus name;
- running speed as a ``TimeSeries`` in ``processing/behavior``.

So the generic ingest aligning ``<stimulus>`` on ``stim_on_time`` gives the same trial responses
as the Allen ingest of the same session, and a stage recovers the planted structure as it does
there (``docs/data-model.md``).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from neurodag.simulate.allen import (  # noqa: F401
    SAMPLE_RATE_HZ,
    SimulatedSession,
    simulate,
    simulated_nwbfile,
)

EVENT = "stim_on_time"  # the event column each stimulus table carries (= its start_time)
METRICS = {
    "snr": "waveform signal-to-noise ratio",
    "firing_rate": "mean firing rate over the session (Hz)",
    "amplitude_cutoff": "estimated fraction of missed spikes",
    "presence_ratio": "fraction of the session with spikes",
    "isi_violations": "refractory-period violation rate",
}


def write_nwb(session: SimulatedSession, path: str | Path) -> Path:
    """Write the session in the generic layout (see the module doc), atomically."""
    import os

    from pynwb import NWBHDF5IO, TimeSeries
    from pynwb.epoch import TimeIntervals
    from pynwb.misc import Units

    from neurodag.ingest_allen import stimulus_blocks
    from neurodag.io.nwb_spikes import parse_column

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    nwb = simulated_nwbfile(
        session,
        "Simulated spiking session in the generic NWB layout (neurodag)",
        ["simulation", "Neuropixels", "ground truth"],
        lab="neurodag",
    )
    groups = {}
    for probe in session.probes.index:
        device = nwb.create_device(name=probe, description="Neuropixels 1.0 (simulated)")
        locations = session.electrodes.loc[session.electrodes["probe"] == probe, "location"]
        groups[probe] = nwb.create_electrode_group(
            name=probe,
            description=f"Neuropixels probe {probe}",
            location=", ".join(dict.fromkeys(locations)),
            device=device,
        )
    for channel, row in session.electrodes.iterrows():
        # a channel above the brain: the CCF root (labs' files have no empty locations)
        location = row["location"] or "root"
        nwb.add_electrode(id=int(channel), location=location, group=groups[row["probe"]])
    row_of_channel = {int(c): k for k, c in enumerate(session.electrodes.index)}

    nwb.units = Units(name="units", description="sorted units", resolution=1 / SAMPLE_RATE_HZ)
    for name, description in METRICS.items():
        nwb.add_unit_column(name=name, description=description)
    ends = session.spike_index
    for k, (unit_id, unit) in enumerate(session.units.iterrows()):
        start = ends[k - 1] if k else 0
        nwb.add_unit(
            id=int(unit_id),
            spike_times=session.spike_times[start : ends[k]],
            electrodes=[row_of_channel[int(unit["peak_channel_id"])]],
            **{name: float(unit[name]) for name in METRICS},
        )

    for stimulus, frame in session.presentations.items():
        table = TimeIntervals(name=stimulus, description=f"presentations of {stimulus}")
        columns = {c: parse_column(frame[c].to_numpy()) for c in frame.columns}
        columns[EVENT] = frame["start_time"].to_numpy(dtype=float)
        for column in columns:
            if column not in ("start_time", "stop_time"):
                table.add_column(name=column, description=f"stimulus parameter {column}")
        for row in range(len(frame)):
            values = {c: v[row] for c, v in columns.items()}
            table.add_row(**{c: v.item() if hasattr(v, "item") else v for c, v in values.items()})
        nwb.add_time_intervals(table)
    for _, block in stimulus_blocks(session.presentations).iterrows():
        nwb.add_epoch(
            start_time=float(block["start"]),
            stop_time=float(block["stop"]),
            tags=[str(block["stimulus"])],
        )

    behavior = nwb.create_processing_module(name="behavior", description="running")
    time = session.running_speed["time"].to_numpy()
    behavior.add(
        TimeSeries(
            name="running_speed",
            data=session.running_speed["speed"].to_numpy(),
            starting_time=float(time[0]),
            rate=round(float(1 / np.diff(time[:2])[0]), 6),
            unit="cm/s",
            description="running speed of the mouse on the wheel",
        )
    )
    tmp = path.with_name(f".{path.stem}.{os.getpid()}.tmp.nwb")
    try:
        with NWBHDF5IO(str(tmp), "w") as io:
            io.write(nwb)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def write_session(session: SimulatedSession, outdir: str | Path, parameters: dict) -> list[Path]:
    """``session.nwb`` (generic layout) and ``truth.nc`` (as the Allen simulation's)."""
    from neurodag.simulate import allen

    return allen.write_session(session, outdir, parameters, write=write_nwb)
