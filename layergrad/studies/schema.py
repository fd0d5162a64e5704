"""A study as data: its conditions (each a source and attributes) and its claims (each a claim kind with
parameters), checked when read, every mistake a one-line error naming the key and, in a file, its line.

A claim compares conditions selected by their attributes, never by their names::

    - id: C1
      statement: Kept data has a higher effective rank in the late layers
      statistic: effective_rank      # any registered statistic (or derived metric)
      layers: late                   # all | early | middle | late | [0, 5, 10]
      compare: {split: [kept, dropped]}   # first against second
      direction: greater             # greater | less | two-sided | equivalent (with margin, relative)

More keys: ``kind`` (a registered claim kind, studies/registry.py; default ``difference``), ``where``
(attributes every compared condition has), ``per`` (an attribute whose values make separate cells,
e.g. ``task``), ``paired`` (auto | yes | no: auto pairs conditions that share prompts), ``definition``,
``caveat`` (default ``controls``: the length overlap, the AUROC of length, loss and IFD for the pair, what the
gradient profile adds beyond them, and the contrast under random weights), ``confounds`` (default ``[length]``;
``[length, loss]``, or ``[]`` for none: what the compared contrast must be separable from — where the design
cannot, the verdict is ``confounded``; where it can, it rests on the effect at equal confounds) and ``options``
(the keys the kind and the caveat declare in their options dataclasses; any other key is an error naming it).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from layergrad.errors import InputError, did_you_mean
from layergrad.studies.registry import CAVEATS, CLAIM_KINDS, ClaimOptions, StudyHooks, parse_options

DIRECTIONS = {"greater": 1, "less": -1, "two-sided": 0, "equivalent": 0}
LAYER_SCOPES = ("all", "early", "middle", "late")
PAIRED = ("auto", "yes", "no")
DEFAULT_CAVEAT = "controls"  # the length overlap, the baselines' AUROC, the increment, random weights
CONFOUNDS = ("length", "loss")  # what a claim may name as its confounds (per-sample response length, loss)


@dataclass(frozen=True)
class Condition:
    """One condition of a study: where its samples come from and what it is."""

    name: str
    source: str
    attributes: dict = field(default_factory=dict)


@dataclass(frozen=True)
class ClaimSpec:
    """One claim: its words and the parameters of its kind (see the module doc)."""

    id: str
    statement: str
    kind: str = "difference"
    statistic: str = "nuclear_norm"
    layers: str | tuple = "all"
    compare: dict = field(default_factory=dict)
    where: dict = field(default_factory=dict)
    direction: str = "greater"
    margin: float | None = None
    paired: str = "auto"
    per: str | None = None
    definition: str = ""
    test: str = ""
    caveat: str = DEFAULT_CAVEAT
    confounds: tuple = ("length",)  # what the contrast must be separable from (CONFOUNDS), else 'confounded'
    options: ClaimOptions | dict = field(default_factory=dict)  # the kind's options (a dict is checked and parsed)
    caveat_options: ClaimOptions | None = None  # the caveat's (parsed from the same mapping)

    def __post_init__(self):
        if not isinstance(self.options, ClaimOptions):
            kind_options, caveat_options = parse_options(self.kind, self.caveat, self.options)
            object.__setattr__(self, "options", kind_options)
            object.__setattr__(self, "caveat_options", caveat_options)
        elif self.caveat_options is None:
            object.__setattr__(self, "caveat_options", CAVEATS.get(self.caveat).options())

    @property
    def sign(self) -> int:
        return DIRECTIONS[self.direction]

    @property
    def between_runs(self) -> bool:
        return CLAIM_KINDS.get(self.kind).between_runs

    @property
    def reads(self) -> list[str]:
        """The statistics the claim reads: its own and those its options name."""
        return [self.statistic] + [m for m, _ in getattr(self.options, "statistics", ())]

    def first_second(self) -> tuple[str, str, str] | None:
        """(attribute, first value, second value) of ``compare``, or None."""
        if not self.compare:
            return None
        (attribute, values), = self.compare.items()
        return (attribute, *values) if len(values) == 2 else (attribute, values[0], values[0])


@dataclass(frozen=True)
class Study:
    """A study: a name, its conditions (in order), its claims (in order), and the words for attribute
    values used in its messages (e.g. ``none`` -> ``None CoT``; an empty word is left out)."""

    name: str
    conditions: tuple[Condition, ...]
    claims: tuple[ClaimSpec, ...]
    labels: dict = field(default_factory=dict)
    notes: tuple[str, ...] = ()
    origins: dict = field(default_factory=dict)  # condition -> where a study file declares it (for messages)
    hooks: StudyHooks = field(default_factory=StudyHooks)  # what it adds to reproduce (figures, control, ...)

    @property
    def data(self) -> dict[str, str]:
        return {c.name: c.source for c in self.conditions}

    @property
    def attributes(self) -> dict[str, dict]:
        return {c.name: dict(c.attributes) for c in self.conditions}


# ----------------------------------------------------------------------------- reading a study

CLAIM_KEYS = {f for f in ClaimSpec.__dataclass_fields__}
STUDY_KEYS = ("name", "conditions", "claims", "labels", "description")


def study_from_dict(values, *, lines: dict | None = None, where: str = "study", statistics=()) -> Study:
    """A Study from a mapping (a parsed YAML file); ``lines``: {key path: line} for the messages;
    ``statistics``: the names ``statistic`` may take. Every mistake is a one-line InputError."""
    def fail(path: tuple, message: str):
        line = (lines or {}).get(path)
        at = f"{where}" + (f", line {line}" if line else "") + (f", {'.'.join(map(str, path))}" if path else "")
        raise InputError(f"{at}: {message}")

    if not isinstance(values, dict):
        fail((), "a study is a mapping with name, conditions and claims")
    for key in values:
        if key not in STUDY_KEYS:
            fail((key,), f"unknown key '{key}'.{did_you_mean(str(key), STUDY_KEYS)} A study has {', '.join(STUDY_KEYS)}")
    conditions = values.get("conditions")
    if not isinstance(conditions, dict) or not conditions:
        fail(("conditions",), "conditions must map names to {source: ..., attributes: {...}}")
    parsed = []
    for name, spec in conditions.items():
        if isinstance(spec, str):
            spec = {"source": spec}
        if not isinstance(spec, dict) or not isinstance(spec.get("source"), str):
            fail(("conditions", name), "a condition needs a source (a file, paper:..., builtin:..., hf:...)")
        unknown = [k for k in spec if k not in ("source", "attributes")]
        if unknown:
            fail(("conditions", name, unknown[0]), f"unknown key '{unknown[0]}'; a condition has source and attributes")
        attributes = spec.get("attributes") or {}
        if not isinstance(attributes, dict):
            fail(("conditions", name, "attributes"), "attributes must map names to values, e.g. {split: kept}")
        parsed.append(Condition(str(name), spec["source"], {str(k): str(v) for k, v in attributes.items()}))
    claims = values.get("claims")
    if not isinstance(claims, list) or not claims:
        fail(("claims",), "claims must be a list of claims (id, statement, statistic, compare, direction)")
    specs = [claim_from_dict(c, ("claims", i), parsed, fail, statistics) for i, c in enumerate(claims)]
    ids = [c.id for c in specs]
    twice = next((i for i in ids if ids.count(i) > 1), None)
    if twice:
        fail(("claims", ids.index(twice), "id"), f"claim id '{twice}' is used twice")
    labels = values.get("labels") or {}
    return Study(str(values.get("name") or where), tuple(parsed), tuple(specs), dict(labels))


def claim_from_dict(values, path: tuple, conditions: list[Condition], fail, statistics) -> ClaimSpec:
    if not isinstance(values, dict):
        fail(path, "a claim is a mapping (id, statement, statistic, compare, direction)")
    for key in values:
        if key not in CLAIM_KEYS:
            fail(path + (key,), f"unknown key '{key}'.{did_you_mean(str(key), sorted(CLAIM_KEYS))}")
    for key in ("id", "statement"):
        if not values.get(key):
            fail(path, f"a claim needs '{key}'")
    kind = values.get("kind", "difference")
    if not isinstance(kind, str) or kind not in CLAIM_KINDS:
        fail(path + ("kind",), f"unknown claim kind '{kind}'.{did_you_mean(str(kind), CLAIM_KINDS.names())} Kinds: "
             f"{', '.join(CLAIM_KINDS.names())}")
    statistic = values.get("statistic", "nuclear_norm")
    if statistics and statistic not in statistics:
        fail(path + ("statistic",), f"unknown statistic '{statistic}'.{did_you_mean(statistic, statistics)} "
             f"Statistics: {', '.join(statistics)}")
    layers = values.get("layers", "all")
    if isinstance(layers, list):
        if not all(isinstance(i, int) and i >= 0 for i in layers) or not layers:
            fail(path + ("layers",), "layers as a list takes layer indices, e.g. [0, 5, 10]")
        layers = tuple(layers)
    elif layers not in LAYER_SCOPES:
        fail(path + ("layers",), f"unknown layers '{layers}'; use {', '.join(LAYER_SCOPES)} or a list of indices")
    direction = values.get("direction", "greater")
    if direction not in DIRECTIONS:
        fail(path + ("direction",), f"unknown direction '{direction}'.{did_you_mean(str(direction), DIRECTIONS)} "
             f"Use {', '.join(DIRECTIONS)}")
    margin = values.get("margin")
    if direction == "equivalent" and not (isinstance(margin, (int, float)) and margin > 0):
        fail(path + ("margin",), "an equivalent claim needs a positive margin (relative, e.g. 0.05)")
    paired = str(values.get("paired", "auto")).lower().replace("true", "yes").replace("false", "no")
    if paired not in PAIRED:
        fail(path + ("paired",), f"paired is one of {', '.join(PAIRED)}")
    compare = values.get("compare") or {}
    if compare:
        if not isinstance(compare, dict) or len(compare) != 1:
            fail(path + ("compare",), "compare names one attribute and its values: {split: [kept, dropped]}")
        (attribute, chosen), = compare.items()
        chosen = chosen if isinstance(chosen, list) else [chosen]
        if not 1 <= len(chosen) <= 2:
            fail(path + ("compare",), "compare takes one or two values of the attribute (first against second)")
        known = sorted({c.attributes.get(str(attribute)) for c in conditions} - {None})
        if not known:
            fail(path + ("compare",), f"no condition has the attribute '{attribute}'")
        for value in chosen:
            if str(value) not in known:
                fail(path + ("compare",), f"no condition has {attribute}: {value}.{did_you_mean(str(value), known)} "
                     f"Values: {', '.join(known)}")
        compare = {str(attribute): [str(v) for v in chosen]}
    where = values.get("where") or {}
    if not isinstance(where, dict):
        fail(path + ("where",), "where maps attributes to a value or a list of values")
    caveat = values.get("caveat", DEFAULT_CAVEAT)
    if not isinstance(caveat, str) or caveat not in CAVEATS:
        fail(path + ("caveat",), f"unknown caveat '{caveat}'.{did_you_mean(str(caveat), CAVEATS.names())} Caveats: "
             f"{', '.join(CAVEATS.names())}")
    confounds = values.get("confounds", ["length"])
    confounds = [confounds] if isinstance(confounds, str) else confounds
    if not isinstance(confounds, list) or any(c not in CONFOUNDS for c in confounds):
        bad = next((c for c in confounds if c not in CONFOUNDS), confounds) if isinstance(confounds, list) else confounds
        fail(path + ("confounds",), f"unknown confound {bad!r}.{did_you_mean(str(bad), CONFOUNDS)} Confounds: "
             f"{', '.join(CONFOUNDS)} (a list, [] for none)")
    options = values.get("options") or {}
    if not isinstance(options, dict):
        fail(path + ("options",), "options maps option names to values")
    kind_options, caveat_options = parse_options(
        kind, caveat, options, lambda key, message: fail(path + (("options", key) if key else ("options",)), message))
    return ClaimSpec(id=str(values["id"]), statement=str(values["statement"]), kind=kind, statistic=statistic,
                     layers=layers, compare=compare, where={str(k): v for k, v in where.items()}, direction=direction,
                     margin=float(margin) if margin is not None else None, paired=paired, per=values.get("per"),
                     definition=str(values.get("definition", "")), test=str(values.get("test", "")), caveat=caveat,
                     confounds=tuple(dict.fromkeys(confounds)), options=kind_options, caveat_options=caveat_options)
