"""User-facing errors: one line that says what was wrong and what to do instead."""


class AekitError(Exception):
    """Base class for errors caused by the user's input (files, shapes, config values)."""


class DataError(AekitError):
    """A data file or array is missing, corrupt, or does not fit what was asked."""


class ConfigError(AekitError):
    """A configuration value or key is invalid."""


class ShapeConfigError(ConfigError):
    """A configuration value that does not fit the data's shape (a patch that does not divide the image); before
    the data is read it is not yet known to be wrong."""


class TrainingDiverged(AekitError):
    """The loss became NaN or infinite during training."""


def did_you_mean(name: str, choices) -> str:
    """``" (did you mean 'vae'?)"`` for the choice closest to a mistyped ``name``, or "" when none is close."""
    import difflib

    close = difflib.get_close_matches(name, list(choices), n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""
