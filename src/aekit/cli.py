"""The ``aekit`` command: parse, build a config, call the same functions a Python user calls.

Heavy imports (torch, Lightning Fabric) happen inside the commands, so ``--help`` answers at once.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

EPILOG = """Examples:
  aekit train vae --data digits --out runs/vae --steps 500 latent_dim=8 beta=2
  aekit evaluate runs/vae --nll-samples 1000
  aekit sample runs/vae -n 64"""


def _parse_overrides(items: list[str]) -> dict[str, str]:
    from aekit.errors import ConfigError

    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ConfigError(f"{item!r} is not key=value; write settings such as latent_dim=8 or lr=3e-4")
        out[key.strip()] = value.strip()
    return out


def _read_recipe(path: str) -> dict[str, Any]:
    import yaml

    from aekit.errors import ConfigError

    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"{path}: no such config file")
    try:
        recipe = yaml.safe_load(p.read_text()) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: invalid YAML ({str(exc).splitlines()[0]})") from None
    if not isinstance(recipe, dict) or not set(recipe) <= {"model", "data", "train"}:
        raise ConfigError(f"{path}: a recipe holds the sections model, data and train (found {sorted(recipe)})")
    return {k: dict(v or {}) for k, v in recipe.items()}


def cmd_train(args: argparse.Namespace) -> int:
    from aekit.training import train

    recipe = _read_recipe(args.config) if args.config else {}
    if args.model and "=" in args.model:  # no MODEL given: the first key=value landed in its place
        args.overrides, args.model = [args.model, *args.overrides], None
    overrides: dict[str, Any] = _parse_overrides(args.overrides)
    for flag in ("steps", "epochs", "seed", "devices"):
        if getattr(args, flag) is not None:
            overrides[flag] = getattr(args, flag)
    model = args.model or recipe.get("model", {}).get("name")
    recipe.get("model", {}).pop("name", None)
    data = args.data or recipe.get("data", {}).pop("name", None) or "digits"
    result = train(model or "vae", data, args.out, resume=args.resume, config_file=recipe,
                   evaluate=not args.no_eval, **overrides)
    shown = {k: v for k, v in result.metrics.items() if not isinstance(v, list)}
    print(json.dumps(shown, indent=2))
    print(f"model: {result.run_dir / 'model'}")
    if result.report:
        print(f"report: {result.report}")
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    from aekit.config import from_dict
    from aekit.evaluation import evaluate
    from aekit.io import default_device, load, read_json
    from aekit.outputs import write_metrics
    from aekit.report import write_report
    from aekit.training import DataConfig, load_splits

    run_dir = Path(args.run_dir)
    model = load(run_dir, map_location=default_device())
    run = read_json(run_dir / "config.json")
    splits = load_splits(from_dict(DataConfig, run["data"]))
    metrics = read_json(run_dir / "metrics.json") if (run_dir / "metrics.json").is_file() else {}
    metrics.update(evaluate(model, splits, nll_samples=args.nll_samples, nll_examples=args.nll_examples,
                            seed=args.seed))
    write_metrics(run_dir, metrics)
    print(json.dumps({k: v for k, v in metrics.items() if not isinstance(v, list)}, indent=2))
    print(f"report: {write_report(run_dir)}")
    return 0


def cmd_sample(args: argparse.Namespace) -> int:
    import numpy as np
    import torch

    from aekit.io import load
    from aekit.report import plot_samples

    model = load(args.run_dir)
    samples = model.sample(args.n, generator=torch.Generator().manual_seed(args.seed)).cpu()
    out = Path(args.out) if args.out else Path(args.run_dir) / "samples"
    out.mkdir(parents=True, exist_ok=True)
    np.save(out / "samples.npy", samples.numpy())
    print(f"samples: {out / 'samples.npy'}")
    print(f"figure: {plot_samples(samples, out / 'samples.png')}")
    return 0


def cmd_models(args: argparse.Namespace) -> int:
    import dataclasses

    from aekit.registry import list_models, model_entry
    from aekit.training import DataConfig, TrainConfig

    if not args.name:
        for entry in list_models():
            print(f"{entry.name:<12} {entry.description}")
        return 0
    entry = model_entry(args.name)
    print(f"{entry.name}: {entry.description}")
    for title, cls in (("model", entry.config_class), ("data", DataConfig), ("train", TrainConfig)):
        print(f"\n{title} keys (key=value on `aekit train`):")
        for field in dataclasses.fields(cls):
            print(f"  {field.name:<18} {field.default!r}")
    return 0


def cmd_datasets(args: argparse.Namespace) -> int:
    from aekit.data import list_datasets

    for name, description in list_datasets():
        print(f"{name:<16} {description}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="aekit", description="Train, evaluate and sample autoencoders.",
                                     epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("train", help="train a model and write a run directory with its report",
                       description="Train MODEL on DATA; key=value pairs set model, data or train config keys "
                                   "(e.g. latent_dim=8 lr=3e-4 checkpoint_every=100 beta=4).")
    p.add_argument("model", nargs="?", help="registered model name (see `aekit models`)")
    p.add_argument("--data", help="registered dataset name (see `aekit datasets`) or a path to your files")
    p.add_argument("--out", required=True, help="run directory to write")
    p.add_argument("--config", help="YAML recipe with model/data/train sections (see configs/)")
    group = p.add_mutually_exclusive_group()
    group.add_argument("--steps", type=int, help="optimiser steps")
    group.add_argument("--epochs", type=int, help="passes over the training split")
    p.add_argument("--seed", type=int)
    p.add_argument("--devices", type=int, help="processes/GPUs; >1 runs DDP (gloo on CPU)")
    p.add_argument("--resume", action="store_true", help="continue the run in --out from its latest checkpoint")
    p.add_argument("--no-eval", action="store_true", help="skip the final evaluation, figures and report")
    p.add_argument("overrides", nargs="*", metavar="key=value")
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("evaluate", help="evaluate a trained run on its test split")
    p.add_argument("run_dir")
    p.add_argument("--nll-samples", type=int, default=1000, help="importance samples for test NLL (0: skip)")
    p.add_argument("--nll-examples", type=int, default=None, help="evaluate NLL on the first N test examples")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=cmd_evaluate)

    p = sub.add_parser("sample", help="draw samples from a trained variational model's prior")
    p.add_argument("run_dir")
    p.add_argument("-n", type=int, default=64, help="number of samples")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", help="folder for samples.npy and samples.png (default RUN_DIR/samples)")
    p.set_defaults(func=cmd_sample)

    p = sub.add_parser("models", help="list the registered models, or one model's settings")
    p.add_argument("name", nargs="?", help="show this model's config keys and their defaults")
    p.set_defaults(func=cmd_models)
    p = sub.add_parser("datasets", help="list the registered datasets")
    p.set_defaults(func=cmd_datasets)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    # key=value pairs may stand anywhere after `train`, also between options
    stray = [e for e in extra if e.startswith("-") or args.command != "train"]
    if stray:
        parser.error(f"unrecognized arguments: {' '.join(stray)}")
    if extra:
        args.overrides = [*args.overrides, *extra]
    from aekit.errors import AekitError

    try:
        return args.func(args)
    except AekitError as exc:
        print(f"aekit: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("aekit: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
