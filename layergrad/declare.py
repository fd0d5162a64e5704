"""Options declared once: dataclass fields that carry their help text, choices and whether they change
the numbers, so that the Python API, the configuration files and the CLI are built from one place
(engine.options.ComputeOptions, models.LoadOptions, runs.config.RunConfig)."""

from __future__ import annotations

from dataclasses import field, fields

from layergrad.errors import InputError, did_you_mean


def option(default, help: str, *, choices: tuple | None = None, neutral: bool = False, positive: bool = False,
           flag: str | None = None):
    """A field with its CLI and validation facts: ``neutral`` = changes no number of the results (a
    resumed run may differ in it); ``positive`` = a positive integer when given; ``flag`` = the CLI
    spelling when it is not ``--<name>`` (e.g. ``--no-eos`` for ``append_eos``)."""
    return field(default=default, metadata={"help": help, "choices": choices, "neutral": neutral,
                                            "positive": positive, "flag": flag})


def check_fields(obj) -> None:
    """Choices and positive integers of a dataclass declared with ``option``: one-line InputErrors."""
    for f in fields(obj):
        value, meta = getattr(obj, f.name), f.metadata
        if meta.get("choices") and value not in meta["choices"]:
            raise InputError(f"unknown {f.name} {value!r}.{did_you_mean(str(value), meta['choices'])} "
                             f"Use one of: {', '.join(meta['choices'])}")
        if meta.get("positive") and value is not None and (not isinstance(value, int) or isinstance(value, bool)
                                                           or value < 1):
            raise InputError(f"{f.name} must be a positive integer, got {value!r}")


def build_options(cls, **values):
    """``cls(**values)``, an unknown name being a one-line InputError that suggests the closest."""
    known = [f.name for f in fields(cls)]
    for key in values:
        if key not in known:
            raise InputError(f"unknown option '{key}'.{did_you_mean(key, known)} Options: {', '.join(known)}")
    return cls(**values)


def fingerprint(obj) -> dict:
    """The fields of ``obj`` that change the numbers."""
    return {f.name: getattr(obj, f.name) for f in fields(obj) if not f.metadata.get("neutral")}


def changed(obj) -> dict:
    """The fields of a declared option object that differ from their defaults."""
    default = type(obj)()
    return {f.name: getattr(obj, f.name) for f in fields(obj) if getattr(obj, f.name) != getattr(default, f.name)}


def command_words(obj) -> list[str]:
    """The CLI options that give ``obj``'s non-default fields (e.g. ['--max-length 512', '--no-eos'])."""
    words = []
    for f in fields(obj):
        value = getattr(obj, f.name)
        if f.name not in changed(obj):
            continue
        flags = (f.metadata.get("flag") or "--" + f.name.replace("_", "-")).split()[0]
        if isinstance(value, bool):
            on, _, off = flags.partition("/")
            words.append(on if value or not off else off)
        else:
            words.append(f"{flags} {','.join(value) if isinstance(value, (list, tuple)) else value}")
    return words
