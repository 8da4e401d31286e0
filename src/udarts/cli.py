"""The ``udarts`` command: search, derive, sample, train, eval, predict, export, demo, compare and report.

A thin shell over the Python API (``udarts.experiment`` and ``udarts.app``): every command parses
its flags, resolves its config as defaults <- ``--config FILE`` <- flags <- ``--set KEY=VALUE``, and
calls one function. Errors a user can cause are one line with exit code 2 (``--debug`` shows the
traceback).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from udarts import __version__, experiment
from udarts.app.settling import search_until_settled
from udarts.config import Config, ConfigError, load_yaml, parse_assignment, resolve, set_dotted
from udarts.data.base import DatasetError
from udarts.engine.layout import BEST_CHECKPOINT, GENOTYPE_FILE
from udarts.genotype import GenotypeError

# ---- config --------------------------------------------------------------------------------------


def _flag_overrides(args: argparse.Namespace, command: str) -> dict[str, Any]:
    """The config keys that dedicated flags set."""
    override: dict[str, Any] = {}

    def put(path: str, value: Any) -> None:
        if value is not None:
            set_dotted(override, path, value)

    put("seed", getattr(args, "seed", None))
    put("device", getattr(args, "device", None))
    put("data.name", getattr(args, "data", None))
    put("data.root", getattr(args, "root", None))
    put("data.batch_size", getattr(args, "batch_size", None))
    put("data.num_workers", getattr(args, "num_workers", None))
    if getattr(args, "image_size", None):
        put("data.image_size", _parse_size(args.image_size))
    put("model.width", getattr(args, "width", None))
    put("model.flops_budget", getattr(args, "flops_budget", None))
    put("model.latency_budget", getattr(args, "latency_budget", None))
    if getattr(args, "epochs", None) is not None:
        put(f"{'search' if command == 'search' else 'train'}.epochs", args.epochs)
    if getattr(args, "genotype", None):
        put("train.genotype", str(args.genotype))
    put("train.model", getattr(args, "model", None))
    put("search.latency_target_ms", getattr(args, "latency_target", None))
    put("search.latency_table", getattr(args, "latency_table", None))
    if getattr(args, "no_progress", False):
        put("progress", False)
    return override


def _parse_size(text: str) -> list[int]:
    try:
        parts = [int(part) for part in text.lower().replace(",", "x").split("x")]
    except ValueError:
        parts = []
    if len(parts) == 1:
        parts = parts * 2
    if len(parts) != 2 or min(parts) <= 0:
        raise ConfigError(f"--image-size {text!r}: expected HEIGHTxWIDTH, for example 96x128")
    return parts


def _layers(args: argparse.Namespace, command: str, file: bool = True, flags: dict[str, Any] | None = None):
    """``(mapping, origin)`` of ``--config FILE`` (with ``file``), the flags and each ``--set``, in order."""
    layers = [(load_yaml(args.config), str(args.config))] if file and getattr(args, "config", None) else []
    layers.append((_flag_overrides(args, command) if flags is None else flags, "command-line flags"))
    layers += [(parse_assignment(text), f"--set {text}") for text in getattr(args, "set", None) or []]
    return layers


def load_config(args: argparse.Namespace, command: str, base: dict[str, Any] | None = None) -> Config:
    """Defaults <- ``--config`` <- ``base`` (built-in settings of a command) <- flags <- ``--set``."""
    built_in = [(base, f"built-in {command} settings")] if base is not None else []
    return resolve(getattr(args, "config", None), built_in + _layers(args, command, file=False))


def _run_config(args: argparse.Namespace, kind: str) -> Config:
    """A new run's config, or with ``--resume`` the run's recorded one with the safe changes."""
    if not getattr(args, "resume", None):
        return load_config(args, kind)
    if getattr(args, "out", None) and Path(args.out).resolve() != Path(args.resume).resolve():
        raise ConfigError(f"--out {args.out}: a resumed run continues in its own folder ({args.resume}); leave out --out")
    return experiment.resumed_config(args.resume, kind, _layers(args, kind))


# ---- commands ------------------------------------------------------------------------------------


def _dry_run(config: Config, kind: str) -> None:
    from udarts.builders import describe_run

    report = describe_run(config, kind)
    print(json.dumps(report, indent=2))
    size = f"{report['image_size'][0]}x{report['image_size'][1]} image"
    if kind == "search":
        print(f"supernet parameters: {report['parameters']:,} ({report['parameters'] / 1e6:.1f} M); "
              f"forward: {report['forward_gflops_per_image']:.1f} GFLOPs per {size}")
    else:
        print(f"{report['model']}: {report['parameters']:,} parameters ({report['parameters'] / 1e6:.2f} M); "
              f"forward: {report['gflops_per_image']:.3f} GFLOPs per {size}")


def command_search(args: argparse.Namespace) -> None:
    config = _run_config(args, "search")
    if getattr(args, "dry_run", False):
        return _dry_run(config, "search")
    search_until_settled(config, args.out, resume=args.resume)


def command_train(args: argparse.Namespace) -> None:
    config = _run_config(args, "train")
    if getattr(args, "dry_run", False):
        return _dry_run(config, "train")
    experiment.run_train(config, args.out, resume=args.resume)


def command_derive(args: argparse.Namespace) -> None:
    from udarts.app.genotypes import KEEP, derive_genotype

    max_identity: Any = KEEP
    if args.max_identity is not None:
        max_identity = None if args.max_identity.lower() in ("none", "off") else _count(args.max_identity, "--max-identity")
    derive_genotype(args.checkpoint, args.top_k, max_identity, args.out, selection=args.selection, batches=args.batches,
                    candidates=args.candidates, root=args.root, device=args.device, progress=not args.no_progress)


def _count(text: str, flag: str) -> int:
    value = int(text) if text.strip().isdigit() else -1
    if value < 0:
        raise ConfigError(f"{flag}: expected an integer >= 0 or 'none', got {text!r}")
    return value


def command_sample(args: argparse.Namespace) -> None:
    from udarts.app.genotypes import sample_genotype_files

    config = load_config(args, "sample")  # --config, --set, --image-size (and --width, --seed: recorded only)
    sample_genotype_files(config, args.num, args.seed, args.out, flops_budget=args.flops_budget, width=args.width,
                          num_classes=args.num_classes)


def command_eval(args: argparse.Namespace) -> None:
    from udarts.app.evaluation import write_metrics
    from udarts.app.export import load_for_inference

    device = experiment.resolve_device(args.device or "auto")
    model, state = load_for_inference(args.checkpoint, device)
    # the checkpoint's config <- --config FILE <- flags <- --set (data.*, train.loss and progress matter here)
    flags = _flag_overrides(args, "eval")
    flags.pop("device", None)
    config = resolve(None, [(state["config"], f"{args.checkpoint} (config)"), *_layers(args, "eval", flags=flags)])
    result = experiment.evaluate(model, state, config, args.split, device, source=str(args.checkpoint))
    write_metrics(result, args.json)


def command_predict(args: argparse.Namespace) -> None:
    from udarts.app.export import load_for_inference
    from udarts.app.predict import list_images, predict_paths
    from udarts.data.pairs import generated_palette

    device = experiment.resolve_device(args.device or "auto")
    model, state = load_for_inference(args.checkpoint, device)
    palette = [tuple(colour) for colour in state.get("palette") or generated_palette(len(state["class_names"]))]
    paths = list_images(args.input)
    written = predict_paths(model, paths, Path(args.out), image_size=tuple(state["image_size"]), palette=palette,
                            device=device, progress=not args.no_progress)
    print(f"wrote {len(written)} files for {len(paths)} image(s) to {args.out}")


def command_export(args: argparse.Namespace) -> None:
    from udarts.app.export import describe_export, export_checkpoint, quantize_onnx

    if args.quantize and args.format != "onnx":
        raise ConfigError("--quantize needs --format onnx (onnxruntime quantises ONNX models)")
    if args.calib and args.quantize != "static":
        raise ConfigError("--calib DIR is for --quantize static")
    out = Path(args.out).expanduser()
    for line in describe_export(out, export_checkpoint(args.checkpoint, args.format, out, opset=args.opset)):
        print(line)
    if args.quantize:
        quantized = out.with_name(f"{out.stem}-int8-{args.quantize}{out.suffix}")
        for line in describe_export(quantized, quantize_onnx(out, quantized, args.quantize, calib=args.calib)):
            print(line)


def command_demo(args: argparse.Namespace) -> None:
    from udarts.app.demo import DEMO_SETTINGS, run_demo

    run_demo(load_config(args, "demo", base=DEMO_SETTINGS), args.out)


def command_compare(args: argparse.Namespace) -> None:
    from udarts.app.compare.run import run_comparison
    from udarts.app.trials import executor_settings

    run_comparison(load_config(args, "compare"), models=args.models, genotypes=args.genotypes, seeds=args.seeds,
                   model_options=args.model_option or [], out=args.out, num_images=args.num_images,
                   latency_repeats=args.latency_repeats, executor=executor_settings(args))


def command_latency_table(args: argparse.Namespace) -> None:
    from udarts.app.latency import describe_table, make_latency_table

    config = load_config(args, "latency-table")
    table, reused = make_latency_table(config, args.out, runtime=args.runtime, threads=args.threads,
                                       batch_size=args.batch, calibrate_genotypes=args.calibrate, force=args.force)
    print("\n  ".join([f"{'reused' if reused else 'wrote'} latency table {args.out}", *describe_table(table, config.search.top_k)]))


def command_env(args: argparse.Namespace) -> None:
    from udarts.app.environment import environment, render

    facts = environment()
    print(json.dumps(facts, indent=2) if args.json else "\n".join(render(facts)))


def command_report(args: argparse.Namespace) -> None:
    from udarts.app.compare.run import report_folder

    kind, written = report_folder(Path(args.run_dir), device=args.device, num_images=args.num_images)
    print(f"{kind} report:")
    for name, file in written.items():
        print(f"  {name}: {file}")


# ---- argument parsing ----------------------------------------------------------------------------


def _common(parser: argparse.ArgumentParser, training: bool = True, resumable: bool = True) -> None:
    parser.add_argument("--config", help="YAML config file (defaults <- file <- flags <- --set)")
    parser.add_argument("--set", action="append", metavar="KEY=VALUE", help="override any config key, e.g. search.order=second")
    parser.add_argument("--data", help="dataset: synthetic | pets | camvid | folder")
    parser.add_argument("--root", help="dataset root folder")
    parser.add_argument("--image-size", help="HEIGHTxWIDTH, e.g. 96x128 (sides divisible by 8)")
    parser.add_argument("--batch-size", type=int, help="images per batch (data.batch_size; the global batch under torchrun)")
    parser.add_argument("--num-workers", type=int, help="data loading worker processes (data.num_workers; 0 = in the main process)")
    parser.add_argument("--device", help="auto | cpu | cuda | cuda:N")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    if training:
        parser.add_argument("--seed", type=int, help="random seed of the weights, the data order and the augmentation (seed)")
        parser.add_argument("--width", type=int, help="base width w (cells have w, 2w, 4w, 8w channels)")
        parser.add_argument("--epochs", type=int, help="epochs to run (search.epochs for search, train.epochs otherwise)"
                            + ("; with --resume, a larger number extends a run" if resumable else ""))
        parser.add_argument("--out", help="run folder to create (default: <out>/<command>-<time>)")
        if resumable:
            parser.add_argument("--resume", metavar="RUN_DIR", help="continue an interrupted run in its folder "
                                "(its recorded settings; only --epochs, the learning rates, --device and --no-progress may change)")


def build_parser() -> argparse.ArgumentParser:
    from udarts.app.trials import add_executor_arguments

    parser = argparse.ArgumentParser(prog="udarts", description=__doc__.split("\n")[0])
    parser.add_argument("--version", action="version", version=f"udarts {__version__}")
    parser.add_argument("--debug", action="store_true", help=DEBUG_HELP)
    commands = parser.add_subparsers(dest="command", required=True)

    search = commands.add_parser("search", help=f"search an architecture (trains the supernet, writes {GENOTYPE_FILE})")
    _common(search)
    search.add_argument("--dry-run", action="store_true", help="print the supernet's size and FLOPs, then exit")
    search.add_argument("--latency-target", type=float, metavar="MS", help="latency-aware search: penalise derived "
                        "networks predicted slower than MS (search.latency_target_ms; docs/latency.md)")
    search.add_argument("--latency-table", metavar="FILE", help="the device's table from `udarts latency-table` "
                        "(default: timed on this machine at the search's size)")

    table = commands.add_parser("latency-table", help="time every op at every cell of SEARCH-Net on this device; "
                                "write the latency table a latency-targeted search reads")
    _common(table, training=False)
    table.add_argument("--width", type=int, help="SEARCH-Net base width of the network to deploy (model.width)")
    table.add_argument("--out", required=True, help="table file (JSON); reused if it matches, refused if it does not")
    table.add_argument("--runtime", default="eager", help="eager (PyTorch, CPU), onnxruntime (CPU) or cuda (default eager)")
    table.add_argument("--threads", type=int, default=1, help="CPU threads (default 1)")
    table.add_argument("--batch", type=int, default=1, help="images per forward pass (default 1)")
    table.add_argument("--calibrate", type=int, default=10, metavar="N", help="time N random genotypes whole and fit the table's correction (default 10; 0 = none)")
    table.add_argument("--force", action="store_true", help="measure again and replace --out")

    derive = commands.add_parser("derive", help="derive a genotype from a search checkpoint or run folder")
    derive.add_argument("checkpoint", help="search run folder or checkpoint (.pt)")
    derive.add_argument("--out", help=f"genotype path (default: beside the checkpoint, {GENOTYPE_FILE} with the search's "
                        "own --top-k and --max-identity, else genotype-top<K>[-maxid<N>][-pt<B>|-os<N>-b<B>].json)")
    derive.add_argument("--top-k", type=int, help="kept incoming edges per node (default: the search's)")
    derive.add_argument("--selection", choices=("alpha", "perturbation", "one_shot"), default="alpha",
                        help="alpha: DARTS's strongest softmax weights (default); perturbation: DARTS-PT, the ops and "
                             "edges whose removal raises the search loss most on the alpha half (mixture modes); "
                             "one_shot: the best of --candidates random genotypes, each scored as a sub-network of the "
                             "supernet on the alpha half (random search with weight sharing)")
    derive.add_argument("--batches", type=int, help="perturbation, one_shot: alpha-half batches scored (default 4 and 8; "
                        "one_shot re-estimates batch-norm statistics on as many weight-half batches)")
    derive.add_argument("--candidates", type=int, help="one_shot: random genotypes scored (default 100)")
    derive.add_argument("--root", help="perturbation, one_shot: dataset root (default: the search's recorded data.root)")
    derive.add_argument("--device", help="perturbation, one_shot: where the supernet runs (default cpu; auto, cuda, ...)")
    derive.add_argument("--no-progress", action="store_true", help="no progress bar")
    derive.add_argument("--max-identity", metavar="N",
                        help="at most N identity edges per cell, 'none' = no cap (default: the search's search.max_identity)")

    train = commands.add_parser("train", help="train SEARCH-Net from a genotype (or a baseline) from scratch")
    _common(train)
    train.add_argument("--genotype", help=f"{GENOTYPE_FILE} to build SEARCH-Net from")
    train.add_argument("--model", help="searchnet (default) or a baseline name")
    train.add_argument("--flops-budget", type=float, metavar="GFLOPS",
                       help="SEARCH-Net: the largest width whose GFLOPs per image (at --image-size) fit this (model.flops_budget)")
    train.add_argument("--latency-budget", type=float, metavar="MS",
                       help="SEARCH-Net: the largest width whose CPU latency per image (batch 1, one thread, timed on "
                            "this machine: time it on a quiet one) fits this; with --flops-budget too, the smaller width "
                            "(model.latency_budget)")
    train.add_argument("--dry-run", action="store_true", help="print the network's parameters and FLOPs, then exit")

    sample = commands.add_parser("sample", help="write random genotypes drawn uniformly from the search space (the baseline a search must beat)")
    sample.add_argument("--num", type=int, required=True, help="how many genotypes")
    sample.add_argument("--seed", type=int, default=0, help="genotype i of seed S is the same whatever --num (default 0)")
    sample.add_argument("--out", required=True, help="folder for random-S-III.json files")
    sample.add_argument("--config", help="YAML config: model.ops, model.num_nodes, search.top_k and the op settings")
    sample.add_argument("--set", action="append", metavar="KEY=VALUE", help="override any config key")
    sample.add_argument("--flops-budget", type=float, metavar="GFLOPS", help="keep only genotypes whose SEARCH-Net fits this at --width")
    sample.add_argument("--width", type=int, help="SEARCH-Net width the FLOPs are counted at")
    sample.add_argument("--image-size", help="HEIGHTxWIDTH the FLOPs are counted at (default: the config's)")
    sample.add_argument("--num-classes", type=int, default=11, help="classes of the head the FLOPs are counted with (default 11, CamVid)")

    evaluate = commands.add_parser("eval", help="evaluate a trained checkpoint: per-class IoU, mIoU, pixel accuracy")
    evaluate.add_argument("checkpoint", help=f"a training checkpoint (.pt, e.g. RUN_DIR/{BEST_CHECKPOINT}); its config is the base, "
                          "then --config, the flags and --set on top")
    _common(evaluate, training=False)
    evaluate.add_argument("--split", default="val", help="split to evaluate (default val)")
    evaluate.add_argument("--json", help="also write the metrics to this JSON file")

    predict = commands.add_parser("predict", help="write colour masks and overlays for an image or a folder")
    predict.add_argument("checkpoint", help=f"a training checkpoint (.pt, e.g. RUN_DIR/{BEST_CHECKPOINT})")
    predict.add_argument("input", help="an image file or a folder of images")
    predict.add_argument("--out", required=True, help="output folder")
    predict.add_argument("--device", help="auto | cpu | cuda | cuda:N (default auto)")
    predict.add_argument("--no-progress", action="store_true", help="no progress bar")

    export = commands.add_parser("export", help="write a trained checkpoint as ONNX, a torch.export program or TorchScript, "
                                                "with a JSON sidecar (FILE.json)")
    export.add_argument("checkpoint", help=f"a 'udarts train' checkpoint ({BEST_CHECKPOINT})")
    export.add_argument("--format", default="onnx", choices=["onnx", "exported-program", "torchscript"],
                        help="onnx (default), exported-program (torch.export, .pt2) or torchscript")
    export.add_argument("--out", required=True, help="model file to write; the sidecar goes to FILE.json")
    export.add_argument("--opset", type=int, default=17, help="ONNX opset (default 17)")
    export.add_argument("--quantize", choices=["dynamic", "static"],
                        help="also write an int8 copy (onnxruntime quantisation) as FILE-int8-MODE.onnx")
    export.add_argument("--calib", metavar="DIR", help="--quantize static: folder of calibration images")

    demo = commands.add_parser("demo", help="search -> derive -> retrain -> eval on synthetic data, CPU-sized")
    _common(demo, resumable=False)

    compare = commands.add_parser("compare", help="train and evaluate several models on one budget; write the table and plots")
    _common(compare, training=False)
    compare.add_argument("--models", help="comma-separated baselines (unet, unet_resnet34, unetpp, fpn, deeplabv3, setr); "
                                          "LABEL=NAME names a row")
    compare.add_argument("--genotypes", help=f"comma-separated {GENOTYPE_FILE} files, each trained as SEARCH-Net; LABEL=PATH names "
                                             f"a row; a folder stands for its {GENOTYPE_FILE}, else for all its *.json (udarts sample's)")
    compare.add_argument("--seeds", help="comma-separated seeds, e.g. 0,1,2 (default: the config's seed)")
    compare.add_argument("--model-option", action="append", metavar="LABEL:KEY=VALUE",
                         help="a baseline's network option, e.g. unet:width=8 (repeatable)")
    compare.add_argument("--width", type=int, help="SEARCH-Net base width w")
    compare.add_argument("--epochs", type=int, help="training epochs of every compared model (train.epochs)")
    compare.add_argument("--out", help="comparison folder (default: <out>/compare-<time>); the same --out again reuses finished runs")
    compare.add_argument("--num-images", type=int, default=4, help="validation images in predictions.png (0: none)")
    compare.add_argument("--latency-repeats", type=int, default=10, help="timed forward passes per model (median reported)")
    add_executor_arguments(compare)  # where the runs train: --backend local|ray, --jobs, --address, --retries

    report = commands.add_parser("report", help="plots and summary.md of a train run, a search run or a comparison folder")
    report.add_argument("run_dir", help="train run, search run or comparison folder")
    report.add_argument("--device", help="comparison: device for predictions and costs not measured yet")
    report.add_argument("--num-images", type=int, default=4, help="comparison: validation images in predictions.png (0: none)")
    env = commands.add_parser("env", aliases=["doctor"], help="versions, CPU/GPU, threads and bf16 support of this machine, "
                              "to paste into a bug report or a benchmark entry")
    env.add_argument("--json", action="store_true", help="print the report as JSON")
    for action in commands._choices_actions:  # every subcommand: its help line as its description, and --debug
        subparser = commands.choices[action.dest]
        subparser.description = subparser.description or action.help
        subparser.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help=DEBUG_HELP)
    return parser


DEBUG_HELP = "on an error, show the Python traceback instead of the one-line message"


def error_line(error: BaseException) -> tuple[str, int]:
    """``(one-line message, exit code)`` of an error: 2 for what a user can cause (a bad value,
    file or checkpoint, a full disk, a divergence), 1 for anything else (a bug: --debug shows it)."""
    import errno
    import re

    from udarts.app.trials import TrialError
    from udarts.engine.runs import CheckpointError, RunFolderError, disk_of

    expected = (ConfigError, DatasetError, GenotypeError, CheckpointError, RunFolderError, FloatingPointError,
                FileNotFoundError, FileExistsError, TrialError)
    if isinstance(error, OSError) and error.errno == errno.ENOSPC:
        where = error.filename or "a file"
        message = (f"disk full: no space left on the disk mounted at {disk_of(where if error.filename else '.')} "
                   f"while writing {where}; free some space, then continue with --resume RUN_DIR (the last complete "
                   f"epoch is kept)")
        code = 2
    elif isinstance(error, OSError) and error.filename is not None and error.strerror:
        message, code = f"{error.filename}: {error.strerror}", 2
    elif isinstance(error, expected):
        message, code = str(error), 2
    else:
        first = (str(error).strip().splitlines() or [""])[0]
        message, code = f"unexpected {type(error).__name__}: {first} (a bug? --debug shows the traceback)", 1
    return re.sub(r"\s*\n\s*", " ", message.strip()), code


HANDLERS = {
    "search": command_search, "derive": command_derive, "sample": command_sample, "train": command_train,
    "eval": command_eval, "predict": command_predict, "export": command_export, "demo": command_demo,
    "compare": command_compare, "report": command_report, "latency-table": command_latency_table,
    "env": command_env, "doctor": command_env,
}


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        HANDLERS[args.command](args)
    except Exception as error:  # one line (exit 2) for what a user can cause; --debug shows the traceback
        if getattr(args, "debug", False):
            raise
        message, code = error_line(error)
        print(f"udarts {args.command}: error: {message}", file=sys.stderr)
        return code
    except KeyboardInterrupt:
        how = {"search": "; continue with --resume RUN_DIR (checkpoints are written every epoch)",
               "train": "; continue with --resume RUN_DIR (checkpoints are written every epoch)",
               "compare": "; run the same command again: finished runs are reused, the interrupted one resumed"}
        print("\ninterrupted" + how.get(args.command, ""), file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
