"""The error of a config that cannot be used, naming the dotted key (and the file or flag)."""


class ConfigError(ValueError):
    pass
