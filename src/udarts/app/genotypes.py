"""Genotype files from a search checkpoint (``udarts derive``) or drawn at random from the space
(``udarts sample``, the baseline every search must beat)."""

from __future__ import annotations

from pathlib import Path

from udarts.builders import check_u_input_size, search_meta, search_op_settings, search_ops
from udarts.config import Config, ConfigError

KEEP = "keep"  # derive's max_identity: the search's own search.max_identity


SELECTIONS = ("alpha", "perturbation")  # how derive picks ops and edges


def derive_genotype(checkpoint: str | Path, top_k: int | None = None, max_identity: int | None | str = KEEP,
                    out: str | Path | None = None, *, selection: str = "alpha", batches: int | None = None,
                    root: str | None = None, device: str | None = None, progress: bool = True) -> Path:
    """Derive the genotype of a search checkpoint (a run folder means its ``last.pt``) with
    ``top_k`` kept edges per node and at most ``max_identity`` identity edges per cell (default:
    the search's own), write it and print warnings for weakly determined or degenerate cells.

    ``selection``: ``"alpha"`` (DARTS: the strongest softmax weights) or ``"perturbation"``
    (DARTS-PT, ``udarts.search.perturbation``: the ops and edges whose removal raises the search
    loss most, measured on the first ``batches`` (default 4) batches of the search's alpha half,
    read from ``root`` or the recorded ``data.root``, on ``device``; mixture modes only).

    Without ``out`` it goes beside the checkpoint: ``genotype.json`` with the search's own
    settings, ``genotype-top<K>[-maxid<N>][-pt<B>].json`` otherwise."""
    from udarts.engine.runs import load_checkpoint
    from udarts.genotype import architecture_from_state, derive, derive_from_weights
    from udarts.search.diagnostics import diagnose, genotype_warnings, print_warnings, softmax_weights

    if selection not in SELECTIONS:
        raise ConfigError(f"--selection: expected one of {SELECTIONS}, got {selection!r}")
    if selection == "alpha" and (batches, root, device) != (None, None, None):
        raise ConfigError("--batches, --root and --device apply to --selection perturbation only")
    if top_k is not None and top_k < 1:
        raise ConfigError(f"--top-k: expected an integer >= 1, got {top_k}")
    if batches is not None and batches < 1:
        raise ConfigError(f"--batches: expected an integer >= 1, got {batches}")
    state = load_checkpoint(checkpoint, kind="search")
    config = Config.from_dict(state["config"], f"{checkpoint} (config)")
    op_names = search_ops(config)
    architecture = architecture_from_state(state["model"], config.model.num_nodes)  # alphas, edge scales, pruning masks
    top_k = config.search.top_k if top_k is None else top_k
    max_identity = config.search.max_identity if max_identity == KEEP else max_identity
    meta = {**search_meta(config), "epochs_done": state["epoch"], "top_k": top_k, "max_identity": max_identity}
    suffix = ""
    if selection == "alpha":
        genotype = derive(architecture["alphas"], op_names, config.model.num_nodes, top_k, search_op_settings(config), meta,
                          edge_scales=architecture["edge_scales"], op_masks=architecture["op_masks"],
                          max_identity=max_identity)
    else:
        weights, used = perturbation_selection(state, config, top_k, 4 if batches is None else batches, root, device, progress)
        meta.update({"selection": "perturbation", "selection_batches": used})
        suffix = f"-pt{used}"
        genotype = derive_from_weights(weights, op_names, config.model.num_nodes, top_k, search_op_settings(config), meta,
                                       op_masks=architecture["op_masks"], max_identity=max_identity)
    source = Path(checkpoint)
    if out is None:  # the search's own genotype.json is only rewritten with the search's own settings
        name = "genotype.json"
        if (top_k, max_identity, suffix) != (config.search.top_k, config.search.max_identity, ""):
            name = f"genotype-top{top_k}" + (f"-maxid{max_identity}" if max_identity is not None else "") + suffix + ".json"
        out = (source if source.is_dir() else source.parent) / name
    genotype.save(out)
    weights = softmax_weights(architecture["alphas"], architecture["op_masks"])
    warnings = genotype_warnings(diagnose(weights, op_names, genotype, architecture["edge_scales"]))
    if selection == "perturbation":  # the entropy and margin warnings judge the alphas, which this selection did not read
        warnings = [warning for warning in warnings if not warning.startswith("weakly determined")]
    print_warnings(warnings)
    print(f"genotype: {out} (top_k {top_k}, max_identity {max_identity}, selection {selection})")
    return Path(out)


def perturbation_selection(state: dict, config: Config, top_k: int, batches: int, root: str | None, device: str | None,
                           progress: bool) -> tuple[list, int]:
    """``(selection weights per cell, batches used)`` of DARTS-PT for a search checkpoint
    (``udarts.search.perturbation``), on the first ``batches`` batches of its alpha half."""
    import torch

    from udarts.builders import build_loader, build_split, build_supernet, dataset_info, resolve_device, search_halves
    from udarts.losses import build_loss
    from udarts.search.perturbation import perturbation_scores, selection_weights
    from udarts.search.supernet import SAMPLED_MODES

    if config.search.mode in SAMPLED_MODES:
        raise ConfigError(f"--selection perturbation: the search ran in mode {config.search.mode!r}, whose supernet "
                          "evaluates one sampled op per edge; it needs a mixture mode (darts, pc_darts)")
    if root is not None:
        config = config.updated({"data": {"root": str(root)}}, "--root")
    train_set = build_split(config, "train", augment=False)
    info = dataset_info(train_set)
    if state.get("class_names") is not None and list(info["class_names"]) != list(state["class_names"]):
        raise ConfigError(f"data.root {config.data.root}: classes {list(info['class_names'])}, but the search was run on "
                          f"{list(state['class_names'])}; pass --root with the search's dataset")
    _, alpha_half = search_halves(config, train_set)
    target = resolve_device(device or "cpu")
    loader = build_loader(config, alpha_half, False, target)
    fixed = [(images.to(target), masks.to(target)) for _, (images, masks) in zip(range(batches), loader)]
    if len(fixed) < batches:
        print(f"note: the alpha half has {len(fixed)} batch(es) of {config.data.batch_size}; scoring on all of them")
    model = build_supernet(config, len(info["class_names"]))
    model.load_state_dict(state["model"])
    model.to(target).eval()
    loss_fn = build_loss(config.search.loss, info["ignore_index"])

    def loss_of_supernet() -> float:
        return sum(float(loss_fn(model(images), masks)) for images, masks in fixed) / len(fixed)

    def bar(items, description: str):
        from tqdm.auto import tqdm

        return tqdm(list(items), desc=f"perturbation: {description}", unit="item", disable=not progress)

    try:
        scores = perturbation_scores(model.cells, search_ops(config), loss_of_supernet, top_k=top_k, seed=config.seed,
                                     progress=bar)
    except FloatingPointError as error:
        raise ConfigError(f"--selection perturbation: {error}") from error
    return [selection_weights(cell_scores) for cell_scores in scores], len(fixed)


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
