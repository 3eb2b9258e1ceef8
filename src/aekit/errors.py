"""User-facing errors: one line that says what was wrong and what to do instead."""


class AekitError(Exception):
    """Base class for errors caused by the user's input (files, shapes, config values)."""


class DataError(AekitError):
    """A data file or array is missing, corrupt, or does not fit what was asked."""


class ConfigError(AekitError):
    """A configuration value or key is invalid."""


class TrainingDiverged(AekitError):
    """The loss became NaN or infinite during training."""
