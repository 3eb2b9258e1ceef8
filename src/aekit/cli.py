"""The ``aekit`` command: parse, build a config, call the same functions a Python user calls.

Heavy imports (torch, Lightning Fabric) happen inside the commands, so ``--help`` answers at once.
"""

from __future__ import annotations

import argparse
import dataclasses
import inspect
import json
import math
import re
import sys
from pathlib import Path
from typing import Any

EPILOG = """Examples:
  aekit train vae --data digits --out runs/vae --steps 500 latent_dim=8 beta=2
  aekit evaluate runs/vae --nll-samples 1000
  aekit evaluate runs/vae --data my-digits.npz  # the same model scored on other data of its shape
  aekit sample runs/vae -n 64
  aekit sample runs/vae -n 64 --sampler gaussian-mixture
  aekit compare runs/vae runs/bvae --out runs/compare
  aekit train mae --data cifar10 --out runs/mae --steps 3000 masker=block norm_pix_loss=true
  aekit convert hf-vit-mae-base/ --out models/mae-base   # Hugging Face ViTMAE weights -> aekit
  aekit detect nyc_taxi.csv --out runs/taxi --model ae --window 48   # anomaly scores per timestamp
  aekit activations --model hf/gpt2 --layer h.6 --text lines.txt --out acts/gpt2-h6   # a store to train an SAE on
  aekit splice runs/sae --text lines.txt   # the LM's loss with the SAE's reconstruction spliced in
  aekit parts"""


def _parse_overrides(items: list[str]) -> dict[str, str]:
    from aekit.errors import ConfigError

    out: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ConfigError(f"{item!r} is not key=value; write settings such as latent_dim=8 or lr=3e-4")
        key, value = key.strip(), value.strip()
        same = next((k for k in out if _bare(k) == _bare(key)), None)
        if same is not None:
            raise ConfigError(f"{_bare(key)} is given twice ({same}={out[same]}, then {key}={value}); give it once")
        out[key] = value
    return out


def _bare(key: str) -> str:
    """A key without its section (``model.latent_dim`` and ``latent_dim`` set the same thing)."""
    section, _, rest = key.partition(".")
    return rest if rest and section in ("model", "data", "train") else key


def _add_flags(overrides: dict[str, Any], args: argparse.Namespace, flags: tuple[str, ...]) -> None:
    """The command-line flags (``--steps 50``) among the overrides; one set both ways, or a step count below 1,
    is an error."""
    from aekit.errors import ConfigError

    for flag in flags:
        value = getattr(args, flag, None)
        if value is None:
            continue
        same = next((k for k in overrides if _bare(k) == flag), None)
        if same is not None:
            raise ConfigError(f"{flag} is given twice (--{flag} {value} and {same}={overrides[same]}); give it once")
        if flag in ("steps", "epochs") and value < 1:
            raise ConfigError(f"--{flag} {value}: give a number >= 1 (leave --{flag} out for the recipe's or the "
                              "default)")
        overrides[flag] = value


def _evaluate_setting(overrides: dict[str, Any], no_eval: bool) -> bool:
    """Whether to evaluate after training: ``evaluate=false`` (a setting of the run, not a config key, so it is
    taken out of the overrides) does what ``--no-eval`` does; the two set both ways is an error."""
    from aekit.config import _scalar
    from aekit.errors import ConfigError

    key = next((k for k in overrides if _bare(k) == "evaluate"), None)
    if key is None:
        return not no_eval
    value = _scalar(overrides.pop(key), bool, key)
    if no_eval and value:
        raise ConfigError(f"--no-eval and {key}=true contradict each other; give one of them")
    return value and not no_eval


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
    from aekit.errors import ConfigError
    from aekit.io import check_out_dir
    from aekit.training import train

    check_out_dir(args.out)  # before any data is read or a step is taken
    recipe = _read_recipe(args.config) if args.config else {}
    if args.model and "=" in args.model:  # no MODEL given: the first key=value landed in its place
        args.overrides, args.model = [args.model, *args.overrides], None
    overrides: dict[str, Any] = _parse_overrides(args.overrides)
    _add_flags(overrides, args, ("steps", "epochs", "seed", "devices", "evaluation"))
    for key in ("steps", "epochs"):
        given = next((k for k in overrides if _bare(k) == key), None)
        if given is not None and str(overrides[given]).strip() in ("0", "0.0"):
            raise ConfigError(f"{given}=0: give a number >= 1 (leave it out for the recipe's or the default)")
    model = args.model or recipe.get("model", {}).get("name")
    recipe.get("model", {}).pop("name", None)
    data = args.data or recipe.get("data", {}).pop("name", None) or "digits"
    result = train(model or "vae", data, args.out, resume=args.resume, config_file=recipe,
                   evaluate=_evaluate_setting(overrides, args.no_eval), **overrides)
    shown = {k: v for k, v in result.metrics.items() if not isinstance(v, list)}
    print(json.dumps(shown, indent=2))
    print(f"model: {result.run_dir / 'model'}")
    if result.report:
        print(f"report: {result.report}")
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    from aekit.errors import ConfigError

    if args.nll_samples < 0:
        raise ConfigError(f"--nll-samples {args.nll_samples} is negative; pass K >= 1 importance samples, "
                          "or 0 to skip the NLL")
    if args.nll_examples is not None and args.nll_examples < 0:
        raise ConfigError(f"--nll-examples {args.nll_examples} is negative; pass N >= 1 test examples, "
                          "or leave it out (or 0) to score them all")

    from aekit.config import from_dict
    from aekit.errors import DataError
    from aekit.io import default_device, load, read_json
    from aekit.outputs import evaluate_run, refresh_model_card, write_metrics
    from aekit.report import write_report
    from aekit.run_config import DataConfig, TrainConfig, load_splits

    run_dir = Path(args.run_dir)
    model = load(run_dir, map_location=default_device())
    run = read_json(run_dir / "config.json")
    if not isinstance(run.get("data"), dict):
        raise DataError(f"{run_dir / 'config.json'}: no data section; pass the run directory that training wrote")
    data = from_dict(DataConfig, run["data"])
    if args.data:  # the run's split settings, another dataset
        data = dataclasses.replace(data, name=args.data)
    splits = load_splits(data)
    if args.data and tuple(splits.shape) != tuple(model.config.data_shape):
        raise DataError(f"{args.data}: examples of shape {tuple(splits.shape)} do not fit the model of {run_dir}, "
                        f"which takes {tuple(model.config.data_shape)}; evaluate on data of the same shape")
    train_config = from_dict(TrainConfig, {**run.get("train", {}), "nll_samples": args.nll_samples,
                                           "nll_examples": args.nll_examples or 0, "seed": args.seed})
    metrics = read_json(run_dir / "metrics.json") if (run_dir / "metrics.json").is_file() else {}
    scores = evaluate_run(model, splits, train_config, int(metrics.get("train/examples") or 0), mode=args.evaluation)
    if args.data:  # the run's own metrics.json and report stay as training left them
        path = write_metrics(run_dir / "evaluations" / _evaluation_name(args.data), scores)
        print(json.dumps({k: v for k, v in scores.items() if not isinstance(v, list)}, indent=2))
        print(f"metrics: {path}")
        return 0
    metrics = {k: v for k, v in metrics.items() if not k.startswith("test/")}  # the new evaluation's, all of them
    metrics.update(scores)
    write_metrics(run_dir, metrics)
    refresh_model_card(run_dir, metrics)
    print(json.dumps({k: v for k, v in metrics.items() if not isinstance(v, list)}, indent=2))
    print(f"report: {write_report(run_dir)}")
    return 0


def _evaluation_name(data: str) -> str:
    """A folder name for scores on ``data``: a registered name as it is, else the file or folder's name."""
    from aekit.data import list_datasets

    if data in {name for name, _ in list_datasets()}:
        return data
    return re.sub(r"[^A-Za-z0-9._-]+", "_", Path(data).expanduser().resolve().name).strip("._") or "data"


def _parse_condition(text: str):
    """``3`` -> the class id 3; ``0.1,0.9`` -> the float vector ``tensor([0.1, 0.9])``."""
    import torch

    from aekit.errors import ConfigError

    try:
        return int(text)
    except ValueError:
        pass
    try:
        values = [float(value) for value in text.split(",")]
    except ValueError:
        values = []
    if not values or not all(math.isfinite(value) for value in values):
        raise ConfigError(f"--condition {text!r} is neither a class id (--condition 3) nor comma-separated "
                          "numbers (--condition 0.1,0.9)")
    return torch.tensor(values, dtype=torch.float32)


def cmd_sample(args: argparse.Namespace) -> int:
    from aekit.errors import ConfigError, DataError

    if args.n < 1:
        raise ConfigError(f"-n {args.n} draws no sample; pass -n 1 or more")
    if args.edit:
        return _edit_test_examples(args)

    import numpy as np
    import torch

    from aekit.io import check_out_dir, load
    from aekit.report import plot_samples

    condition = None if args.condition is None else _parse_condition(args.condition)
    out = check_out_dir(Path(args.out) if args.out else Path(args.run_dir) / "samples")
    model = load(args.run_dir)
    extra = {}
    if args.sampler:
        extra["sampler"] = _fitted_sampler(args, model)
    if condition is not None:
        if "condition" not in inspect.signature(model.sample).parameters:
            raise ConfigError(f"{model.name} takes no condition; leave out --condition, or train a conditional model")
        extra["condition"] = condition
    try:
        samples = model.sample(args.n, generator=torch.Generator().manual_seed(args.seed), **extra).cpu()
    except DataError as exc:
        if condition is None:
            raise
        c_dim = model.config.condition_dim
        labelled = getattr(model.config, "condition", None) == "labels"
        wanted = f"a class id 0..{c_dim - 1}" if labelled else f"{c_dim} numbers separated by commas"
        raise ConfigError(f"--condition {args.condition} does not fit {model.name}, which is conditioned on "
                          f"{wanted}") from exc
    out.mkdir(parents=True, exist_ok=True)
    stem = f"samples-n{args.n}-seed{args.seed}" + ("" if args.condition is None else
                                                   f"-condition{args.condition.replace(',', '_')}")
    stem += f"-{args.sampler}" if args.sampler else ""
    np.save(out / f"{stem}.npy", samples.numpy())  # named by its settings: another call writes beside it
    print(f"samples: {out / f'{stem}.npy'}")
    print(f"figure: {plot_samples(samples, out / f'{stem}.png')}")
    return 0


def _edit_test_examples(args: argparse.Namespace) -> int:
    """``--edit I=V``: the first ``n`` test examples of the run's data with attribute I set to V by the model's
    ``edit`` (an attribute-editing model such as msp), saved beside the originals."""
    import numpy as np

    from aekit.config import from_dict
    from aekit.errors import ConfigError
    from aekit.io import check_out_dir, load, read_json
    from aekit.report import plot_reconstructions
    from aekit.run_config import DataConfig, load_splits

    attribute, _, value = args.edit.partition("=")
    try:
        index, target = int(attribute), float(value)
    except ValueError:
        raise ConfigError(f"--edit {args.edit!r}: give an attribute index and its value, e.g. --edit 0=1.5") from None
    out = check_out_dir(Path(args.out) if args.out else Path(args.run_dir) / "samples")
    model = load(args.run_dir)
    if not callable(getattr(model, "edit", None)):
        raise ConfigError(f"{model.name} does not edit attributes; --edit takes a model such as msp")
    splits = load_splits(from_dict(DataConfig, read_json(Path(args.run_dir) / "config.json")["data"]))
    batch = splits.test.batch(slice(0, min(args.n, len(splits.test))))
    edited = model.edit(batch.inputs, attribute=index, value=target).cpu()
    out.mkdir(parents=True, exist_ok=True)
    stem = f"edit-n{len(edited)}-attribute{index}-value{target:g}"
    np.save(out / f"{stem}.npy", np.stack([batch.inputs.numpy(), edited.numpy()]))  # [2, n, *S]: before, after
    print(f"edited: {out / f'{stem}.npy'} (originals then edits)")
    print(f"figure: {plot_reconstructions(batch.inputs, edited, out / f'{stem}.png')}")
    return 0


def _fitted_sampler(args: argparse.Namespace, model) -> str:
    """``--sampler NAME``: the run's saved sampler, or one fitted on its training data and saved the first time
    (:func:`aekit.sampling.run_sampler`); prints whether it was fitted and its sample quality."""
    from aekit.errors import ConfigError
    from aekit.run_config import literal
    from aekit.sampling import run_sampler

    if args.condition is not None:
        raise ConfigError("--sampler draws unconditional latents; leave out --condition")
    options = {key: literal(value) for key, value in _parse_overrides(args.option or []).items()}
    sampler, fitted = run_sampler(args.run_dir, model, args.sampler, options, steps=args.sampler_steps,
                                  seed=args.seed, refit=args.refit)
    print(f"sampler {args.sampler}: {'fitted and saved' if fitted else 'saved, reused'} "
          f"({json.dumps(sampler.fit_stats)})")
    quality = sampler.quality
    if quality:
        print(f"sample quality: precision {quality['precision']:.3f} recall {quality['recall']:.3f} (k={quality['k']}, "
              f"{quality['samples']} samples against {quality['test_examples']} test examples, in the encoder's "
              "posterior means)")
    return args.sampler


def cmd_detect(args: argparse.Namespace) -> int:
    from aekit.detect import detect
    from aekit.errors import ConfigError

    overrides: dict[str, Any] = _parse_overrides(args.overrides)
    _add_flags(overrides, args, ("steps",))
    steps = overrides.pop("steps", "auto")
    if steps != "auto":
        try:
            steps = int(float(steps))
        except ValueError:
            raise ConfigError("steps must be a whole number of training steps, e.g. --steps 500, or auto") from None
        if steps < 1:
            raise ConfigError(f"steps={steps}: give a number of training steps >= 1")
    result = detect(args.data, args.model, args.out, window=args.window, train_fraction=args.train_fraction,
                    contamination=args.contamination, labels=args.labels, label_column=args.label_column,
                    normal_class=args.normal_class, steps=steps, random_state=args.seed,
                    explain=not args.no_explain, verbose=args.verbose, strict=args.strict, **overrides)
    print(json.dumps(result.metrics, indent=2))
    print(f"scores: {result.out / 'scores.csv'}")
    print(f"report: {result.report}")
    return 0


def cmd_compare(args: argparse.Namespace) -> int:
    from aekit.report.compare import write_comparison

    print(f"comparison: {write_comparison([Path(run) for run in args.runs], Path(args.out))}")
    return 0


def cmd_convert(args: argparse.Namespace) -> int:
    from aekit.errors import DataError
    from aekit.interop import load_vitmae, save_vitmae
    from aekit.io import FORMAT, check_out_dir, load, save_model

    out = check_out_dir(args.out)
    if (out / "config.json").exists() or (out / "model.safetensors").exists():
        raise DataError(f"{out}: already holds a model; choose another --out (nothing was overwritten)")
    if args.to == "aekit":
        source = Path(args.source)
        if (source / "model" / "config.json").is_file() or (source / "config.json").is_file() and \
                json.loads((source / "config.json").read_text()).get("format") == FORMAT:
            raise DataError(f"{source}: is an aekit model or run already; pass --to vitmae to write it for "
                            "Hugging Face")
        path = save_model(load_vitmae(source), out)
    else:
        path = save_vitmae(load(args.source), out)
    print(f"model: {path}")
    return 0


def cmd_activations(args: argparse.Namespace) -> int:
    from aekit.data.activations import collect_activations
    from aekit.data.texts import load_hf_model, read_texts, text_batches
    from aekit.io import check_out_dir, default_device

    check_out_dir(args.out)  # before the model is loaded
    model, tokenizer = load_hf_model(args.model, quiet=True)
    batches = text_batches(tokenizer, read_texts(args.text, args.text_field), args.batch_size, args.max_length)
    store = collect_activations(model.to(default_device()), args.layer, batches, args.out, hook=args.hook,
                                tokens=args.tokens, shard_tokens=args.shard_tokens, dtype=args.dtype,
                                shuffle=not args.no_shuffle, seed=args.seed, model_name=args.model,
                                source=Path(args.text).name, drop_first=args.drop_first)
    print(f"store: {store.path} ({store.tokens} tokens of width {store.width} in {len(store.files)} shards)")
    return 0


def cmd_splice(args: argparse.Namespace) -> int:
    import itertools

    from aekit.data.texts import load_hf_model, read_texts, text_batches
    from aekit.errors import ConfigError
    from aekit.evaluation.splice import spliced_metrics
    from aekit.io import atomic_write_text, default_device, load

    if args.texts < 1:
        raise ConfigError(f"--texts {args.texts} must be at least 1")
    if args.out and Path(args.out).exists():
        raise ConfigError(f"{args.out}: exists; pass a new file for the metrics")
    sae = load(args.run, map_location=default_device())
    source = getattr(sae, "activation_source", None) or {}
    model_path, layer = args.model or source.get("model"), args.layer or source.get("layer")
    if not model_path or not layer:
        raise ConfigError(f"{args.run}: names no base model and layer (it was not trained on an activation store); "
                          "pass --model and --layer")
    hook, drop_first = args.hook or source.get("hook") or "output", bool(source.get("drop_first"))
    lines = read_texts(args.text, args.text_field)
    first = next(lines, None)  # a missing or empty file fails before the model is loaded
    if first is None:
        raise ConfigError(f"{args.text}: holds no text; pass a file with one text a line")
    model, tokenizer = load_hf_model(model_path, quiet=True, head="auto")
    texts = itertools.islice(itertools.chain([first], lines), args.texts)
    batches = text_batches(tokenizer, texts, args.batch_size, args.max_length)
    metrics = spliced_metrics(model.to(default_device()), layer, sae, batches, hook=hook, drop_first=drop_first,
                              progress=True)
    print(f"{args.run} spliced into {model_path} at {layer} ({hook}) on {metrics['texts']} texts, "
          f"{metrics['tokens']} tokens:")
    for key, value in metrics.items():
        if key not in ("texts", "tokens"):
            print(f"  {key}: {value:.4f}" if isinstance(value, float) else f"  {key}: {value}")
    if args.out:
        record = {"run": str(args.run), "model": str(model_path), "layer": layer, "hook": hook,
                  "drop_first": drop_first, "text": str(args.text), **metrics}
        atomic_write_text(Path(args.out), json.dumps(record, indent=2) + "\n")
        print(f"metrics: {args.out}")
    return 0


def cmd_parts(args: argparse.Namespace) -> int:
    from aekit.parts import KINDS, list_parts

    kind = args.kind
    if kind is not None and kind not in KINDS and f"{kind}s" in KINDS:  # `aekit parts prior` means priors
        kind = f"{kind}s"
    entries = list_parts(kind)
    for index, shown in enumerate(KINDS if kind is None else (kind,)):
        found = [entry for entry in entries if entry.kind == shown]
        print(("\n" if index else "") + f"{shown}:")
        for entry in found:
            print(f"  {entry.name:<18} {entry.description}")
        if not found:
            print("  (none registered yet)")
    return 0


def cmd_models(args: argparse.Namespace) -> int:
    from aekit.registry import list_models, model_entry
    from aekit.run_config import DataConfig, TrainConfig

    if not args.name:
        for entry in list_models():
            print(f"{entry.name:<12} {entry.description}")
        return 0
    entry = model_entry(args.name)
    print(f"{entry.name}: {entry.description}")
    for title, cls in (("model", entry.config_class), ("data", DataConfig), ("train", TrainConfig)):
        print(f"\n{title} keys (key=value on `aekit train`):")
        for field in dataclasses.fields(cls):
            default = field.default_factory() if field.default is dataclasses.MISSING else field.default
            print(f"  {field.name:<18} {default!r}")
        if title == "model":
            _print_terms(entry.name)
    return 0


def _print_terms(name: str) -> None:
    """The terms a model with its default settings gives, with their weights (``terms.NAME=...`` sets them)."""
    from aekit.errors import AekitError
    from aekit.registry import build_model

    try:
        terms = build_model(name).objective_terms()
    except (AekitError, TypeError, ValueError):  # a model that needs its data to be built
        return
    print("\nterms and their weights (terms.NAME=WEIGHT, terms.NAME.schedule=linear, terms.NAME.free_bits=...):")
    for term_name, term in terms.items():
        weight = "logged only" if term.log_only else f"{term.weight.value:g}" + (
            f" ({term.weight.kind})" if term.weight.kind != "constant" else "")
        extra = f", {term.label}" if term.label else ""
        print(f"  {term_name:<18} {weight}{extra}{'' if term.optimizer == 'model' else ', ' + term.optimizer}"
              f"{', per batch' if term.batch else ''}")


def cmd_datasets(args: argparse.Namespace) -> int:
    from aekit.data import list_datasets

    for name, description in list_datasets():
        print(f"{name:<16} {description}")
    return 0


def _add_sample_parser(sub) -> None:
    """`aekit sample`: from the prior, a fitted ex-post sampler, or attribute edits."""
    p = sub.add_parser("sample", help="draw samples from a trained variational model's prior")
    p.add_argument("run_dir")
    p.add_argument("-n", type=int, default=64, help="number of samples")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", help="folder for samples.npy and samples.png (default RUN_DIR/samples)")
    p.add_argument("--condition", help="for a conditional model: a class id (3) or a vector (0.1,0.9)")
    p.add_argument("--edit", metavar="I=V", help="for an attribute-editing model (msp): the first -n test examples "
                   "with attribute I set to V, beside the originals, in place of samples")
    p.add_argument("--sampler", help="an ex-post sampler fitted to the training latents and saved with the run "
                   "(gaussian-mixture, two-stage, maf, iaf; prior: the model's own); fitted on first use")
    p.add_argument("--option", action="append", metavar="KEY=VALUE",
                   help="a setting of the sampler, e.g. --option components=20 (repeatable)")
    p.add_argument("--sampler-steps", type=int, help="the sampler's fitting steps (default: its own)")
    p.add_argument("--refit", action="store_true", help="fit the sampler again even if the run has one saved")
    p.set_defaults(func=cmd_sample)


def _add_detect_parser(sub) -> None:
    p = sub.add_parser("detect", help="score the rows of a table, the timestamps of a series or images for anomalies",
                       description="Fit MODEL as an anomaly detector on DATA (a CSV table, an npz with X rows or "
                                   "images, a timestamp,value... CSV series, or with --normal-class a labelled image "
                                   "set) and write scores.csv, metrics.json and a report; key=value pairs set the "
                                   "model's and training keys (latent_dim=4 backbone=lstm).")
    p.add_argument("data", help="a CSV or npz file; with --normal-class a data set name (mnist, cifar10) or path")
    p.add_argument("--out", required=True, help="folder to write (scores.csv, metrics.json, figures, report.html)")
    p.add_argument("--model", default="ae", help="registered model name (ae, dae, vae, ...)")
    p.add_argument("--window", type=int, default=32, help="rows per window of a series")
    p.add_argument("--train-fraction", type=float, default=None,
                   help="train on the first share of the rows (default: a series 0.15, a table all rows)")
    p.add_argument("--contamination", type=float, default=0.01, help="share above the threshold, in (0, 0.5]")
    p.add_argument("--labels", help="a NAB-style JSON of anomaly windows for a series")
    p.add_argument("--label-column", default="label", help=
                   "the CSV column of 0/1 labels (or normal/anomaly, no/yes, false/true), if any")
    p.add_argument("--normal-class", help="one-class protocol: train on this class (number or name) of DATA's "
                                          "training images, score all its test images, the other classes anomalous")
    p.add_argument("--no-explain", action="store_true",
                   help="leave out the attributions and anomaly maps of the highest scores")
    p.add_argument("--steps", type=int, help="training steps (default: 20 epochs of the training rows, 100 to "
                                             "1,000 steps)")
    p.add_argument("--strict", action="store_true",
                   help="refuse a series whose timestamps step back or repeat (default: score it in file order)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--verbose", action="store_true")
    p.add_argument("overrides", nargs="*", metavar="key=value")
    p.set_defaults(func=cmd_detect)


def _add_text_arguments(p, batch_size: int) -> None:
    """The texts a model is run on: a file, how they are cut and batched."""
    p.add_argument("--text", required=True, help="a text file (one text a line) or a .jsonl")
    p.add_argument("--text-field", default="text", help="the field of a .jsonl's objects that holds the text")
    p.add_argument("--max-length", type=int, default=128, help="tokens per text at most (longer ones are cut)")
    p.add_argument("--batch-size", type=int, default=batch_size, help="texts per forward pass")


def _add_activations_parser(sub) -> None:
    p = sub.add_parser("activations", help="write a layer's activations on a text to a store to train a sparse "
                                           "autoencoder on",
                       description="Run a local Hugging Face model (AutoModel, offline; a folder or a .gguf file) "
                                   "on the lines of --text (or a .jsonl's text field) and write the activations of "
                                   "--layer, one row per token (padding dropped), to a store folder: safetensors "
                                   "shards and store.json. `aekit train ae --data OUT ...` trains on it.")
    p.add_argument("--model", required=True, help="a local Hugging Face model folder (config.json, weights, "
                                                   "tokenizer) or a .gguf file")
    p.add_argument("--layer", required=True, help="the module's dotted name, e.g. encoder.layer.3.output")
    _add_text_arguments(p, batch_size=32)
    p.add_argument("--out", required=True, help="the store folder (appended to if it holds the same layer's store)")
    p.add_argument("--hook", choices=["output", "input", "both"], default="output",
                   help="the layer's output, its input, or both (input -> inputs, output -> target: a transcoder)")
    p.add_argument("--tokens", type=int, help="stop after this many tokens (default: the whole text)")
    p.add_argument("--shard-tokens", type=int, help="rows per shard (default: about 128 MiB a shard)")
    p.add_argument("--dtype", choices=["float32", "float16", "bfloat16"], default="float32")
    p.add_argument("--drop-first", action="store_true", help="drop each text's first token (BOS, [CLS])")
    p.add_argument("--no-shuffle", action="store_true", help="keep the tokens in text order")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=cmd_activations)


def _add_splice_parser(sub) -> None:
    about = ("Run the base model on the first --texts lines of --text as it is, with the layer's activation "
             "replaced by the run's reconstruction, by zeros and by its mean, and print the language model's "
             "cross-entropy and the share of it recovered (a causal LM), or the sentence embeddings' cosine to the "
             "clean ones (an encoder). The model, layer and hook point default to those of the activation store the "
             "run was trained on.")
    p = sub.add_parser("splice", description=about, help="a sparse autoencoder's reconstruction spliced into its "
                                                         "language model or encoder: the loss recovered")
    p.add_argument("run", help="a trained run or model folder (a sparse autoencoder or transcoder)")
    _add_text_arguments(p, batch_size=8)
    p.add_argument("--model", help="a local Hugging Face model folder or .gguf file (default: the store's model)")
    p.add_argument("--layer", help="the module's dotted name (default: the store's layer)")
    p.add_argument("--hook", choices=["output", "input", "both"], help="default: the store's hook point")
    p.add_argument("--texts", type=int, default=256, help="how many texts to run (default 256)")
    p.add_argument("--out", help="also write the metrics to this new JSON file")
    p.set_defaults(func=cmd_splice)


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
    p.add_argument("--eval", dest="evaluation", choices=["auto", "quick", "full"],
                   help="how much of the test protocol to take: full, a quick share, or auto (default: full when it "
                        "costs no more than the training did)")
    p.add_argument("overrides", nargs="*", metavar="key=value")
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("evaluate", help="evaluate a trained run on its test split, or on another dataset's",
                       description="Score RUN_DIR's model on its test split (refreshing metrics.json and the "
                                   "report), or with --data on another dataset's test split (written to "
                                   "RUN_DIR/evaluations/NAME/metrics.json).")
    p.add_argument("run_dir")
    p.add_argument("--data", help="registered dataset name or path to score on instead of the run's own data")
    p.add_argument("--nll-samples", type=int, default=1000, help="importance samples for test NLL (0: skip)")
    p.add_argument("--nll-examples", type=int, default=None,
                   help="evaluate NLL on the first N test examples (default or 0: all)")
    p.add_argument("--eval", dest="evaluation", choices=["auto", "quick", "full"], default="full",
                   help="full (default): the whole test split and --nll-samples; quick or auto: a share in "
                        "proportion to the run's training, as `aekit train` takes")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=cmd_evaluate)

    _add_sample_parser(sub)

    _add_detect_parser(sub)

    p = sub.add_parser("compare", help="one HTML page comparing runs: metrics, differing settings, curves")
    p.add_argument("runs", nargs="+", metavar="RUN", help="run directories written by `aekit train`")
    p.add_argument("--out", required=True, help="folder for index.html (nothing else is written)")
    p.set_defaults(func=cmd_compare)

    p = sub.add_parser("convert", help="convert weights: a Hugging Face ViTMAE folder to an aekit mae, or back",
                       description="With --to aekit (the default), SOURCE is a Hugging Face ViTMAEForPreTraining "
                                   "folder (config.json + model.safetensors); with --to vitmae, SOURCE is an aekit "
                                   "mae model or run directory and OUT becomes a folder that "
                                   "ViTMAEForPreTraining.from_pretrained loads.")
    p.add_argument("source")
    p.add_argument("--to", choices=["aekit", "vitmae"], default="aekit")
    p.add_argument("--out", required=True, help="folder to write (it must not hold a model yet)")
    p.set_defaults(func=cmd_convert)

    _add_activations_parser(sub)
    _add_splice_parser(sub)

    p = sub.add_parser("models", help="list the registered models, or one model's settings")
    p.add_argument("name", nargs="?", help="show this model's config keys and their defaults")
    p.set_defaults(func=cmd_models)
    p = sub.add_parser("datasets", help="list the registered datasets")
    p.set_defaults(func=cmd_datasets)
    p = sub.add_parser("parts", help="list the registered parts (models, bottlenecks, priors, ...) by kind")
    p.add_argument("kind", nargs="?", help="show only this kind, e.g. priors")
    p.set_defaults(func=cmd_parts)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    # key=value pairs may stand anywhere after `train`, also between options
    stray = [e for e in extra if e.startswith("-") or args.command not in ("train", "detect")]
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
    except OSError as exc:  # a full disk, a read-only folder, a path that is a directory: one line, no traceback
        path = exc.filename2 or exc.filename  # a failed rename names the file it would have replaced second
        where = f"{path}: " if path else ""
        print(f"aekit: error: {where}{exc.strerror or exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("aekit: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
