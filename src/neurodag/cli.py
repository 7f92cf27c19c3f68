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


def _dataset(args: argparse.Namespace) -> tuple[dict | None, dict]:
    """The dataset entry (None when neither --spec nor --config/--dataset names one) and the
    config it came from (validated, defaults filled in)."""
    from neurodag import config as cfg
    from neurodag.errors import ConfigError

    if args.spec is not None:
        config = cfg.validate({"datasets": {"dataset": args.spec}}, source="--spec")
        return config["datasets"]["dataset"], config
    config = cfg.load_config(args.config) if args.config else cfg.validate({"datasets": {}})
    if args.dataset is None:
        return None, config
    if not args.config:
        raise ConfigError("--dataset NAME needs --config FILE (or give the entry as --spec JSON)")
    if args.dataset not in config["datasets"]:
        raise ConfigError(
            f"datasets.{args.dataset}: no such dataset; the config has "
            f"{', '.join(config['datasets']) or 'none'}"
        )
    return config["datasets"][args.dataset], config


def _stage_parameters(args: argparse.Namespace, config: dict, stage: str) -> dict:
    """--params (validated as the stage's block), else the config's block of the stage."""
    from neurodag import config as cfg

    if args.params is None:
        return cfg.stage_parameters(config, stage)
    block = {"datasets": {}, "stages": {stage: args.params}}
    return cfg.validate(block, source="--params")["stages"][stage]


def _compute(args: argparse.Namespace, config: dict):
    """--compute JSON (else the config's compute section), the job's size, and --device."""
    from neurodag.compute import Compute

    section = args.compute if args.compute is not None else config["compute"]
    return Compute.from_config(
        section, threads=args.threads, memory_mb=args.memory_mb, device=args.device
    )


def cmd_stage(args: argparse.Namespace) -> None:
    """Every analysis stage: run, validate (against --truth when given), write, draw figures."""
    from neurodag.io.netcdf import write_dataset
    from neurodag.stages import stage

    registered = stage(args.command)
    spec, config = _dataset(args)
    params = _stage_parameters(args, config, registered.name)
    compute = _compute(args, config)
    roles = registered.input_roles
    inputs = {roles[0]: [Path(p) for p in args.input or []]}
    inputs.update(
        {role: [Path(p) for p in getattr(args, role)] for role in roles[1:] if getattr(args, role)}
    )
    output = Path(args.output)
    truth = Path(args.truth) if args.truth else None
    if spec is not None:
        log.info("%s: %s dataset (format %s)", registered.name, spec["kind"], spec["format"])
    result = registered.verb("run")(inputs, params, compute=compute, dataset=spec, output=output)
    validation = registered.verb("validate")(result, truth)
    result = result.assign(validation.data_vars)
    read = [p for files in inputs.values() for p in files] + ([truth] if truth else [])
    parameters = {"dataset": spec, **params} if spec is not None else params
    path = write_dataset(result, output, stage=registered.name, parameters=parameters, inputs=read)
    log.info("wrote %s", path)
    if not args.no_figures:
        for figure_path in registered.verb("figures")(result, output.with_suffix("")):
            log.info("figure %s", figure_path)


def cmd_ingest(args: argparse.Namespace) -> None:
    """One recording of any kind into the data model, through the format registry."""
    from neurodag.io import formats
    from neurodag.io.netcdf import write_dataset

    spec, config = _dataset(args)
    if spec is None:
        from neurodag.errors import ConfigError

        raise ConfigError("ingest needs the dataset's entry (--spec, or --config and --dataset)")
    params = _stage_parameters(args, config, "ingest").get(spec["kind"], {})
    fmt = formats.lookup(spec)
    if fmt.kind == "allen":  # a dataset's own responses replace the stage's
        from neurodag.ingest_allen import responses_for

        params = {**params, "responses": responses_for(spec, params)}
    files = (
        [Path(p) for p in args.input]
        if args.input
        else formats.recording_files(spec, args.recording)
    )
    outputs = formats.read(spec, args.recording, files, params)
    parameters = {"dataset": spec, **params}
    output = Path(args.output)
    if not isinstance(outputs, dict):
        path = write_dataset(outputs, output, stage="ingest", parameters=parameters, inputs=files)
        log.info("wrote %s", path)
        return
    # every output is computed before the first is written: a failure leaves none behind
    for name, ds in outputs.items():
        path = write_dataset(
            ds, output / f"{name}.nc", stage="ingest", parameters=parameters, inputs=files
        )
        log.info("wrote %s", path)
    if fmt.figures is not None and not args.no_figures:
        for figure_path in fmt.call("figures", outputs, output):
            log.info("figure %s", figure_path)


def cmd_simulate(args: argparse.Namespace) -> None:
    from neurodag.errors import ConfigError

    spec, _ = _dataset(args)
    if spec is None:
        raise ConfigError("simulate needs the dataset's entry (--spec, or --config and --dataset)")
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
    from neurodag.simulate.allen import simulate

    if args.kind == "spikes":  # the same composed session, in the generic NWB layout
        from neurodag.simulate.spikes import write_session
    else:
        from neurodag.simulate.allen import write_session
    session = simulate(options)
    if args.kind == "allen":
        from neurodag.simulate.allen import check_images_option

        check_images_option(session, spec)
    paths = write_session(session, args.output, parameters={"dataset": spec})
    log.info(
        "simulated %d units, %d spikes, stimuli %s -> %s",
        len(session.units),
        session.spike_times.size,
        ", ".join(session.presentations),
        ", ".join(map(str, paths)),
    )


def cmd_summarize(args: argparse.Namespace) -> None:
    from neurodag.validation import write_summary

    table = write_summary(args.files, args.output)
    log.info("%d figures from %d files -> %s", len(table), len(args.files), args.output)


def cmd_inspect(args: argparse.Namespace) -> None:
    from neurodag.inspect import describe, quick_look

    print(describe(args.file, max_values=args.values))
    if args.plot is not None:
        print(f"quick look: {quick_look(args.file, args.plot or None)}")


def cmd_config(args: argparse.Namespace) -> None:
    import yaml

    from neurodag.config import load_config

    print(yaml.safe_dump(load_config(args.files), sort_keys=False), end="")


def add_stage_command(sub, name: str) -> None:
    """``neurodag <stage>``: the same options for every registered stage (its input roles come
    from the stage package's ``INPUTS``; the first one is ``--input``)."""
    from neurodag.stages import stage

    registered = stage(name)
    module = registered.module
    p = sub.add_parser(name, help=module.HELP, description=module.HELP)
    _add_dataset_args(p, "NetCDF file to write (figures beside it)")
    roles = list(module.INPUTS.items())
    p.add_argument("--input", nargs="+", metavar="FILE", help=roles[0][1])
    for role, text in roles[1:]:
        p.add_argument(f"--{role}", nargs="+", metavar="FILE", help=text)
    p.add_argument("--truth", metavar="FILE", help="a simulation's truth.nc: also validate")
    p.add_argument(
        "--compute", type=_json_arg, help="the config's compute section as JSON (Dask, device)"
    )
    p.add_argument("--threads", type=int, help="cores the job may use (default: all)")
    p.add_argument("--memory-mb", type=int, help="memory the job may use, in MB")
    p.add_argument("--device", choices=["auto", "cpu", "cuda"], help="torch device (torch stages)")
    p.add_argument("--no-figures", action="store_true", help="write the NetCDF file only")
    p.set_defaults(func=cmd_stage)


def build_parser() -> argparse.ArgumentParser:
    from neurodag.stages import stages

    parser = argparse.ArgumentParser(
        prog="neurodag",
        description="Neural recordings into labelled xarray datasets, analysed as one DAG.",
    )
    parser.add_argument("--version", action="store_true", help="print the version and exit")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    p = sub.add_parser(
        "simulate",
        help="write a simulated dataset in its real file format, with a truth.nc beside it",
        description=(
            "celegans: one NWB file per worm (celegans-nwb format) and truth.nc; "
            "allen: an Allen Neuropixels session.nwb with planted structure and truth.nc."
        ),
    )
    p.add_argument("kind", choices=["celegans", "allen", "spikes"], help="what to simulate")
    _add_dataset_args(p, output_help="folder to write the files into")
    p.set_defaults(func=cmd_simulate)

    p = sub.add_parser(
        "ingest",
        help="read one recording into the data model (any registered kind and format)",
        description=(
            "C. elegans recordings are written to OUTPUT (one .nc); spiking sessions (kinds allen "
            "and spikes) into the folder OUTPUT: counts.nc and one {name}.nc per aligned stimulus "
            "or trial alignment, with figures."
        ),
    )
    p.add_argument("--recording", required=True, help="recording name (the output's stem)")
    p.add_argument(
        "--input", nargs="+", metavar="FILE", help="files to read (default: found from the spec)"
    )
    p.add_argument("--no-figures", action="store_true", help="write the NetCDF files only")
    _add_dataset_args(p, "NetCDF file, or folder for kinds with several outputs (allen, spikes)")
    p.set_defaults(func=cmd_ingest)

    for name in stages():
        add_stage_command(sub, name)

    p = sub.add_parser(
        "summarize", help="one table of the stages' ground-truth recovery and headline figures"
    )
    p.add_argument("files", nargs="+", metavar="FILE.nc", help="stage outputs")
    p.add_argument("-o", "--output", required=True, help="HTML file (a .tsv is written beside)")
    p.set_defaults(func=cmd_summarize)

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
