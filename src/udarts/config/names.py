"""The names a config may give, one table per registry: plain data, since the config package
imports nothing above it. Each table holds exactly the names of the registry it stands for (the
dict ``name -> constructor`` that builds them); ``tests/test_names.py`` ties every table to its
registry both ways, so a registry entry the config cannot name fails, and so does a name no
registry builds. ``NAMED_KEYS`` says which table every name-valued key takes its names from;
the schema checks them there, once (``udarts.config.schema``).

The candidate ops (``model.ops``) are checked against the registry itself (``udarts.ops.OPS``)
where the network is built; ``PAPER_OPS`` is only their default.
"""

DATASETS = ("synthetic", "pets", "camvid", "folder")  # udarts.data.factory.DATASETS
PETS_TARGETS = ("binary", "trimap")  # udarts.data.pets.TARGETS
BAD_SAMPLE_POLICIES = ("error", "skip")  # udarts.data.pairs.BAD_SAMPLE_POLICIES
LOSSES = ("dice", "ce", "dice_ce")  # udarts.losses.LOSSES
OPTIMIZERS = ("sgd", "adam", "adamw")  # udarts.engine.trainer.OPTIMIZERS
SCHEDULERS = ("cosine", "none")  # udarts.engine.trainer.SCHEDULERS
SEARCH_ORDERS = ("first", "second")  # udarts.search.darts.ORDERS
SEARCH_MODES = ("darts", "gdas", "pc_darts", "pc_gdas")  # udarts.search.supernet.SEARCH_MODES
SAMPLED_MODES = ("gdas", "pc_gdas")  # one op per edge per step (Gumbel), no second-order step
AMP_MODES = ("none", "bf16", "fp16")  # udarts.efficiency.AMP_MODES
TAU_SCHEDULES = ("linear", "exponential")  # udarts.search.sampling.TAU_SCHEDULES
# searchnet + udarts.baselines.BASELINES
MODELS = ("searchnet", "unet", "unet_resnet34", "unetpp", "fpn", "deeplabv3", "setr", "lraspp_mobilenet_v3_large",
          "deeplabv3_mobilenet_v3_large", "unet_mobilenet_v2", "unet_efficientnet_b0", "unet_resnet18")
MODEL_SCALES = ("cpu", "paper")  # udarts.baselines.scales.SCALES
PAPER_OPS = ("conv_3x3", "conv_5x5", "dil_conv_3x3", "dil_conv_5x5", "mbconv_3x3", "mbconv_5x5", "identity")  # in OPS

# dotted key -> the names it may take
NAMED_KEYS: dict[str, tuple[str, ...]] = {
    "data.name": DATASETS,
    "data.target": PETS_TARGETS,
    "data.on_bad_sample": BAD_SAMPLE_POLICIES,
    "search.loss": LOSSES,
    "search.weight_optimizer": OPTIMIZERS,
    "search.order": SEARCH_ORDERS,
    "search.mode": SEARCH_MODES,
    "search.amp": AMP_MODES,
    "search.tau_schedule": TAU_SCHEDULES,
    "train.model": MODELS,
    "train.model_scale": MODEL_SCALES,
    "train.loss": LOSSES,
    "train.optimizer": OPTIMIZERS,
    "train.scheduler": SCHEDULERS,
}
