"""What to compute and how: ``ComputeOptions``, the one declaration of every compute option.

Each field carries its help text, its choices and whether it changes the numbers; the Python API
(``compute(m, samples, **options)``), the run configuration (``RunConfig.compute``), the reproduce
configuration and every command's CLI options are built from it. No torch here: ``--help`` stays
instant.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace

from layergrad.declare import check_fields, fingerprint, option

KINDS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")  # in table order


PARTS = KINDS[:6] + ("gate_up_proj", "down_proj", "lora_A", "lora_B")  # the order of a dotted kind's second part


def kind_order(kind: str) -> tuple:
    """The sort key of a module kind: the seven in table order, then any other (an adapter after its base
    kind; a kind of its own by name, its parts in forward order: expert.gate_up_proj before expert.down_proj)."""
    base, _, rest = kind.partition(".")
    return (KINDS.index(base) if base in KINDS else len(KINDS), base,
            PARTS.index(rest) if rest in PARTS else (-1 if not rest else len(PARTS)), rest)
RECIPES = ("layergrad", "oda")
ROUTES = ("auto", "core", "dense", "reference")
SOLVERS = ("auto", "torch", "numpy", "cupy", "host")
SPANS = ("auto", "sample", "batch")


@dataclass(frozen=True)
class ComputeOptions:
    """What to compute and how; ``paper=True`` reproduces the original script (q/k/v/o unless
    ``modules`` says otherwise, batch of one, its formatting)."""

    modules: str | tuple | None = option(
        None, "all | attn | mlp | q_proj,k_proj,... | re:<regex>.  [default: all; with --paper: attn; --recipe oda: "
              "q_proj,k_proj,v_proj,o_proj]")
    layers: str | None = option(None, "Layers to measure: -1 (the last) | -4: (the last four) | 0,5,10 | 2:8 | "
                                "early|middle|late | 0.5: (fractions of depth). The backward runs only down to the "
                                "lowest of them.  [default: all; --recipe oda: -1]")
    paper: bool = option(False, "Reproduce the original script's choices.")
    recipe: str = option("layergrad", "oda: ODA-DataScorer's NuclearNorm/EffectiveRank recipes (instruction + ' ' + "
                         "output for the nuclear norm, + '\\n' + for the effective rank in a second pass, no template, "
                         "no end token, the instruction's tokens masked, the last layer's q/k/v/o, its effective "
                         "rank).", choices=RECIPES)
    batch_size: int | None = option(None, "Samples per batch.", neutral=True, positive=True)
    batch_tokens: int | None = option(None, "Padded tokens per batch (length-sorted).", neutral=True, positive=True)
    max_length: int | None = option(None, "Truncate samples to N tokens.  [default: 2048; paper 1024]", positive=True)
    route: str = option("auto", "Spectral route (reference: fp64 SVD of the materialised gradient).", choices=ROUTES)
    solver: str = option("auto", "Eigensolver: torch (its LAPACK), numpy (numpy's LAPACK), host (GPU stacks on the "
                         "CPU), cupy; auto = the fastest here, measured once per machine.", choices=SOLVERS, neutral=True)
    solve_per: str = option("auto", "One spectral problem per sample or per padded batch.  [default: batch on a GPU]",
                            choices=SPANS, neutral=True)
    threads: int | None = option(None, "CPU threads in all.  [default: affinity, cgroup quota, OMP_NUM_THREADS]",
                                 neutral=True, positive=True)
    spectrum: bool = option(False, "Also store every singular value.")
    cosine: bool = option(False, "Also the cosine of each gradient with the next layer's of the same kind "
                          "(cosine_next), of q with o and k with v (cosine_pair), and both with the next sample of "
                          "the batch instead (*_shuffled: what unrelated gradients show).")
    ifd: bool = option(False, "Also the IFD of every sample (one extra forward, no backward): columns loss_direct, "
                       "ifd in samples.parquet; with --paper the follow-up's exact recipe.")
    reinit: int | None = option(None, "Random-weights control: re-initialise the model by its own initialiser with "
                                "this seed first (the Python API works on a copy; the weights of the copy only).")
    append_eos: bool = option(True, "Do not train the end-of-turn token.", flag="--no-eos")
    system_prompt: str | None = option(None, "System prompt for chat templates.")

    def __post_init__(self):
        check_fields(self)

    def resolved(self) -> "ComputeOptions":
        """Modules chosen (explicit ones always win); paper mode: batch of one, q/k/v/o by default; the ODA
        recipe: q/k/v/o of the last layer, no end token, every singular value kept (its effective rank)."""
        modules = default_modules(self.modules, self.paper, self.recipe)
        if self.recipe == "oda":
            return replace(self, modules=modules, layers=self.layers or "-1", append_eos=False, spectrum=True)
        if not self.paper:
            return replace(self, modules=modules)
        return replace(self, modules=modules, batch_size=1, batch_tokens=None)

    def fingerprint(self) -> dict:
        """The options that determine the numbers, with the mode's default modules filled in."""
        return {**fingerprint(self), "modules": default_modules(self.modules, self.paper, self.recipe)}

    def to_dict(self) -> dict:
        return asdict(self)


def default_modules(modules, paper: bool, recipe: str = "layergrad"):
    """The modules to compute: the given ones, else all kinds (q/k/v/o in paper mode and the ODA recipe)."""
    if modules is None or modules == "":
        return "attn" if paper or recipe == "oda" else "all"
    return modules
