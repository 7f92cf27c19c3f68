"""Start-up time of ``neurodag --help`` against a bare ``python -c pass`` (the floor).

Run: ``python benchmarks/cli_startup.py [runs]``. Prints the median of several runs of each.
"""

import statistics
import subprocess
import sys
import time


def median_seconds(command: list[str], runs: int) -> float:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run(command, check=True, capture_output=True)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main(runs: int = 9) -> None:
    bare = median_seconds([sys.executable, "-c", "pass"], runs)
    cli = median_seconds([sys.executable, "-m", "neurodag", "--help"], runs)
    print(f"python -c pass      median {bare * 1000:7.1f} ms over {runs} runs")
    print(f"neurodag --help     median {cli * 1000:7.1f} ms over {runs} runs")
    print(f"overhead            {(cli - bare) * 1000:7.1f} ms  ({cli / bare:.1f}x bare python)")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 9)
