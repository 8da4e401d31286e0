"""Genotype files from a search checkpoint (``udarts derive``) or drawn at random from the space
(``udarts sample``, the baseline every search must beat)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from udarts.builders import check_u_input_size, search_meta, search_op_settings, search_ops
from udarts.config import Config, ConfigError
from udarts.engine.layout import GENOTYPE_FILE, derived_genotype_name, one_shot_scores_name

KEEP = "keep"  # derive's max_identity: the search's own search.max_identity


SELECTIONS = ("alpha", "perturbation", "one_shot")  # how derive picks ops and edges
DEFAULT_BATCHES = {"perturbation": 4, "one_shot": 8}


def derive_genotype(checkpoint: str | Path, top_k: int | None = None, max_identity: int | None | str = KEEP,
                    out: str | Path | None = None, *, selection: str = "alpha", batches: int | None = None,
                    candidates: int | None = None, root: str | None = None, device: str | None = None,
                    progress: bool = True) -> Path:
    """Derive the genotype of a search checkpoint (a run folder means its ``last.pt``) with
    ``top_k`` kept edges per node and at most ``max_identity`` identity edges per cell (default:
    the search's own), write it and print warnings for weakly determined or degenerate cells.

    ``selection``: ``"alpha"`` (DARTS: the strongest softmax weights), ``"perturbation"``
    (DARTS-PT, ``udarts.search.perturbation``: the ops and edges whose removal raises the search
    loss most, measured on the first ``batches`` (default 4) batches of the search's alpha half;
    mixture modes only) or ``"one_shot"`` (random search with weight sharing,
    ``udarts.search.one_shot``: ``candidates`` (default 100) random genotypes of the space, each
    scored as a sub-network of the supernet by its mIoU on the first ``batches`` (default 8)
    batches of the alpha half after re-estimating batch-norm statistics on as many batches of the
    weight half; the best one is kept, and every score is written to
    ``one-shot-scores-top<K>-os<N>-b<B>.json`` in the search's run folder, with a histogram
    ``.png``; ``max_identity`` does not apply). The data is read from ``root`` or the recorded
    ``data.root``; the supernet runs on ``device``.

    Without ``out`` it goes beside the checkpoint: ``genotype.json`` with the search's own
    settings, ``genotype-top<K>[-maxid<N>][-pt<B>|-os<N>-b<B>].json`` otherwise."""
    from udarts.engine.runs import load_checkpoint
    from udarts.genotype import architecture_from_state, derive, derive_from_weights
    from udarts.search.diagnostics import diagnose, genotype_warnings, print_warnings, softmax_weights

    if selection not in SELECTIONS:
        raise ConfigError(f"--selection: expected one of {SELECTIONS}, got {selection!r}")
    if selection == "alpha" and (batches, root, device) != (None, None, None):
        raise ConfigError("--batches, --root and --device apply to --selection perturbation and one_shot only")
    if selection != "one_shot" and candidates is not None:
        raise ConfigError("--candidates applies to --selection one_shot only")
    if selection == "one_shot" and max_identity not in (KEEP, None):
        raise ConfigError("--max-identity does not apply to --selection one_shot (its candidates are uniform draws)")
    if top_k is not None and top_k < 1:
        raise ConfigError(f"--top-k: expected an integer >= 1, got {top_k}")
    for flag, value in (("--batches", batches), ("--candidates", candidates)):
        if value is not None and value < 1:
            raise ConfigError(f"{flag}: expected an integer >= 1, got {value}")
    state = load_checkpoint(checkpoint, kind="search")
    config = Config.from_dict(state["config"], f"{checkpoint} (config)")
    op_names = search_ops(config)
    architecture = architecture_from_state(state["model"], config.model.num_nodes)  # alphas, edge scales, pruning masks
    top_k = config.search.top_k if top_k is None else top_k
    max_identity = config.search.max_identity if max_identity == KEEP else max_identity
    meta = {**search_meta(config), "epochs_done": state["epoch"], "top_k": top_k, "max_identity": max_identity}
    batches = DEFAULT_BATCHES.get(selection) if batches is None else batches
    source = Path(checkpoint)
    folder = source if source.is_dir() else source.parent
    suffix = ""

    def alpha_rule():
        return derive(architecture["alphas"], op_names, config.model.num_nodes, top_k, search_op_settings(config), meta,
                      edge_scales=architecture["edge_scales"], op_masks=architecture["op_masks"], max_identity=max_identity)

    if selection == "alpha":
        genotype = alpha_rule()
    elif selection == "perturbation":
        weights, used = perturbation_selection(state, config, top_k, batches, root, device, progress)
        meta.update({"selection": "perturbation", "selection_batches": used})
        suffix = f"-pt{used}"
        genotype = derive_from_weights(weights, op_names, config.model.num_nodes, top_k, search_op_settings(config), meta,
                                       op_masks=architecture["op_masks"], max_identity=max_identity)
    else:
        if architecture["op_masks"] is not None and not all(bool(mask.all()) for mask in architecture["op_masks"]):
            raise ConfigError("--selection one_shot: the search pruned ops (search.prune_start_epoch), and the random "
                              "candidates are drawn from the whole space; derive with --selection alpha")
        candidates = 100 if candidates is None else candidates
        suffix = f"-os{candidates}-b{batches}"
        alpha_genotype = alpha_rule()  # the reference the candidates are ranked against, with the search's cap
        max_identity = meta["max_identity"] = None  # the candidates are uniform draws: no cap
        genotype = one_shot_selection(state, config, top_k, candidates, batches, root, device, progress, alpha_genotype,
                                      folder / one_shot_scores_name(top_k, suffix))
        genotype = dataclasses.replace(genotype, search={**meta, **genotype.search, "selection": "one_shot"})
    if out is None:  # the search's own genotype.json is only rewritten with the search's own settings
        name = GENOTYPE_FILE
        if (top_k, max_identity, suffix) != (config.search.top_k, config.search.max_identity, ""):
            name = derived_genotype_name(top_k, max_identity, suffix)
        out = folder / name
    genotype.save(out)
    weights = softmax_weights(architecture["alphas"], architecture["op_masks"])
    warnings = genotype_warnings(diagnose(weights, op_names, genotype, architecture["edge_scales"]))
    if selection != "alpha":  # the entropy and margin warnings judge the alphas, which this selection did not read
        warnings = [warning for warning in warnings if not warning.startswith("weakly determined")]
    print_warnings(warnings)
    print(f"genotype: {out} (top_k {top_k}, max_identity {max_identity}, selection {selection})")
    return Path(out)


def supernet_and_search_batches(state: dict, config: Config, batches: int, root: str | None, device: str | None, what: str,
                                weight_half_too: bool = False):
    """``(supernet with the checkpoint's weights, in eval mode on the device, loss, class info,
    the first ``batches`` batches of the alpha half[, of the weight half])`` for a selection rule."""
    from udarts.builders import build_loader, build_split, build_supernet, dataset_info, resolve_device, search_halves
    from udarts.losses import build_loss

    if root is not None:
        config = config.updated({"data": {"root": str(root)}}, "--root")
    train_set = build_split(config, "train", augment=False)
    info = dataset_info(train_set)
    if state.get("class_names") is not None and list(info["class_names"]) != list(state["class_names"]):
        raise ConfigError(f"data.root {config.data.root}: classes {list(info['class_names'])}, but the search was run on "
                          f"{list(state['class_names'])}; pass --root with the search's dataset")
    weight_half, alpha_half = search_halves(config, train_set)
    target = resolve_device(device or "cpu")

    def first_batches(subset, name: str) -> list:
        loader = build_loader(config, subset, False, target)
        fixed = [(images.to(target), masks.to(target)) for _, (images, masks) in zip(range(batches), loader)]
        if len(fixed) < batches:
            print(f"note: {what}: the {name} half has {len(fixed)} batch(es) of {config.data.batch_size}; using all of them")
        return fixed

    halves = [first_batches(alpha_half, "alpha")] + ([first_batches(weight_half, "weight")] if weight_half_too else [])
    model = build_supernet(config, len(info["class_names"]))
    model.load_state_dict(state["model"])
    model.to(target).eval()
    return model, build_loss(config.search.loss, info["ignore_index"]), info, halves


def _progress_bar(progress: bool, what: str):
    def bar(items, description: str):
        from tqdm.auto import tqdm

        return tqdm(list(items), desc=f"{what}: {description}", unit="item", disable=not progress)

    return bar


def perturbation_selection(state: dict, config: Config, top_k: int, batches: int, root: str | None, device: str | None,
                           progress: bool) -> tuple[list, int]:
    """``(selection weights per cell, batches used)`` of DARTS-PT for a search checkpoint
    (``udarts.search.perturbation``), on the first ``batches`` batches of its alpha half."""
    from udarts.search.perturbation import perturbation_scores, selection_weights
    from udarts.search.supernet import SAMPLED_MODES

    if config.search.mode in SAMPLED_MODES:
        raise ConfigError(f"--selection perturbation: the search ran in mode {config.search.mode!r}, whose supernet "
                          "evaluates one sampled op per edge; it needs a mixture mode (darts, pc_darts)")
    model, loss_fn, _, (fixed,) = supernet_and_search_batches(state, config, batches, root, device, "perturbation")

    def loss_of_supernet() -> float:
        return sum(float(loss_fn(model(images), masks)) for images, masks in fixed) / len(fixed)

    try:
        scores = perturbation_scores(model.cells, search_ops(config), loss_of_supernet, top_k=top_k, seed=config.seed,
                                     progress=_progress_bar(progress, "perturbation"))
    except FloatingPointError as error:
        raise ConfigError(f"--selection perturbation: {error}") from error
    return [selection_weights(cell_scores) for cell_scores in scores], len(fixed)


def one_shot_selection(state: dict, config: Config, top_k: int, candidates: int, batches: int, root: str | None,
                       device: str | None, progress: bool, alpha_genotype, scores_path: Path):
    """Random search with weight sharing (``udarts.search.one_shot``): the best of ``candidates``
    random genotypes (``udarts.random_genotypes``, seeded by the search's seed) by one-shot mIoU on
    the alpha half. Every candidate's score, and the alpha-derived genotype's for reference, go to
    ``scores_path``."""
    import datetime
    import json

    from udarts.io import atomic_write_text
    from udarts.random_genotypes import sample_genotypes
    from udarts.search.one_shot import one_shot_scores
    from udarts.viz.one_shot import plot_one_shot_scores

    model, loss_fn, info, (evaluation, recalibration) = supernet_and_search_batches(state, config, batches, root, device,
                                                                               "one-shot", weight_half_too=True)
    drawn = [genotype for genotype, _ in sample_genotypes(candidates, config.seed, search_ops(config), config.model.num_nodes,
                                                          top_k, search_op_settings(config))]
    scores = one_shot_scores(model, [alpha_genotype, *drawn], recalibration, evaluation, loss_fn,
                             len(info["class_names"]), info["ignore_index"], progress=_progress_bar(progress, "one-shot"))
    alpha_score, drawn_scores = scores[0], scores[1:]
    best = max(range(len(drawn)), key=lambda index: drawn_scores[index].miou)
    rank = 1 + sum(score.miou > alpha_score.miou for score in drawn_scores)
    print(f"one-shot: best of {len(drawn)} random genotypes: #{best} at {100 * drawn_scores[best].miou:.2f} mIoU on "
          f"{len(evaluation)} alpha-half batch(es) (median {100 * sorted(s.miou for s in drawn_scores)[len(drawn) // 2]:.2f}); "
          f"the alpha-derived genotype scores {100 * alpha_score.miou:.2f} (rank {rank} of {len(drawn) + 1})")
    atomic_write_text(scores_path, json.dumps({
        "checkpoint_epoch": state["epoch"], "seed": config.seed, "top_k": top_k, "evaluation_batches": len(evaluation),
        "recalibration_batches": len(recalibration), "date": datetime.date.today().isoformat(), "chosen": best,
        "alpha_genotype": {"miou": alpha_score.miou, "loss": alpha_score.loss, "rank": rank},
        "candidates": [{"index": genotype.search["index"], "miou": score.miou, "loss": score.loss,
                        "genotype": genotype.to_dict()} for genotype, score in zip(drawn, drawn_scores)],
    }, indent=1) + "\n", make_parent=True)
    plot_one_shot_scores([score.miou for score in drawn_scores], best, alpha_score.miou, scores_path.with_suffix(".png"))
    return dataclasses.replace(drawn[best], search={
        "one_shot_candidates": len(drawn), "one_shot_sample_seed": config.seed, "one_shot_index": drawn[best].search["index"],
        "one_shot_miou": drawn_scores[best].miou, "selection_batches": len(evaluation),
        "recalibration_batches": len(recalibration)})


def sample_genotype_files(config: Config, num: int, seed: int, out: str | Path, *, flops_budget: float | None = None,
                          width: int | None = None, num_classes: int = 11) -> list[Path]:
    """``num`` genotypes drawn uniformly from the config's space (``model.ops``, ``model.num_nodes``,
    ``search.top_k``) as ``out/random-<seed>-<index>.json``; with ``flops_budget``, only those whose
    SEARCH-Net at ``width`` fits it (``udarts.random_genotypes``)."""
    from udarts.random_genotypes import sample_genotypes

    if flops_budget is not None and width is None:
        raise ConfigError("--flops-budget needs --width: the SEARCH-Net width the FLOPs are counted at")
    if width is not None:
        check_u_input_size(config)
    try:
        drawn = sample_genotypes(
            num, seed, search_ops(config), config.model.num_nodes, config.search.top_k, search_op_settings(config),
            flops_budget=flops_budget, width=width, image_size=config.data.image_size, num_classes=num_classes,
        )
    except ValueError as error:
        raise ConfigError(str(error)) from error
    paths = []
    for genotype, gflops in drawn:
        path = genotype.save(Path(out) / f"random-{seed}-{genotype.search['index']:03d}.json")
        paths.append(path)
        print(f"{path}" + ("" if gflops is None else f"  {gflops:.3f} GFLOPs at width {width}"))
    return paths
