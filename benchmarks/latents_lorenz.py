"""Lorenz benchmark for the latents stage (LFADS synthetic setting; Song et al. LangevinFlow).

A 3-D Lorenz latent drives Poisson neurons in trials (``neurodag.simulate.lorenz``); a quarter of
the neurons are held out and the last bins are forward-prediction bins (NLB splits). In the same
run and at the same budget (steps and batch size) it trains LangevinFlow and an LFADS-like GRU
sequential VAE, and fits the Gaussian-smoothing baseline; it prints for each the R2 of inferred to
true rates, co-bps, fp-bps and PSTH R2 on the validation trials, training steps per second, and
the wall time at which LangevinFlow's rate R2 first reached the goal (0.9). Every model's rates
are its posterior predictive mean over ``--posterior-samples`` draws (LFADS's protocol; 0 = the
rates of the posterior-mean path).

    nice -n 10 python benchmarks/latents_lorenz.py --threads 1
    python benchmarks/latents_lorenz.py --device cuda
"""

from __future__ import annotations

import argparse
import json
import logging
import time

import numpy as np
import torch

from neurodag.latents.metrics import bits_per_spike, psth_r2, rate_r2
from neurodag.latents.model import GRUSequentialVAE, LangevinFlow
from neurodag.latents.smoothing import smoothing_baseline
from neurodag.latents.train import TrainSettings, infer, split_trials, train
from neurodag.simulate.lorenz import lorenz_trials, sample_counts

R2_GOAL = 0.9


def evaluate(rates, data, true_rates, condition):
    """Metrics on the validation trials; ``rates`` cover held-in (+ forward) bins, all neurons."""
    t_in = data.n_heldin_time
    spikes = data.counts[data.valid]
    truth = true_rates[data.valid]
    out = {
        "rate_r2": rate_r2(rates[:, :t_in], truth[:, :t_in]),
        "co_bps": bits_per_spike(rates[:, :t_in, data.heldout], spikes[:, :t_in, data.heldout]),
        "fp_bps": float("nan"),
    }
    if rates.shape[1] > t_in:
        out["fp_bps"] = bits_per_spike(rates[:, t_in:], spikes[:, t_in:])
    cond = condition[data.valid]
    true_psth = np.stack([truth[cond == c, :t_in].mean(0) for c in np.unique(cond)])
    out["psth_r2"] = psth_r2(rates[:, :t_in], true_psth, cond)
    return out


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=3000)
    parser.add_argument("--time-limit-s", type=float, default=None, help="per model")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--eval-every", type=int, default=100)
    parser.add_argument("--skip-gru", action="store_true")
    parser.add_argument(
        "--posterior-samples",
        type=int,
        default=32,
        help="rates averaged over this many posterior draws, for every model (0 = mean path)",
    )
    parser.add_argument("--json", help="also write the results here")
    parser.add_argument(
        "--langevinflow", type=json.loads, default={}, help="LangevinFlow keyword arguments, JSON"
    )
    parser.add_argument(
        "--gru", type=json.loads, default={}, help="GRU VAE keyword arguments, JSON"
    )
    parser.add_argument(
        "--train",
        type=json.loads,
        default={},
        help='TrainSettings overrides for both models, JSON, e.g. {"coordinated_dropout": 0.5}',
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)

    piece = lorenz_trials(seed=args.seed)
    counts = sample_counts(piece, seed=args.seed + 1).transpose("trial", "time", "neuron").values
    true_rates = (piece["true_rate"] * piece.attrs["dt_s"]).transpose("trial", "time", "neuron")
    true_rates = true_rates.values
    condition = piece["condition"].values
    data = split_trials(
        counts, heldout_fraction=0.25, forward_bins=10, valid_fraction=0.2, seed=args.seed
    )
    print(
        f"Lorenz data: {counts.shape[0]} trials x {counts.shape[1]} bins x {counts.shape[2]} "
        f"neurons ({len(data.heldout)} held out, {data.n_time - data.n_heldin_time} forward "
        f"bins), {counts.mean() / piece.attrs['dt_s']:.1f} Hz mean; device {device}, "
        f"{args.threads} torch thread(s)"
    )
    settings = TrainSettings(
        **{**args.train, "steps": args.steps, "time_limit_s": args.time_limit_s, "seed": args.seed}
    )
    results = {}
    samples = args.posterior_samples

    smoothing_start = time.perf_counter()
    smoothing = smoothing_baseline(data)
    results["smoothing"] = evaluate(smoothing["rates"], data, true_rates, condition)
    results["smoothing"]["wall_s"] = time.perf_counter() - smoothing_start

    models = {"langevinflow": LangevinFlow}
    if not args.skip_gru:
        models["gru_vae"] = GRUSequentialVAE
    for name, cls in models.items():
        torch.manual_seed(args.seed)
        kwargs = args.langevinflow if cls is LangevinFlow else args.gru
        model = cls(len(data.heldin), data.n_neurons, data.n_time, **kwargs)
        trace = []
        started = time.perf_counter()
        eval_time = [0.0]

        def callback(step, model, trace=trace, started=started, eval_time=eval_time):
            t0 = time.perf_counter()
            rates, _ = infer(model, data, data.valid, device, posterior_samples=samples, seed=args.seed)
            metrics = evaluate(rates, data, true_rates, condition)
            eval_time[0] += time.perf_counter() - t0
            trace.append((step, time.perf_counter() - started - eval_time[0], metrics["rate_r2"]))
            return False

        summary = train(
            model,
            data,
            settings,
            device=device,
            callback=callback,
            callback_every=args.eval_every,
            name=name,
        )
        rates, _ = infer(model, data, data.valid, device, posterior_samples=samples, seed=args.seed)
        results[name] = evaluate(rates, data, true_rates, condition)
        train_s = summary["wall_s"] - eval_time[0]
        results[name].update(
            steps=summary["steps"], train_s=train_s, steps_per_s=summary["steps"] / train_s
        )
        reached = [(s, t) for s, t, r2 in trace if r2 >= R2_GOAL]
        results[name]["goal_step"], results[name]["goal_s"] = (
            reached[0] if reached else (None, None)
        )
        results[name]["trace"] = trace

    print(
        f"\n{'model':<14}{'rate R2':>9}{'co-bps':>9}{'fp-bps':>9}{'PSTH R2':>9}"
        f"{'steps/s':>9}{'train s':>9}{'t(R2>=0.9) s':>14}"
    )
    for name, r in results.items():
        goal = r.get("goal_s")
        goal_text = "-" if goal is None else f"{goal:.0f} (step {r['goal_step']})"
        print(
            f"{name:<14}{r['rate_r2']:>9.3f}{r['co_bps']:>9.3f}{r['fp_bps']:>9.3f}"
            f"{r['psth_r2']:>9.3f}{r.get('steps_per_s', float('nan')):>9.1f}"
            f"{r.get('train_s', r.get('wall_s')):>9.1f}"
            f"{goal_text:>14}"
        )
    lf = results["langevinflow"]
    rivals = {k: r["co_bps"] for k, r in results.items() if k != "langevinflow"}
    verdict = "yes" if all(lf["co_bps"] > v for v in rivals.values()) else "NO"
    print(
        f"\nLangevinFlow co-bps {lf['co_bps']:.4f} vs "
        + ", ".join(f"{k} {v:.4f}" for k, v in rivals.items())
        + f": above every baseline run here: {verdict}; rate R2 {lf['rate_r2']:.3f} "
        f"(goal {R2_GOAL}); {lf['steps']} steps in {lf['train_s']:.0f} s training on {device}"
    )
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=1, default=float)


if __name__ == "__main__":
    main()
