"""Ingest and the four Allen stages on a real-size simulated session, beside the default one.

The real-size session is the preset ``config/allen_real_size.yaml`` (6 probes, ~2,700 units of
which ~900 pass AllenSDK's default unit filter, ~1.3e8 spikes over ~10,000 s, stimulus tables of a
Brain Observatory 1.1 session's length); the reference is the default run's simulated session
(dataset ``allen`` of ``config/config.yaml``). Each step runs as the workflow runs it, through the
CLI in a child process (``neurodag simulate allen``, ``neurodag ingest``, ``neurodag geometry``,
``neurodag latents``, ``neurodag bicluster``, ``neurodag mds``, each with the dataset entry as
``--spec``, the stage block of ``config/config.yaml`` as ``--params`` and the threads of its rule
in ``workflow/rules/``), and the script prints for each its wall time, the child's peak RSS
(``os.wait4``) and the problem size it ran on (neurons x bins, trials, images). A failing stage is
reported with the end of its error and the others still run. Goals on 2 cores, at the real size:
ingest <= 30 s and <= 1.5 GB; every stage <= 10 min and <= 3 GB.

Run (the real size is heavy: hold the shared lock, and keep the machine otherwise idle)::

    flock /tmp/neurodag-heavy.lock python benchmarks/allen_session.py --sizes default real

``--sizes`` takes ``default``, ``real`` and scale factors of the preset (``0.1``: a tenth of its
units, rows and trials, for development); ``--session DIR`` reuses a real-size session written
before (``session.nwb`` and ``truth.nc``); ``--quick`` cuts the stages' iterations (latents
steps, bicluster sweeps, mds epochs, geometry bootstraps) to check the plumbing only, as the slow
test does.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PRESET = REPO / "config" / "allen_real_size.yaml"
STAGES = ("geometry", "latents", "bicluster", "mds")
#: Goals at the real size: (seconds, GB of peak RSS).
GOALS = {"ingest": (30.0, 1.5), **{stage: (600.0, 3.0) for stage in STAGES}}
#: Iteration counts --quick sets (plumbing checks only; not the stages' default settings).
QUICK = {
    "latents": {"steps": 40, "kl_warmup_steps": 10, "checkpoint_every": 20, "log_every": 20},
    "bicluster": {"n_iterations": 40, "burn_in": 10},
    "mds": {"model": {"max_epochs": 2, "patience": 1}, "clustering": {"steps": 5}},
    "geometry": {"n_bootstrap": 5},
}


def load_configs() -> tuple[dict, dict]:
    from neurodag.config import load_config

    default = load_config([REPO / "config" / "config.yaml"])
    real = load_config([REPO / "config" / "config.yaml", PRESET])
    return default, real


def scaled(entry: dict, factor: float) -> dict:
    """The real-size dataset entry with its units, rows and trials scaled by ``factor``."""
    entry = copy.deepcopy(entry)
    sim = entry["simulate"]

    def scale(value, least):
        return max(least, round(value * factor))

    sim["filler_units"] = scale(sim["filler_units"], 4)
    sim["n_filtered_units"] = scale(sim["n_filtered_units"], 4)
    for options in sim["stimuli"].values():
        options["rows"] = scale(options["rows"], 2)
    sizes = {
        "bicluster": {"n_time": 200},
        "geometry": {"repeats": 4, "n_images": 16, "n_blank": 4},
        "latents": {"trials_per_condition": 2},
        "mds": {"n_images": 120},
    }
    pieces = []
    for item in sim["pieces"]:
        name, options = (item, {}) if isinstance(item, str) else next(iter(item.items()))
        options = dict(options or {})
        for key, least in sizes[name].items():
            if key in options:
                options[key] = scale(options[key], least)
            elif name == "mds" and key == "n_images":  # the generator's default, 600
                options[key] = scale(600, least)
        pieces.append({name: options})
    sim["pieces"] = pieces
    return entry


def rule_threads(stage: str) -> int:
    """``threads:`` of the stage's rule (the cores the workflow gives it)."""
    text = (REPO / "workflow" / "rules" / f"{stage}.smk").read_text()
    match = re.search(r"^\s*threads:\s*(\d+)", text, re.MULTILINE)
    return int(match.group(1)) if match else 1


def run_child(command: list[str], log: Path, timeout_s: float) -> dict:
    """Run ``command`` (a neurodag CLI call), its output to ``log``: wall time, the child's peak
    RSS (its own and its waited-for children's, from ``wait4``), and the exit status."""
    env = {**os.environ, "PYTHONPATH": str(REPO / "src")}
    begin = time.perf_counter()
    with open(log, "w") as handle:
        process = subprocess.Popen(command, stdout=handle, stderr=subprocess.STDOUT, env=env)
        deadline = begin + timeout_s
        while True:
            pid, status, usage = os.wait4(process.pid, os.WNOHANG)
            if pid:
                break
            if time.perf_counter() > deadline:
                process.kill()
                pid, status, usage = os.wait4(process.pid, 0)
                status = None
                break
            time.sleep(0.05)
    process.returncode = 0  # reaped by wait4 already; keep Popen from waiting again
    wall = time.perf_counter() - begin
    code = None if status is None else os.waitstatus_to_exitcode(status)
    tail = ""
    if code != 0:
        lines = log.read_text(errors="replace").strip().splitlines()
        errors = [line for line in lines if "Error" in line or "error" in line]
        tail = (errors or lines or ["(no output)"])[-1][-300:]
    return {
        "status": "ok" if code == 0 else ("timeout" if code is None else f"exit{code}"),
        "wall_s": wall,
        "peak_mb": usage.ru_maxrss / 1024,  # KiB on Linux
        "error": tail,
    }


def open_coords(path: Path):
    import xarray as xr

    return xr.open_dataset(path, engine="h5netcdf")


def problem_size(step: str, paths: dict, params: dict) -> str:
    """What a step ran on, from its input files (coordinates only)."""
    try:
        if step == "simulate":
            import h5py

            with h5py.File(paths["nwb"], "r") as f:
                n_units = f["units/id"].shape[0]
                n_spikes = f["units/spike_times"].shape[0]
                tables = {
                    k.removesuffix("_presentations"): f[f"intervals/{k}/id"].shape[0]
                    for k in f["intervals"]
                    if k.endswith("_presentations")
                }
            rows = ", ".join(f"{k} {v}" for k, v in tables.items())
            gb = paths["nwb"].stat().st_size / 1e9
            return f"{n_units} units, {n_spikes:.3g} spikes, {gb:.2f} GB file; rows: {rows}"
        if step == "ingest":
            with open_coords(paths["counts"]) as ds:
                kept = ds.sizes["neuron"]
                span = float(ds["time"].values[-1] - ds["time"].values[0])
                return (
                    f"{ds.attrs.get('units_in_file')} units -> {kept} kept; counts {kept} x "
                    f"{ds.sizes['time']} bins ({span:.0f} s)"
                )
        regions = params.get("regions")
        if step == "bicluster":
            with open_coords(paths["counts"]) as ds:
                keep = _in(ds["region"].values, regions)
                epoch = ds["epoch"].values.astype(str)
                n_bins = int(sum(epoch == e for e in params["epochs"]).sum())
                factor = params["bin_size_s"] / float(ds.attrs["bin_size_s"])
                return (
                    f"{keep.sum()} neurons x {n_bins / factor:.0f} bins of "
                    f"{params['bin_size_s']} s ({', '.join(params['epochs'])})"
                )
        with open_coords(paths[params["stimulus"]]) as ds:
            keep = _in(ds["region"].values, regions)
            n_trials = ds.sizes["trial"]
            images = f", {ds.sizes['frame']} images" if "frame" in ds.dims else ""
            if "frame" in ds and "frame" not in ds.dims:
                images = f", {len(set(ds['frame'].values.tolist()))} images"
            return (
                f"{keep.sum()} neurons x {n_trials} trials x {ds.sizes['time']} bins"
                f"{images} ({params['stimulus']})"
            )
    except Exception as exc:  # the size is a report, not a check
        return f"(size unknown: {type(exc).__name__}: {exc})"


def _in(regions, chosen):
    import numpy as np

    regions = np.asarray(regions).astype(str)
    return np.ones(len(regions), bool) if not chosen else np.isin(regions, chosen)


def run_size(label: str, entry: dict, config: dict, args) -> list[dict]:
    """Simulate (or reuse), ingest and run the four stages on one session."""
    from neurodag.simulate.allen import with_images_in

    out = Path(args.workdir) / label.replace(".", "_")
    sim, ingest = out / "simulate", out / "ingest"
    results = []
    cli = [sys.executable, "-m", "neurodag"]
    spec = json.dumps(entry)

    def record(step, command, paths, params, timeout):
        (out / "logs").mkdir(parents=True, exist_ok=True)
        result = run_child(command, out / "logs" / f"{step}.log", timeout)
        result.update(size=label, step=step, problem="")
        if result["status"] == "ok" or step not in ("simulate", "ingest"):
            # a stage's size comes from its inputs: known even when the stage failed
            result["problem"] = problem_size(step, paths, params)
        results.append(result)
        print_row(result)
        return result["status"] == "ok"

    if label == "real" and args.session:
        source = Path(args.session)
        sim.mkdir(parents=True, exist_ok=True)
        for name in ("session.nwb", "truth.nc", "images"):
            target = sim / name
            if not target.exists() and (source / name).exists():
                target.symlink_to(source.resolve() / name)
        print(f"# {label}: reusing {source}")
    else:
        shutil.rmtree(sim, ignore_errors=True)
        if not record(
            "simulate",
            [*cli, "simulate", "allen", "--spec", spec, "--output", str(sim)],
            {"nwb": sim / "session.nwb"},
            {},
            args.timeout,
        ):
            return results
    nwb, truth = sim / "session.nwb", sim / "truth.nc"
    # the stimulus images lie beside the session file, as a real session's do (images: option)
    entry = with_images_in(entry, sim)
    spec = json.dumps(entry)
    shutil.rmtree(ingest, ignore_errors=True)
    stages = config["stages"]
    responses = list(entry.get("responses") or stages["ingest"]["allen"]["responses"])
    paths = {"counts": ingest / "counts.nc", **{s: ingest / f"{s}.nc" for s in responses}}
    ok = record(
        "ingest",
        [
            *cli,
            "ingest",
            "--recording",
            "session",
            "--spec",
            spec,
            "--params",
            json.dumps(stages["ingest"]),
            "--input",
            str(nwb),
            "--output",
            str(ingest),
        ],
        paths,
        {},
        args.timeout,
    )
    if not ok:
        return results
    for stage in args.stages:
        params = copy.deepcopy(stages[stage])
        if args.quick:
            for key, value in QUICK[stage].items():
                if isinstance(value, dict):
                    params[key] = {**params[key], **value}
                else:
                    params[key] = value
        role = paths["counts"] if stage == "bicluster" else paths.get(params.get("stimulus"))
        if role is None:
            results.append(
                {
                    "size": label,
                    "step": stage,
                    "status": "skipped",
                    "wall_s": 0.0,
                    "peak_mb": 0.0,
                    "problem": "",
                    "error": f"ingest aligned no {params.get('stimulus')!r}",
                }
            )
            print_row(results[-1])
            continue
        output = out / stage / "session.nc"
        output.parent.mkdir(parents=True, exist_ok=True)
        record(
            stage,
            [
                *cli,
                stage,
                "--input",
                str(role),
                "--truth",
                str(truth),
                "--spec",
                spec,
                "--params",
                json.dumps(params),
                "--threads",
                str(rule_threads(stage)),
                "--output",
                str(output),
            ],
            paths,
            params,
            args.timeout,
        )
    return results


def print_row(r: dict) -> None:
    goal = ""
    if r["size"] == "real" and r["step"] in GOALS and r["status"] == "ok":
        seconds, gb = GOALS[r["step"]]
        met = r["wall_s"] <= seconds and r["peak_mb"] * 1.048576 / 1000 <= gb
        goal = f"goal<= {seconds:.0f}s,{gb}GB:{'met' if met else 'MISSED'}"
    print(
        f"{r['size']:8s} {r['step']:10s} {r['status']:8s} {r['wall_s']:8.1f} {r['peak_mb']:8.0f}"
        f"  {goal:28s} {r['problem']}",
        flush=True,
    )


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", nargs="+", default=["default", "real"])
    parser.add_argument("--session", help="folder with a real-size session.nwb and truth.nc")
    parser.add_argument("--workdir", default="results/benchmarks/allen_session")
    parser.add_argument("--stages", nargs="+", default=list(STAGES), choices=STAGES)
    parser.add_argument("--quick", action="store_true", help="few iterations (plumbing only)")
    parser.add_argument("--timeout", type=float, default=1800.0, help="per step (s)")
    args = parser.parse_args(argv)
    default_config, real_config = load_configs()
    print(f"# load before: {os.getloadavg()[0]:.2f} (1 min), {os.cpu_count()} CPUs")
    print(f"{'size':8s} {'step':10s} {'status':8s} {'wall_s':>8s} {'peak_MiB':>8s}  goal / problem")
    results = []
    for label in args.sizes:
        if label == "default":
            entry, config = default_config["datasets"]["allen"], default_config
        elif label == "real":
            entry, config = real_config["datasets"]["allen_real"], real_config
        else:
            entry = scaled(real_config["datasets"]["allen_real"], float(label))
            config = real_config
        results += run_size(label, entry, config, args)
    print(f"# load after: {os.getloadavg()[0]:.2f} (1 min)")
    for r in results:
        if r["status"] != "ok":
            print(f"# {r['size']} {r['step']} {r['status']}: {r['error']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
