"""The small error vocabulary of layergrad.

Every error is one actionable line: the CLI prints ``error: <message>`` and exits with
``exit_code`` (2 for bad usage or input, 1 for failures at run time), never a traceback.
"""


class LayergradError(Exception):
    """Base class; the message says what went wrong and what to do."""

    exit_code = 1


class InputError(LayergradError):
    """Bad user input: a missing file, an unknown name, a malformed record or option."""

    exit_code = 2


class ModelError(InputError):
    """A model that cannot be found, fetched or loaded as asked."""


class ConfigMismatchError(InputError):
    """A run directory holds results of a different configuration."""


def did_you_mean(name: str, choices) -> str:
    """' Did you mean X?' for the closest of ``choices``, or ''."""
    import difflib

    close = difflib.get_close_matches(name, list(choices), n=1)
    return f" Did you mean '{close[0]}'?" if close else ""
