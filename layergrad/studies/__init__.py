"""Studies as declared data: a study's conditions (source + attributes) and its claims (claim kinds with
parameters). registry.py (the extension points: claim kinds, caveats, studies) · schema.py (the form and
its checks) · paper.py and followup.py (the two papers, registered built-in studies with their hooks) ·
here: ``load_study`` (a registered study's name, a YAML file, a dict or a Study) and ``builtin_claims``
(what ``analyze`` checks on any run: the registered studies' claims, wherever the conditions' attributes
fit them).
"""

from __future__ import annotations

from pathlib import Path

from layergrad.errors import InputError
from layergrad.studies.registry import STUDIES, StudyHooks, claim_kind, caveat, register_study
from layergrad.studies.schema import ClaimSpec, Condition, Study, study_from_dict

SCHEMES = ("paper:", "builtin:", "hf:")

__all__ = ["ClaimSpec", "Condition", "Study", "StudyHooks", "builtin_claims", "caveat", "claim_kind", "load_study",
           "register_study"]


def load_study(spec, *, statistics=(), groups=("cot", "math", "wiki"), tasks=None, paper_data=None,
               followup_data=None) -> Study:
    """A Study from a registered study's name ('paper', 'followup': ``groups``/``tasks``, ``paper_data`` and
    ``followup_data`` choose their cells), a YAML file, a dict or a Study; ``statistics``: the names a
    claim's statistic may take. A bad study is a one-line error naming the key (and the file's line)."""
    if isinstance(spec, Study):
        return spec
    if isinstance(spec, dict):
        return study_from_dict(spec, statistics=statistics)
    if isinstance(spec, str) and spec in STUDIES:
        return STUDIES.get(spec).build(groups=groups, tasks=tasks, paper_data=paper_data, followup_data=followup_data)
    path = Path(str(spec)).expanduser()
    if not path.is_file():
        raise InputError(f"unknown study '{spec}': use {' or '.join(STUDIES.names())}, or the path of a study file "
                         "(.yaml)")
    return study_file(path, statistics)


def study_file(path: Path, statistics=()) -> Study:
    """A study from a YAML file: relative sources are taken from the file's folder."""
    import yaml

    try:
        text = path.read_text(encoding="utf-8")
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        values = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        raise InputError(f"{path}{f', line {mark.line + 1}' if mark else ''}: malformed YAML "
                         f"({getattr(exc, 'problem', None) or 'cannot parse'})") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"cannot read study file {path}: {exc}") from None
    lines = key_lines(node)
    study = study_from_dict(values, lines=lines, where=str(path), statistics=statistics)
    conditions = tuple(Condition(c.name, resolve_source(c.source, path.parent), c.attributes) for c in study.conditions)
    origins = {c.name: f"{path}, line {lines.get(('conditions', c.name), '?')}, conditions.{c.name}"
               for c in study.conditions}
    return Study(study.name if values.get("name") else path.stem, conditions, study.claims, study.labels,
                 origins=origins)


def resolve_source(source: str, folder: Path) -> str:
    """A relative file path of a study file, from the file's folder (schemes and absolute paths as they are)."""
    if source.startswith(SCHEMES) or Path(source).expanduser().is_absolute():
        return source
    beside = folder / source.split("?")[0]
    return str(folder / source) if beside.exists() or not Path(source.split("?")[0]).exists() else source


def key_lines(node, path: tuple = ()) -> dict:
    """{key path: 1-based line} of every mapping key and list item of a composed YAML document."""
    import yaml

    lines = {}
    if isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            here = path + (key.value,)
            lines[here] = key.start_mark.line + 1
            lines.update(key_lines(value, here))
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            lines[path + (i,)] = item.start_mark.line + 1
            lines.update(key_lines(item, path + (i,)))
    return lines


def builtin_claims() -> tuple[ClaimSpec, ...]:
    """The claims ``analyze`` checks on any run: every registered study's, in order, each id once."""
    found: dict[str, ClaimSpec] = {}
    for _, study in STUDIES.items():
        for spec in study.claims:
            found.setdefault(spec.id, spec)
    return tuple(found.values())


def builtin_labels() -> dict:
    """The registered studies' words for attribute values, merged."""
    labels: dict = {}
    for _, study in STUDIES.items():
        labels.update(study.labels or {})
    return labels
