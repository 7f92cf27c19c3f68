"""benchmarks/gpu.py, cpu only: it simulates and ingests the default session, runs every torch
part for a few steps on the reference cpu and on a second cpu run (one thread), and its
same-result checks pass."""

from __future__ import annotations

import subprocess
import sys

import pytest
from conftest import REPO


@pytest.mark.slow  # ~25 s alone on one thread
def test_gpu_benchmark_runs_on_cpu(tmp_path):
    result = subprocess.run(
        [
            sys.executable,
            str(REPO / "benchmarks" / "gpu.py"),
            "--device",
            "cpu",
            "--steps",
            "4",
            "--check-steps",
            "2",
            "--threads",
            "1",
            "--workdir",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    assert "all checks passed" in out
    for part in ("latents training", "mds model training", "mds optimisation"):
        line = next(line for line in out.splitlines() if line.startswith(part))
        cpu, device = (float(v) for v in line.split()[-3:-1])
        assert cpu > 0 and device > 0, line
    assert "trials" in out and "neurons" in out and "px" in out  # the problem sizes
    assert (tmp_path / "session.nwb").exists()
