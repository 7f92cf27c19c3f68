"""Simulated C. elegans whole-brain recordings with planted functional groups (embedded default).

Each worm's 300 canonical neurons follow a nonlinear rate model coupled through the real consensus
connectome (``neurodag.homogenize.connectomes.build_connectome``, White 1986 + Witvliet 2021)::

    tau dx/dt = -x + J tanh(x) - g L x + drive(t) + private noise

- ``J[post, pre]``: chemical synapses, ``log1p(count)``, signed by the presynaptic transmitter
  (GABAergic classes DD, VD, RME, AVL, DVB, RIS inhibitory, all others excitatory), scaled to a
  spectral radius ``coupling``;
- ``L``: graph Laplacian of the gap junctions (electrical coupling pulls neighbours together);
- ``drive``: during a stimulus epoch each active planted group receives one shared
  Ornstein-Uhlenbeck input, so that its members co-activate; outside its epochs a group gets none.

Behaviour is read out from two of the planted groups, as a command and a speed signal: the
**reversal group** (``reversal_group``) commands reversals: each worm's reversal state is a
two-state Markov chain that leaves forward locomotion at ``reversal_rate_hz`` while the group's
mean rate exceeds ``reversal_threshold`` (which it does only when the group is driven, i.e. in its
epochs; as AVA, AVE, AIB and RIM activity accompanies reversals, Gordus et al. 2015, Cell 161) and
reverses for ``reversal_duration_s`` on average. The **velocity group** (the next group,
``(reversal_group + 1) mod n_groups``) sets the forward speed, ``v = 0.02 + 0.15 rbar`` mm/s from
its mean rate, and ``v = -0.08`` mm/s while reversing, plus 0.005 mm/s measurement noise. With
``reversal_drive`` > 0 the reversal state also feeds back, as extra input to every member of the
reversal group while reversing; it is 0 by default because a per-worm input makes the group's
co-activation differ between worms, and the NTF then no longer finds it as a component shared
across worms (on the default worms: rank 1 instead of 3, planted-group NMI 0.67 instead of 0.94
with a drive of 2). The behaviour draws from its own random stream, so with no feedback the
neural activity, groups, epochs and labels of a seed are exactly those without behaviour. The
worm's ``reversal`` (0/1) and ``velocity`` at each frame go into the NWB ``processing/behavior``.

The firing rate ``r = (1 + tanh x) / 2`` is turned into calcium by GCaMP-like kinetics (rise and
decay first-order filters, as in Chen et al. 2013 for GCaMP6), into fluorescence with a per-ROI
baseline and slow bleaching, sampled at each worm's own frame rate with jittered frame times, with
Gaussian noise. Each worm images a random subset of neurons; a fraction of its ROIs is labelled,
some labels are uncertain (``?`` suffix) and a few are wrong (the name of a neuron not imaged).

The worms are written as NWB (``neurodag.io.celegans_nwb``) and the ground truth as ``truth.nc``;
its layout is documented in ``docs/data-model.md``.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr

from neurodag.errors import ConfigError
from neurodag.io.celegans_nwb import CalciumRecording, write_celegans_nwb
from neurodag.neurons import canonical_neurons

log = logging.getLogger(__name__)

INHIBITORY_PATTERN = ("DD", "VD", "RME", "AVL", "DVB", "RIS")
BEHAVIOUR_UNITS = {"velocity": "mm/s", "reversal": "1"}
FORWARD_BASE, FORWARD_GAIN, REVERSE_SPEED = 0.02, 0.15, -0.08  # mm/s
VELOCITY_NOISE = 0.005  # mm/s


def simulation_defaults() -> dict[str, Any]:
    """The options' defaults, as the config schema states them (``$defs/simulate_celegans``)."""
    from neurodag.config import validate

    spec = {"kind": "celegans", "format": "simulated"}
    return validate({"datasets": {"worms": spec}})["datasets"]["worms"]["simulate"]


SIM_DT_S = 1 / 15  # integration step; truth_dt_s must be a multiple of it
BURN_IN_S = 30.0


def _is_inhibitory(name: str) -> bool:
    return any(
        name.startswith(p) and (name[len(p) :].isdigit() or p in ("RME", "AVL", "DVB", "RIS"))
        for p in INHIBITORY_PATTERN
    )


def coupling_matrices(
    coupling: float, gap_coupling: float, connectome: xr.Dataset | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Chemical coupling ``J[post, pre]`` and gap-junction Laplacian ``L`` from the consensus."""
    if connectome is None:
        from neurodag.homogenize.connectomes import build_connectome

        connectome = build_connectome({"kind": "connectome", "format": "wormneuroatlas"})
    consensus = connectome["weight"].sel(source="consensus")
    chemical = np.nan_to_num(consensus.sel(synapse="chemical").values.astype(np.float64))
    electrical = np.nan_to_num(consensus.sel(synapse="electrical").values.astype(np.float64))
    names = list(connectome["pre"].values)
    sign = np.where([_is_inhibitory(n) for n in names], -1.0, 1.0)
    J = (np.log1p(chemical) * sign[:, None]).T  # [pre, post] -> [post, pre]
    radius = np.max(np.abs(np.linalg.eigvals(J)))
    J *= coupling / radius
    G = np.log1p(np.maximum(electrical, electrical.T))
    L = gap_coupling * (np.diag(G.sum(axis=1)) - G)
    return J, L


def _epoch_schedule(
    rng: np.random.Generator, duration_s: float, epoch_s: float, n_groups: int
) -> tuple[np.ndarray, np.ndarray, list[str], np.ndarray]:
    """Epoch starts, stops, stimulus names and active groups: first epoch spontaneous, then each
    stimulus epoch activates one group in turn plus, half of the time, one other group."""
    n_epochs = max(1, int(np.ceil(duration_s / epoch_s - 1e-9)))
    starts = np.arange(n_epochs) * epoch_s
    stops = np.minimum(starts + epoch_s, duration_s)
    active = np.zeros((n_epochs, n_groups), dtype=bool)
    names = ["spontaneous"]
    for e in range(1, n_epochs):
        main = (e - 1) % n_groups
        active[e, main] = True
        if n_groups > 1 and rng.random() < 0.5:
            active[e, rng.choice([g for g in range(n_groups) if g != main])] = True
        names.append(f"stimulus_{e}")
    return starts, stops, names, active


def simulate_celegans(
    options: Mapping[str, Any] | None = None, connectome: xr.Dataset | None = None
) -> tuple[list[CalciumRecording], xr.Dataset, dict[str, Any]]:
    """Simulate the worms; returns their recordings, the ground truth and per-worm extras."""
    o = {**simulation_defaults(), **(options or {})}
    rng = np.random.default_rng(o["seed"])
    names = np.array(canonical_neurons())
    n_neurons, n_worms = len(names), int(o["n_worms"])
    J, L = coupling_matrices(o["coupling"], o["gap_coupling"], connectome)

    # Planted groups: disjoint random neuron sets; epochs activate them.
    members = rng.permutation(n_neurons)[: o["n_groups"] * o["group_size"]]
    group_member = np.zeros((o["n_groups"], n_neurons), dtype=bool)
    for g in range(o["n_groups"]):
        group_member[g, members[g * o["group_size"] : (g + 1) * o["group_size"]]] = True
    starts, stops, stimuli, active = _epoch_schedule(
        rng, o["duration_s"], o["epoch_s"], o["n_groups"]
    )
    # Behaviour states from their own stream: the stimulus groups of a seed keep their draws.
    rng_b = np.random.default_rng([int(o["seed"]), 20])
    reversal_group = int(o["reversal_group"])
    if reversal_group >= o["n_groups"]:
        raise ConfigError(
            f"simulate celegans: reversal_group {reversal_group} but only {o['n_groups']} groups"
        )
    velocity_group = (reversal_group + 1) % o["n_groups"]

    # Integrate all worms at once, state (worm, neuron); noise, drive and GCaMP filters are
    # updated in the loop so that no (time, worm, neuron) temporaries are held beside the output.
    dt_s = SIM_DT_S
    n_steps = int(round(o["duration_s"] / dt_s)) + 1
    t_sim = np.arange(n_steps) * dt_s
    epoch_of_step = np.minimum(np.searchsorted(starts, t_sim, side="right") - 1, len(starts) - 1)
    group_on = active[epoch_of_step].astype(float)  # (time, group)
    membership = group_member.astype(float)
    bias = rng.normal(-0.5, 0.3, size=(n_worms, n_neurons))
    x = rng.normal(0, 0.5, size=(n_worms, n_neurons))
    shared = rng.standard_normal((n_worms, o["n_groups"]))
    private = rng.standard_normal((n_worms, n_neurons))
    a_shared, a_private = np.exp(-dt_s / 2.0), np.exp(-dt_s / 1.0)
    a_rise, a_decay = np.exp(-dt_s / o["gcamp_rise_s"]), np.exp(-dt_s / o["gcamp_decay_s"])
    rate = np.empty((n_steps, n_worms, n_neurons), dtype=np.float32)
    calcium = np.empty_like(rate)
    k = dt_s / o["tau_s"]
    rise = decay = 0.5 * (1.0 + np.tanh(x))
    no_group = np.zeros(o["n_groups"])
    reversal_members = group_member[reversal_group]
    reversal_input = o["reversal_drive"] * membership[reversal_group]
    p_on = 1.0 - np.exp(-o["reversal_rate_hz"] * dt_s)
    p_off = 1.0 - np.exp(-dt_s / o["reversal_duration_s"])
    reversing = np.zeros((n_steps, n_worms))  # (time, worm) 0/1
    state = np.zeros(n_worms, dtype=bool)  # every worm starts forward
    # Steps before 0 are a burn-in (no stimulus) that forgets the random initial state.
    for step in range(-int(round(BURN_IN_S / dt_s)), n_steps):
        r = 0.5 * (1.0 + np.tanh(x))
        # GCaMP kinetics: a rise then a decay first-order filter of the rate.
        rise = a_rise * rise + (1 - a_rise) * r
        decay = a_decay * decay + (1 - a_decay) * rise
        on = group_on[step] if step >= 0 else no_group
        if step >= 0:
            rate[step] = r
            calcium[step] = decay
            command = r[:, reversal_members].mean(axis=1) > o["reversal_threshold"]
            u = rng_b.random(n_worms)
            state = np.where(state, u >= p_off, (u < p_on) & command)
            reversing[step] = state
        # Rectified shared input, so that a co-activation is a rise of the whole group.
        drive = (o["drive_amplitude"] * np.maximum(shared, 0.0) * on) @ membership
        drive += o["private_noise"] * private
        if step >= 0 and o["reversal_drive"] > 0:
            drive += reversing[step][:, None] * reversal_input
        x = x + k * (-x + np.tanh(x) @ J.T - x @ L.T + bias + drive)
        shared = a_shared * shared + np.sqrt(1 - a_shared**2) * rng.standard_normal(shared.shape)
        private = a_private * private + np.sqrt(1 - a_private**2) * rng.standard_normal(
            private.shape
        )

    truth_step = int(round(o["truth_dt_s"] / dt_s))
    truth_time = t_sim[::truth_step]
    velocity_rate = rate[:, :, group_member[velocity_group]].mean(axis=2)  # (time, worm)
    velocity = np.where(reversing > 0, REVERSE_SPEED, FORWARD_BASE + FORWARD_GAIN * velocity_rate)

    recordings, rois = [], []
    low_rate, high_rate = o["frame_rate_hz"]
    n_recorded = max(1, int(round(o["recorded_fraction"] * n_neurons)))
    for w in range(n_worms):
        frame_rate = float(rng.uniform(low_rate, high_rate))
        period = 1.0 / frame_rate
        n_frames = int(np.floor(o["duration_s"] * frame_rate))
        frame_t = np.arange(n_frames) * period + rng.uniform(-0.1, 0.1, n_frames) * period
        frame_t = np.clip(frame_t, 0.0, o["duration_s"])
        frame_t[0] = 0.0
        frame_t = np.maximum.accumulate(frame_t)
        recorded = np.sort(rng.choice(n_neurons, n_recorded, replace=False))
        order = rng.permutation(recorded)  # ROI order as segmentation found them
        baseline = rng.uniform(200.0, 600.0, order.size)
        bleach = np.exp(-frame_t / rng.uniform(1500.0, 3000.0))[:, None]
        ca = np.stack([np.interp(frame_t, t_sim, calcium[:, w, n]) for n in order], axis=1)
        fluorescence = baseline * bleach * (1.0 + 2.0 * ca)
        fluorescence += rng.normal(0.0, o["noise_sd"], fluorescence.shape) * baseline
        labels, status = _labels(rng, names, order, recorded, o)
        at_frame = np.minimum(np.round(frame_t / dt_s).astype(int), n_steps - 1)
        behaviour = {
            "velocity": np.interp(frame_t, t_sim, velocity[:, w])
            + rng_b.normal(0.0, VELOCITY_NOISE, n_frames),
            "reversal": reversing[at_frame, w].astype(np.float64),
        }
        recordings.append(
            CalciumRecording(
                traces=fluorescence.astype(np.float32),
                timestamps=frame_t,
                labels=labels,
                identifier=f"worm{w:03d}",
                epochs=[
                    (float(a), float(b), s) for a, b, s in zip(starts, stops, stimuli, strict=True)
                ],
                description=f"simulated worm {w} (seed {o['seed']})",
                behaviour=behaviour,
                behaviour_units=dict(BEHAVIOUR_UNITS),
            )
        )
        rois.append((names[order], labels, status, frame_rate, recorded))

    n_roi = max(len(r[0]) for r in rois)

    def pad(values, fill=""):
        return [list(v) + [fill] * (n_roi - len(v)) for v in values]

    worm_ids = [r.identifier for r in recordings]
    recorded_mask = np.zeros((n_worms, n_neurons), dtype=bool)
    for w, r in enumerate(rois):
        recorded_mask[w, r[4]] = True
    truth = xr.Dataset(
        {
            "group_member": (("group", "neuron"), group_member),
            "group_active": (("epoch", "group"), active),
            "epoch_start": ("epoch", starts),
            "epoch_stop": ("epoch", stops),
            "stimulus": ("epoch", np.array(stimuli, dtype=object)),
            "true_rate": (
                ("worm", "time", "neuron"),
                rate[::truth_step].transpose(1, 0, 2).astype(np.float32),
            ),
            "recorded": (("worm", "neuron"), recorded_mask),
            "roi_neuron": (("worm", "roi"), np.array(pad([r[0] for r in rois]), dtype=object)),
            "roi_label": (("worm", "roi"), np.array(pad([r[1] for r in rois]), dtype=object)),
            "label_status": (("worm", "roi"), np.array(pad([r[2] for r in rois]), dtype=object)),
            "frame_rate_hz": ("worm", np.array([r[3] for r in rois])),
            "behavior_group": ("variable", np.array([reversal_group, velocity_group])),
            "behavior_role": (
                "variable",
                np.array(
                    [
                        "the group commands reversals (onsets while its mean rate exceeds "
                        "reversal_threshold); with reversal_drive > 0 reversing also drives it",
                        "the group's mean rate sets the forward velocity",
                    ],
                    dtype=object,
                ),
            ),
            "true_behavior": (
                ("worm", "time", "variable"),
                np.stack([reversing[::truth_step].T, velocity[::truth_step].T], axis=2),
            ),
            "chemical_coupling": (("post", "pre"), J.astype(np.float32)),
            "electrical_laplacian": (("post", "pre"), L.astype(np.float32)),
        },
        coords={
            "worm": worm_ids,
            "neuron": names,
            "group": np.arange(o["n_groups"]),
            "variable": ["reversal", "velocity"],
            "epoch": np.arange(len(starts)),
            "time": truth_time,
            "roi": np.arange(n_roi),
            "pre": names,
            "post": names,
        },
        attrs={
            "description": "ground truth of neurodag simulate celegans (see docs/data-model.md)",
            "model": "tau dx/dt = -x + J tanh(x) - L x + drive; rate = (1 + tanh x) / 2",
        },
    )
    truth["true_rate"].attrs.update(units="1", description="firing rate (1 + tanh x) / 2")
    truth["true_behavior"].attrs.update(
        units=json.dumps({"reversal": "1", "velocity": "mm/s"}),
        description="reversal state (0/1) and noise-free velocity; units: JSON {variable: unit}",
    )
    truth["epoch_start"].attrs["units"] = "s"
    truth["epoch_stop"].attrs["units"] = "s"
    truth["time"].attrs["units"] = "s"
    return recordings, truth, {"positions": [r[0] for r in rois]}


def _labels(rng, names, order, recorded, o) -> tuple[list[str], list[str]]:
    """Labels as a NeuroPAL annotator would give them: some missing, uncertain or wrong."""
    unrecorded = np.setdiff1d(np.arange(len(names)), recorded)
    labels, status = [], []
    wrong_pool = list(rng.permutation(unrecorded))
    for n in order:
        u = rng.random()
        if u >= o["labeled_fraction"]:
            labels.append("")
            status.append("unlabeled")
            continue
        v = rng.random()
        if v < o["mislabeled_fraction"] and wrong_pool:
            labels.append(str(names[wrong_pool.pop()]))
            status.append("wrong")
        elif v < o["mislabeled_fraction"] + o["uncertain_fraction"]:
            labels.append(f"{names[n]}?")
            status.append("uncertain")
        else:
            labels.append(str(names[n]))
            status.append("correct")
    return labels, status


def write_simulation(
    output_dir: str | Path,
    options: Mapping[str, Any] | None = None,
    connectome: xr.Dataset | None = None,
) -> list[Path]:
    """Simulate and write ``<output_dir>/<worm>.nwb`` per worm plus ``truth.nc``; returns paths."""
    o = {**simulation_defaults(), **(options or {})}
    recordings, truth, _ = simulate_celegans(o, connectome)
    return write_files(output_dir, recordings, truth, o)


def write_files(
    output_dir: str | Path,
    recordings: list[CalciumRecording],
    truth: xr.Dataset,
    options: Mapping[str, Any],
) -> list[Path]:
    """Write simulated worms as NWB and their truth as ``truth.nc``; returns the paths."""
    from neurodag.io.netcdf import write_dataset

    output_dir = Path(output_dir)
    rng = np.random.default_rng(options["seed"] + 1)
    paths = []
    start = dt.datetime(2024, 1, 1, 9, 0, tzinfo=dt.UTC)
    for w, recording in enumerate(recordings):
        n_roi = recording.traces.shape[1]
        positions = rng.uniform(0, 100, size=(n_roi, 3))
        paths.append(
            write_celegans_nwb(
                recording,
                output_dir / f"{recording.identifier}.nwb",
                session_start=start + dt.timedelta(hours=w),
                roi_positions=positions,
                subject_id=recording.identifier,
                frame_rate_hz=float(truth["frame_rate_hz"][w]),
            )
        )
    paths.append(
        write_dataset(
            truth, output_dir / "truth.nc", stage="simulate", parameters=dict(options), inputs=[]
        )
    )
    log.info("simulated %d worms into %s", len(recordings), output_dir)
    return paths
