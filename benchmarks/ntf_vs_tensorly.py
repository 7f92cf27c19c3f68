"""Our non-negative CP (HALS, neurodag.connectome.ntf) against tensorly's default
``non_negative_parafac`` (multiplicative updates) on the same tensor, rank and tolerance.

Prints wall time and final relative error of both, measured in the same run, and the speed ratio.
Usage: OMP_NUM_THREADS=1 python benchmarks/ntf_vs_tensorly.py [--pairs 3000]
"""

import argparse
import time

import numpy as np


def planted_affinity_tensor(pairs: int, windows: int, worms: int, rank: int, seed: int = 0):
    """Sparse blocks over pairs, bumps over windows, worm loadings, plus noise (non-negative)."""
    rng = np.random.default_rng(seed)
    a = rng.gamma(0.3, 1.0, (pairs, rank))
    centres = np.linspace(0, windows, rank + 2)[1:-1]
    b = np.exp(-0.5 * ((np.arange(windows)[:, None] - centres) / (windows / 10)) ** 2)
    c = rng.uniform(0.5, 1.0, (worms, rank))
    x = np.einsum("pr,wr,mr->pwm", a, b, c)
    return x + 0.05 * x.mean() * rng.exponential(1.0, x.shape)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--pairs", type=int, default=3000)
    parser.add_argument("--windows", type=int, default=45)
    parser.add_argument("--worms", type=int, default=10)
    parser.add_argument("--rank", type=int, default=5)
    parser.add_argument("--tol", type=float, default=1e-6)
    parser.add_argument("--n-iter-max", type=int, default=2000)
    args = parser.parse_args()

    import tensorly as tl
    from tensorly.decomposition import non_negative_parafac

    from neurodag.connectome.ntf import non_negative_cp_hals

    x = planted_affinity_tensor(args.pairs, args.windows, args.worms, args.rank)
    norm = np.linalg.norm(x)
    t0 = time.perf_counter()
    ours = non_negative_cp_hals(
        x, args.rank, tol=args.tol, n_iter_max=args.n_iter_max, random_state=0
    )
    t_ours = time.perf_counter() - t0
    t0 = time.perf_counter()
    cp = non_negative_parafac(
        tl.tensor(x), args.rank, tol=args.tol, n_iter_max=args.n_iter_max, random_state=0
    )
    t_tl = time.perf_counter() - t0
    err_tl = np.linalg.norm(x - tl.cp_to_tensor(cp)) / norm
    print(f"tensor {x.shape}, rank {args.rank}, tol {args.tol}")
    print(f"{'method':<34}{'time (s)':>10}{'rel. error':>12}{'iterations':>12}")
    print(f"{'neurodag HALS':<34}{t_ours:>10.2f}{ours.error:>12.5f}{ours.n_iter:>12d}")
    print(f"{'tensorly non_negative_parafac (MU)':<34}{t_tl:>10.2f}{err_tl:>12.5f}{'':>12}")
    print(f"speed-up {t_tl / t_ours:.1f}x at error ratio {ours.error / err_tl:.3f}")


if __name__ == "__main__":
    main()
