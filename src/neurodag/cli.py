"""The ``neurodag`` command line: one subcommand per stage, plus ``inspect`` and ``config``.

Only the standard library is imported at module level, so ``neurodag --help`` starts fast; each
subcommand imports what it needs when it runs.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from typing import Any

log = logging.getLogger("neurodag")


def _json_arg(text: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise argparse.ArgumentTypeError(f"not valid JSON: {exc}") from exc


def _add_dataset_args(parser: argparse.ArgumentParser) -> None:
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
    parser.add_argument("-o", "--output", required=True, help="NetCDF file to write")


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
    ds, inputs = homogenize(spec, params)
    path = write_dataset(
        ds, args.output, stage="homogenize", parameters={"dataset": spec, **params}, inputs=inputs
    )
    log.info("wrote %s", path)


def cmd_bicluster(args: argparse.Namespace) -> None:
    from neurodag import config as cfg
    from neurodag.bicluster.stage import plot, run
    from neurodag.io.netcdf import write_dataset

    params = cfg.validate(
        {"datasets": {}, "stages": {"bicluster": args.params or {}}}, source="--params"
    )["stages"]["bicluster"]
    compute = cfg.validate({"datasets": {}, "compute": args.compute or {}}, source="--compute")
    ds = run(args.input, params, compute=compute["compute"]["dask"], threads=args.threads)
    path = write_dataset(ds, args.output, stage="bicluster", parameters=params, inputs=args.input)
    for figure_path in plot(ds, path.with_suffix("")):
        log.info("wrote %s", figure_path)
    log.info("wrote %s", path)


def cmd_inspect(args: argparse.Namespace) -> None:
    from neurodag.inspect import describe

    print(describe(args.file, max_values=args.values))


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
    p.set_defaults(func=cmd_homogenize)

    p = sub.add_parser(
        "bicluster",
        help="Bayesian bi-clustering of binned spike counts (Wei et al.), MCMC",
    )
    p.add_argument("--input", nargs="+", required=True, help="ingest counts.nc of a recording")
    p.add_argument("--params", type=_json_arg, help="stages.bicluster parameters (JSON)")
    p.add_argument("--compute", type=_json_arg, help="the config's compute section (JSON)")
    p.add_argument("--threads", type=int, default=1, help="parallel chains (Dask workers)")
    p.add_argument("-o", "--output", required=True, help="output .nc (figures beside it)")
    p.set_defaults(func=cmd_bicluster)

    p = sub.add_parser("inspect", help="describe a neurodag NetCDF file")
    p.add_argument("file", help="a .nc file written by neurodag")
    p.add_argument("--values", type=int, default=5, help="coordinate values shown per dimension")
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
