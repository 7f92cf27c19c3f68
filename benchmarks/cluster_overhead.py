"""Cluster-scale costs: Snakemake's overhead per job locally and on SLURM, and homogenizing the
simulated C. elegans collection with 1 vs 2 Dask workers (local, and as SLURM worker jobs).

Run (as root, so that a single-node SLURM can be started on localhost, see tests/local_slurm.py)::

    python benchmarks/cluster_overhead.py [repeats] [jobs]

Overhead per job = (wall time of a run of ``jobs`` tiny serial jobs - wall time of the same
command with nothing to do - the jobs' own run time from their benchmark files) / ``jobs``:
what Snakemake adds around a job (scheduling, the job's shell, for SLURM also sbatch, the job's
own Snakemake start-up and status polling). Medians over ``repeats`` runs, all measured in the
same run of this script. The SLURM runs poll with ``--slurm-init-seconds-before-status-checks 2``
(the plugin's default is 40 s, and it backs off by 10 s per poll that finds nothing finished).
"""

from __future__ import annotations

import csv
import json
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))

from local_slurm import LocalSlurm, SlurmUnavailable  # noqa: E402
from scratch_workflow import copy_workflow  # noqa: E402

EDGES = "Origin,Target,Type,Number of Connections\nAVAL,AVAR,GapJunction,5\nASHL,AVAL,Send,8\n"


def bench_workflow(dest: Path, config: str) -> Path:
    """A scratch workflow with a tiny edge list and ``bench.yaml`` holding ``config``."""
    copy_workflow(dest)
    (dest / "edges.csv").write_text(EDGES)
    (dest / "bench.yaml").write_text(config)
    return dest


def overhead_config(jobs: int) -> str:
    lines = [
        "datasets:",
        "  connectome: {kind: connectome, format: wormneuroatlas, enabled: false}",
        "  worms: {kind: celegans, format: simulated, enabled: false}",
        "  allen: {kind: allen, format: simulated, enabled: false}",
    ]
    entry = "{kind: connectome, format: openworm-csv, path: edges.csv}"
    lines += [f"  csv{i}: {entry}" for i in range(jobs)]
    return "\n".join(lines) + "\n"


def timed(command: list[str], cwd: Path, env=None) -> float:
    start = time.perf_counter()
    done = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True)
    elapsed = time.perf_counter() - start
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed:\n{done.stderr[-3000:]}")
    return elapsed


def job_seconds(workdir: Path) -> float:
    total = 0.0
    for path in (workdir / "results" / "benchmarks").rglob("*.tsv"):
        with path.open() as handle:
            total += float(next(csv.DictReader(handle, delimiter="\t"))["s"])
    return total


def overhead_per_job(root: Path, jobs: int, repeats: int, extra: list[str], env=None) -> dict:
    runs, noops, own = [], [], []
    for r in range(repeats):
        workdir = bench_workflow(root / f"run{r}", overhead_config(jobs))
        # the tiny jobs themselves as targets (`all` would add the summary, which needs analyses)
        targets = [f"results/homogenize/csv{i}.nc" for i in range(jobs)]
        command = ["snakemake", "--configfile", "bench.yaml", *extra, *targets]
        runs.append(timed(command, workdir, env))
        own.append(job_seconds(workdir))
        noops.append(timed(command, workdir, env))  # everything done: the fixed cost
        shutil.rmtree(workdir)
    per_job = [(w - n - s) / jobs for w, n, s in zip(runs, noops, own, strict=True)]
    return {
        "wall_s": statistics.median(runs),
        "noop_s": statistics.median(noops),
        "job_s": statistics.median(own) / jobs,
        "overhead_per_job_s": statistics.median(per_job),
    }


def homogenize_workers(root: Path, repeats: int, slurm: LocalSlurm | None) -> dict:
    """Homogenize the default simulated collection (10 worms x 240 s) with 1 and 2 workers."""
    workdir = bench_workflow(
        root / "worms",
        "datasets:\n  connectome: {kind: connectome, format: wormneuroatlas, enabled: false}\n"
        "  allen: {kind: allen, format: simulated, enabled: false}\n",
    )
    # simulate + ingest once (the default `worms` dataset); then time the homogenize step alone
    out = subprocess.run(
        ["snakemake", "--configfile", "bench.yaml", "--cores", "2", "-n", "-p"],
        cwd=workdir,
        capture_output=True,
        text=True,
    )
    command = next(
        line.removeprefix("Shell command: ").split(" 2> ")[0]
        for line in out.stdout.splitlines()
        if "neurodag homogenize" in line
    )
    timed(
        ["snakemake", "--configfile", "bench.yaml", "--cores", "2", "--until", "ingest_worms"],
        workdir,
    )
    n_worms = len(list((workdir / "results" / "ingest" / "worms").glob("*.nc")))

    def run(threads: int, compute: dict | None = None, env=None) -> float:
        shell = command.replace("--threads 2", f"--threads {threads}")
        if compute is not None:  # the rule's flags are shell-quoted: --compute '{...}'
            shell = re.sub(r"--compute '[^']*'", f"--compute '{json.dumps(compute)}'", shell)
        start = time.perf_counter()
        subprocess.run(shell, shell=True, cwd=workdir, env=env, check=True, capture_output=True)
        return time.perf_counter() - start

    result = {"worms": n_worms}
    for workers in (1, 2):
        result[f"local_{workers}_s"] = statistics.median(run(workers) for _ in range(repeats))
    if slurm is not None:
        for workers in (1, 2):
            compute = {"dask": {"cluster": "slurm", "slurm": {"jobs": workers, "memory_mb": 2000}}}
            times = [run(1, compute, slurm.environment()) for _ in range(repeats)]
            result[f"slurm_{workers}_s"] = statistics.median(times)
    return result


def main(repeats: int = 3, jobs: int = 4) -> None:
    root = Path(tempfile.mkdtemp(prefix="neurodag-bench-"))
    print(f"Snakemake overhead per job ({jobs} serial tiny jobs, median of {repeats} runs)")
    local = overhead_per_job(root / "local", jobs, repeats, ["--cores", "1"])
    print(
        f"  local : run {local['wall_s']:6.1f} s, nothing-to-do {local['noop_s']:5.1f} s, "
        f"job itself {local['job_s']:5.2f} s -> overhead {local['overhead_per_job_s']:5.2f} s/job"
    )
    slurm = None
    try:
        LocalSlurm.install()
        slurm = LocalSlurm(root / "slurm", cpus=4, memory_mb=8000).start()
    except SlurmUnavailable as reason:
        print(f"  slurm : not measured ({reason})")
    try:
        if slurm is not None:
            extra = [
                "--profile",
                "workflow/profiles/slurm",
                "--jobs",
                "1",
                "--slurm-status-command",
                "squeue",
                "--slurm-init-seconds-before-status-checks",
                "2",
            ]
            remote = overhead_per_job(root / "remote", jobs, repeats, extra, slurm.environment())
            print(
                f"  slurm : run {remote['wall_s']:6.1f} s, "
                f"nothing-to-do {remote['noop_s']:5.1f} s, "
                f"job itself {remote['job_s']:5.2f} s -> overhead "
                f"{remote['overhead_per_job_s']:5.2f} s/job "
                f"({remote['overhead_per_job_s'] / local['overhead_per_job_s']:.1f}x local)"
            )
        worms = homogenize_workers(root, repeats, slurm)
        n_worms = worms["worms"]
        print(f"homogenize of the simulated collection ({n_worms} worms), median of {repeats}:")
        for where in ("local", "slurm"):
            if f"{where}_1_s" in worms:
                one, two = worms[f"{where}_1_s"], worms[f"{where}_2_s"]
                print(
                    f"  {where:5s} Dask: 1 worker {one:6.1f} s, 2 workers {two:6.1f} s "
                    f"-> speed-up {one / two:.2f}x"
                )
    finally:
        if slurm is not None:
            slurm.stop()
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main(*(int(a) for a in sys.argv[1:3]))
