"""The ``neurodag`` command line: one subcommand per stage, plus ``inspect`` and ``config``.

Only the standard library is imported at module level, so ``neurodag --help`` starts fast; each
subcommand imports what it needs when it runs.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path
from typing import Any

log = logging.getLogger("neurodag")


def _json_arg(text: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise argparse.ArgumentTypeError(f"not valid JSON: {exc}") from exc


def _add_dataset_args(
    parser: argparse.ArgumentParser, output_help: str = "NetCDF file to write"
) -> None:
    source = parser.add_argument_group("dataset (either --config and --dataset, or --spec)")
    source.add_argument(
        "--config",
        action="append",
        metavar="FILE",
        help="config YAML; repeat to merge several, later over earlier",
    )
    source.add_argument("--dataset", help="name of the dataset entry in the config")
    source.add_argument("--spec", type=_json_arg, help="the dataset entry itself, as JSON")
    parser.add_argument(
        "--params", type=_json_arg, help="stage parameters as JSON (default: the config's)"
    )
    parser.add_argument("-o", "--output", required=True, help=output_help)


def _resolve_dataset(args: argparse.Namespace, stage: str) -> tuple[dict, dict]:
    """The dataset entry and the stage parameters, validated and with defaults filled in."""
    from neurodag import config as cfg
    from neurodag.errors import ConfigError

    if args.spec is not None:
        config = cfg.validate({"datasets": {"dataset": args.spec}}, source="--spec")
        spec = config["datasets"]["dataset"]
    elif args.config and args.dataset:
        config = cfg.load_config(args.config)
        if args.dataset not in config["datasets"]:
            raise ConfigError(
                f"datasets.{args.dataset}: no such dataset; the config has "
                f"{', '.join(config['datasets']) or 'none'}"
            )
        spec = config["datasets"][args.dataset]
    else:
        raise ConfigError("give either --spec JSON, or --config FILE and --dataset NAME")
    params = cfg.stage_parameters(config, stage)
    if args.params is not None:
        params = cfg.validate({"datasets": {}, "stages": {stage: args.params}}, source="--params")[
            "stages"
        ][stage]
    return spec, params


def cmd_homogenize(args: argparse.Namespace) -> None:
    from neurodag.homogenize import homogenize
    from neurodag.io.netcdf import write_dataset

    spec, params = _resolve_dataset(args, "homogenize")
    log.info("homogenize %s dataset (format %s)", spec["kind"], spec["format"])
    ds, inputs = homogenize(
        spec,
        params,
        ingested=args.ingested,
        compute=_compute_settings(args).get("dask"),
        threads=args.threads,
        memory_mb=args.memory_mb,
    )
    path = write_dataset(
        ds, args.output, stage="homogenize", parameters={"dataset": spec, **params}, inputs=inputs
    )
    log.info("wrote %s", path)
    if args.figure:
        from neurodag.homogenize.figures import plot_homogenized

        log.info("figure %s", plot_homogenized(ds, args.figure, title=Path(args.output).stem))


def cmd_geometry(args: argparse.Namespace) -> None:
    from pathlib import Path

    from neurodag.errors import ConfigError
    from neurodag.geometry.stage import figures, geometry_from_rdms, geometry_from_responses
    from neurodag.io.netcdf import write_dataset

    spec, params = _resolve_dataset(args, "geometry")
    if spec["kind"] == "rdm":
        ds, inputs = geometry_from_rdms(spec, params)
    else:
        if not args.input:
            raise ConfigError(f"geometry of a {spec['kind']} dataset needs --input responses files")
        ds, inputs = geometry_from_responses(args.input, params), args.input
    path = write_dataset(
        ds, args.output, stage="geometry", parameters={"dataset": spec, **params}, inputs=inputs
    )
    log.info("wrote %s", path)
    if not args.no_figures:
        for figure_path in figures(ds, Path(args.output).with_suffix("")):
            log.info("wrote %s", figure_path)


def _compute_settings(args: argparse.Namespace) -> dict:
    """The config's ``compute`` section: --compute JSON, else the --config files', else defaults."""
    from neurodag import config as cfg

    if getattr(args, "compute", None) is not None:
        return cfg.validate({"datasets": {}, "compute": args.compute}, source="--compute")[
            "compute"
        ]
    if args.config:
        return cfg.load_config(args.config)["compute"]
    return cfg.validate({"datasets": {}})["compute"]


def cmd_ingest(args: argparse.Namespace) -> None:
    from pathlib import Path

    from neurodag.io.celegans import read_recording, recording_files
    from neurodag.io.netcdf import write_dataset

    spec, params = _resolve_dataset(args, "ingest")
    if spec["kind"] != "celegans":
        from neurodag.errors import ConfigError

        raise ConfigError(f"ingest: kind {spec['kind']!r} is not handled here (celegans)")
    files = [Path(p) for p in args.input] if args.input else recording_files(spec, args.recording)
    ds = read_recording(spec, args.recording, files, params.get("celegans", {}))
    path = write_dataset(
        ds, args.output, stage="ingest", parameters={"dataset": spec, **params}, inputs=files
    )
    log.info("wrote %s", path)


def cmd_simulate(args: argparse.Namespace) -> None:
    from neurodag.errors import ConfigError

    spec, _ = _resolve_dataset(args, "simulate")
    if spec.get("kind") != args.kind or spec.get("format") != "simulated":
        raise ConfigError(
            f"neurodag simulate {args.kind} needs a dataset with kind {args.kind} and format "
            f"simulated, got kind {spec.get('kind')} and format {spec.get('format')}"
        )
    options = spec.get("simulate") or {}
    if args.kind == "celegans":
        from neurodag.simulate.celegans import write_simulation

        paths = write_simulation(args.output, options)
        log.info("wrote %d files into %s", len(paths), args.output)
        return
    from neurodag.simulate.allen import simulate, write_session

    session = simulate(options)
    paths = write_session(session, args.output, parameters={"dataset": spec})
    log.info(
        "simulated %d units, %d spikes, stimuli %s -> %s",
        len(session.units),
        session.spike_times.size,
        ", ".join(session.presentations),
        ", ".join(map(str, paths)),
    )


def cmd_ingest_allen(args: argparse.Namespace) -> None:
    from neurodag.ingest_allen import ingest_session, responses_for, write_outputs

    spec, params = _resolve_dataset(args, "ingest")
    if spec.get("kind") != "allen":
        from neurodag.errors import ConfigError

        raise ConfigError(f"ingest-allen: the dataset is kind {spec.get('kind')!r}, not allen")
    params = params.get("allen", {})
    params = {**params, "responses": responses_for(spec, params)}
    outputs = ingest_session(args.input, spec, params, only=args.only)
    paths = write_outputs(
        outputs, args.output, parameters={"dataset": spec, **params}, inputs=[args.input]
    )
    log.info("%s: wrote %s", args.input, ", ".join(map(str, paths)))


def cmd_latents(args: argparse.Namespace) -> None:
    from pathlib import Path

    from neurodag import config as cfg
    from neurodag.io.netcdf import write_dataset
    from neurodag.latents.stage import plot_latents, read_responses, run_latents

    params = cfg.validate(
        {"datasets": {}, "stages": {"latents": args.params or {}}}, source="--params"
    )["stages"]["latents"]
    output = Path(args.output)
    checkpoint = args.checkpoint or output.with_name(output.stem + ".checkpoint.pt")
    out = run_latents(
        args.input,
        params,
        device=args.device,
        checkpoint=checkpoint,
        truth=args.truth,
        threads=args.threads,
    )
    inputs = [args.input] + ([args.truth] if args.truth else [])
    write_dataset(out, output, stage="latents", parameters=params, inputs=inputs)
    log.info(
        "wrote %s (co-bps %.3f, fp-bps %.3f, PSTH R2 %.3f)",
        output,
        out["co_bps"].item(),
        out["fp_bps"].item(),
        out["psth_r2"].item(),
    )
    if not args.no_figure:
        from neurodag.io.netcdf import open_dataset

        counts, _ = read_responses(args.input, open_dataset(args.input))
        log.info("figure %s", plot_latents(out, counts, output.with_suffix(".rates.png")))


def cmd_mds(args: argparse.Namespace) -> None:
    from pathlib import Path

    from neurodag import config as cfg
    from neurodag.io.netcdf import write_dataset
    from neurodag.mds.stage import plot_mds, run_mds

    params = cfg.validate(
        {"datasets": {}, "stages": {"mds": args.params or {}}}, source="--params"
    )["stages"]["mds"]
    inputs = [Path(p) for p in args.input]
    ds = run_mds(inputs, params, device=args.device, truth=Path(args.truth) if args.truth else None)
    extra = [Path(args.truth)] if args.truth else []
    path = write_dataset(ds, args.output, stage="mds", parameters=params, inputs=[*inputs, *extra])
    figure = plot_mds(ds, path.with_suffix(".mds.png"))
    log.info("wrote %s and %s", path, figure)


def cmd_connectome(args: argparse.Namespace) -> None:
    from neurodag import config as cfg
    from neurodag.compute import dask_client
    from neurodag.connectome import dynamic_connectome
    from neurodag.connectome.figures import write_figures
    from neurodag.io.netcdf import open_dataset, write_dataset

    params = cfg.validate(
        {"datasets": {}, "stages": {"connectome": args.params or {}}}, source="--params"
    )["stages"]["connectome"]
    activity = open_dataset(args.input).load()
    if "activity" not in activity:
        from neurodag.errors import InputError

        raise InputError(args.input, "activity", "no activity(worm, time, neuron) variable")
    anatomy = open_dataset(args.anatomy).load() if args.anatomy else None
    truth = open_dataset(args.truth).load() if args.truth else None
    compute = _compute_settings(args).get("dask")
    with dask_client(compute, threads=args.threads, memory_mb=args.memory_mb) as client:
        result = dynamic_connectome(
            activity, params, client=client, connectome=anatomy, truth=truth
        )
    inputs = [p for p in (args.input, args.anatomy, args.truth) if p]
    path = write_dataset(result, args.output, stage="connectome", parameters=params, inputs=inputs)
    log.info("wrote %s", path)
    if "validation_nmi" in result.attrs:
        log.info(
            "validation: time-factor correlation of matched components %s; planted-group NMI "
            "%.3f (SBM) vs %.3f (Louvain) over correctly identified names (%d misidentified "
            "names left out)",
            [round(float(v), 3) for v in result["validation_time_correlation"].values],
            result.attrs["validation_nmi"],
            result.attrs["validation_nmi_louvain"],
            result.attrs["validation_misidentified_names"],
        )
    if not args.no_figures:
        for figure_path in write_figures(result, activity, path):
            log.info("wrote %s", figure_path)


def cmd_summarize(args: argparse.Namespace) -> None:
    from neurodag.validation import write_summary

    table = write_summary(args.files, args.output)
    log.info("%d figures from %d files -> %s", len(table), len(args.files), args.output)


def cmd_bicluster(args: argparse.Namespace) -> None:
    from neurodag import config as cfg
    from neurodag.bicluster.stage import plot, run
    from neurodag.io.netcdf import write_dataset

    params = cfg.validate(
        {"datasets": {}, "stages": {"bicluster": args.params or {}}}, source="--params"
    )["stages"]["bicluster"]
    compute = cfg.validate({"datasets": {}, "compute": args.compute or {}}, source="--compute")
    ds = run(
        args.input,
        params,
        compute=compute["compute"]["dask"],
        threads=args.threads,
        truth=args.truth,
    )
    path = write_dataset(ds, args.output, stage="bicluster", parameters=params, inputs=args.input)
    for figure_path in plot(ds, path.with_suffix("")):
        log.info("wrote %s", figure_path)
    log.info("wrote %s", path)


def cmd_inspect(args: argparse.Namespace) -> None:
    from neurodag.inspect import describe, quick_look

    print(describe(args.file, max_values=args.values))
    if args.plot is not None:
        print(f"quick look: {quick_look(args.file, args.plot or None)}")


def cmd_config(args: argparse.Namespace) -> None:
    import yaml

    from neurodag.config import load_config

    print(yaml.safe_dump(load_config(args.files), sort_keys=False), end="")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="neurodag",
        description="Neural recordings into labelled xarray datasets, analysed as one DAG.",
    )
    parser.add_argument("--version", action="store_true", help="print the version and exit")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    p = sub.add_parser(
        "homogenize",
        help="homogenize a dataset onto the canonical neuron axis (connectomes: + consensus)",
    )
    _add_dataset_args(p)
    p.add_argument("--figure", metavar="PNG", help="also draw the stage's summary figure")
    p.add_argument(
        "--ingested",
        nargs="+",
        metavar="FILE",
        help="C. elegans: the dataset's ingest files (results/ingest/<dataset>/*.nc)",
    )
    p.add_argument("--threads", type=int, help="cores for the Dask workers (default: all)")
    p.add_argument("--memory-mb", type=int, help="memory for the Dask workers, in MB")
    p.add_argument(
        "--compute",
        type=_json_arg,
        help="the config's compute section as JSON (Dask cluster: local, slurm or address)",
    )
    p.set_defaults(func=cmd_homogenize)

    p = sub.add_parser(
        "geometry",
        help="RDMs, topological RSA and population geometry (trial responses or RDM files)",
    )
    _add_dataset_args(p)
    p.add_argument(
        "--input",
        nargs="+",
        metavar="FILE",
        help="trial responses (the ingest's {stimulus}.nc), one per recording; not for kind rdm",
    )
    p.add_argument("--no-figures", action="store_true", help="write the NetCDF file only")
    p.set_defaults(func=cmd_geometry)

    p = sub.add_parser(
        "ingest",
        help="read one recording into the data model (C. elegans calcium)",
    )
    p.add_argument("--recording", required=True, help="recording name (the output file's stem)")
    p.add_argument(
        "--input", nargs="+", metavar="FILE", help="files to read (default: found from the spec)"
    )
    _add_dataset_args(p)
    p.set_defaults(func=cmd_ingest)

    p = sub.add_parser(
        "simulate",
        help="write a simulated dataset in its real file format, with a truth.nc beside it",
        description=(
            "celegans: one NWB file per worm (celegans-nwb format) and truth.nc; "
            "allen: an Allen Neuropixels session.nwb with planted structure and truth.nc."
        ),
    )
    p.add_argument("kind", choices=["celegans", "allen"], help="what to simulate")
    _add_dataset_args(p, output_help="folder to write the files into")
    p.set_defaults(func=cmd_simulate)

    p = sub.add_parser(
        "ingest-allen",
        help="read an Allen Neuropixels session NWB into counts.nc and {stimulus}.nc",
    )
    p.add_argument("--input", required=True, metavar="FILE.nwb", help="the session file")
    p.add_argument(
        "--only",
        action="append",
        metavar="NAME",
        help="write only counts, or only this aligned stimulus (repeatable; default: all)",
    )
    _add_dataset_args(p, "folder to write: counts.nc and one {stimulus}.nc per aligned stimulus")
    p.set_defaults(func=cmd_ingest_allen)

    p = sub.add_parser(
        "latents", help="LangevinFlow latent dynamics of trial-aligned spike counts (Song et al.)"
    )
    p.add_argument("--input", required=True, help="ingest file with responses(trial, neuron, time)")
    p.add_argument("--params", type=_json_arg, help="stages.latents parameters as JSON")
    p.add_argument("-o", "--output", required=True, help="NetCDF file to write")
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    p.add_argument("--threads", type=int, help="torch CPU threads (the rule's threads)")
    p.add_argument(
        "--checkpoint", help="training checkpoint (default: OUTPUT.checkpoint.pt); resumed if found"
    )
    p.add_argument("--truth", help="truth file with true_rate(trial, neuron, time) for rate R2")
    p.add_argument("--no-figure", action="store_true", help="skip the figure beside the output")
    p.set_defaults(func=cmd_latents)

    p = sub.add_parser(
        "mds", help="most-discriminative-stimuli clustering of functional cell types"
    )
    p.add_argument(
        "--input", nargs="+", required=True, metavar="FILE", help="ingest image-response files"
    )
    p.add_argument("--params", type=_json_arg, help="stages.mds parameters as JSON")
    p.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto")
    p.add_argument("--truth", help="truth file with true_type(neuron), for validation")
    p.add_argument("-o", "--output", required=True, help="NetCDF file to write")
    p.set_defaults(func=cmd_mds)

    p = sub.add_parser(
        "connectome",
        help="dynamic functional connectome of homogenized worms (Dyballa et al.)",
        description="Sliding-window affinities -> non-negative CP -> weighted SBM communities.",
    )
    p.add_argument("--input", required=True, help="results/homogenize/<dataset>.nc")
    p.add_argument("--anatomy", help="homogenized connectome file (structure-vs-function test)")
    p.add_argument("--truth", help="simulation truth.nc: also validate against planted groups")
    p.add_argument(
        "--params", type=_json_arg, help="stages.connectome parameters as JSON (default: schema)"
    )
    p.add_argument("--config", action="append", metavar="FILE", help="config (compute section)")
    p.add_argument("--threads", type=int, help="cores for the Dask workers (default: all)")
    p.add_argument("--memory-mb", type=int, help="memory for the Dask workers, in MB")
    p.add_argument("--no-figures", action="store_true", help="skip the PNG figures")
    p.add_argument("-o", "--output", required=True, help="NetCDF file to write")
    p.set_defaults(func=cmd_connectome)

    p = sub.add_parser(
        "summarize", help="one table of the stages' ground-truth recovery and headline figures"
    )
    p.add_argument("files", nargs="+", metavar="FILE.nc", help="stage outputs")
    p.add_argument("-o", "--output", required=True, help="HTML file (a .tsv is written beside)")
    p.set_defaults(func=cmd_summarize)

    p = sub.add_parser(
        "bicluster",
        help="Bayesian bi-clustering of binned spike counts (Wei et al.), MCMC",
    )
    p.add_argument("--input", nargs="+", required=True, help="ingest counts.nc of a recording")
    p.add_argument("--params", type=_json_arg, help="stages.bicluster parameters (JSON)")
    p.add_argument("--compute", type=_json_arg, help="the config's compute section (JSON)")
    p.add_argument("--threads", type=int, default=1, help="parallel chains (Dask workers)")
    p.add_argument("--truth", help="a simulated session's truth.nc, for validation")
    p.add_argument("-o", "--output", required=True, help="output .nc (figures beside it)")
    p.set_defaults(func=cmd_bicluster)

    p = sub.add_parser("inspect", help="describe a neurodag NetCDF file")
    p.add_argument("file", help="a .nc file written by neurodag")
    p.add_argument("--values", type=int, default=5, help="coordinate values shown per dimension")
    p.add_argument(
        "--plot",
        nargs="?",
        const="",
        metavar="PNG",
        help="also draw every numeric variable into PNG (default: FILE with .png)",
    )
    p.set_defaults(func=cmd_inspect)

    p = sub.add_parser("config", help="validate config files and print the merged result")
    p.add_argument("files", nargs="+", metavar="FILE", help="YAML files, later merged over earlier")
    p.set_defaults(func=cmd_config)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.version:
        from neurodag import __version__

        print(__version__)
        return 0
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    from neurodag.errors import NeurodagError

    try:
        args.func(args)
    except NeurodagError as exc:
        print(f"neurodag {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"neurodag {args.command}: interrupted", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
