"""Fixed small runs against the tables the code before the house clean-up (1e103d3) wrote.

Each golden is split where the numbers change kind, so that every comparison has a tolerance that holds on
any CPU (tolerance.py says why each one is what it is):

- the engine: today's run of the same command against 1e103d3's ``stats.parquet`` / ``samples.parquet``
  (fp32 forward/backward: statistics to 1e-5 relative, near-zero quantities absolutely at their scale);
- the analysis: today's analysis *of 1e103d3's stored statistics* against 1e103d3's tables (float64 on
  identical inputs: 1e-9 of each column's scale). Analysing freshly computed statistics instead would hand
  the analysis inputs that moved by 1e-7, which a relative change of two nearly equal means turns into 1e-3.

tests/golden/tiny-1e103d3/: tiny-random-llama, built-in arithmetic, Detailed CoT correct and irrelevant and
None CoT, 4 each, --cosine --spectrum; analyze with 50 bootstrap draws.
tests/golden/reproduce-1e103d3/: ``reproduce --limit 3 --tasks gsm8k,wiki`` (now ``--head 3``: the first 3, as --limit took then) on tiny-random-llama; ``run/``
is 1e103d3's run (its prompts and responses replaced by their SHA-1, so no data is stored; the analysis pairs
samples by prompt equality only) and ``claims.csv`` 1e103d3's claims of it (both written by 1e103d3 on an
AMD EPYC, 2026-12-06).
The claims tables (the three ``claims.csv``) were renewed on 2026-12-07 (issue 41), deliberately, row by row:
H2 and H3b moved to the scale-free MAD (the MAD over the curve's mean): 12 verdicts from holds to inconclusive on
these tiny random models, whose raw MAD fell with the curve's level (H1) while its shape did not flatten; H7a/H7b
compare log-ratios per unit of log response length: 14 wiki verdicts from holds to inconclusive (the raw
|log-ratio| difference held only because None→Detailed is ~100x longer than 100→1000 words). Holm's p of the
other rows moved with them; the increment (increment.csv, and its words in the caveats) is now cross-validated
over 5 fold assignments for every metric's profile with baselines and profile penalised alike (no verdict moved).
Renewed again the same day for the one family of tests (randomization.py; columns ``test`` and ``z`` added): every
p is now a sign-flip or label-permutation p of the claim's own statistic (a bootstrap p for contrasts of different
cells or runs), never below the exact floor of its design. On these 2-4 samples a side that moved 64 verdicts, all
to inconclusive, none the other way: tiny H2 (6 modules + all; 4 vs 4 unpaired: floor 2/70, then Holm over 19),
reproduce H2 gsm8k q/gate/down (3 vs 3: floor 0.1), follow-up H2 gsm8k down_proj, F4 reasoning k/v/down (fails ->
inconclusive; 2-3 records: floor 0.2) and 47 F6 rows + 3 'all modules' (a mean cosine of 2-3 samples: TOST floor
0.25-0.5; the bootstrap's normal tail had given p = 0). Then the length columns (``adjusted``, ``adjusted_low``,
``adjusted_high``, ``rests_on``, ``effect_summed_loss``): on 2-4 samples no two conditions' lengths overlap, so
every verdict still rests on its raw effect (none moved). H5, H6 and H7c then moved to the net RD (the signed
differences averaged over layers before the magnitude; H5's four rows resampled together where they share
prompts): effects and CIs changed, no verdict moved. F1 and F2 then became a row per module and early / middle /
late layers (32 rows over all layers -> 88 per segment, all inconclusive before and after). Everything else in
them is still the earlier code's.

Renewed again on 2026-12-08 (issue 51): the 'confounded' verdict, the paired equal-length gate, studentized unpaired
tests, H2 on level-normalised rows, H5 on per-prompt gaps, 'all modules' rows that test the mean over the modules,
the increment refitted on prompt resamples (its CI, and the profile AUROC's folds), per-pair generators for the
separability bootstrap, predictive n_to_decide, stability over 20 halves, pooled.csv, per-layer differences in
curves.csv. Verdicts that moved, all from inconclusive to confounded (no holds or fails on these 2-4 samples a
side, whose lengths never overlap): tiny 16 (H1, H2, 8 each), reproduce 48 (H1, H2, H3a, H3b, H5, H7d, 8 each),
follow-up 128 (F1 44, F2 44, F3 16, F4 8, H1 8, H2 8); the follow-up gains 24 rows (the per-segment 'all modules'
rows of F1/F2 and F6's 'all modules' cosines). Then F4 at equal truncation: the stored follow-up run gained the
study's '<condition>@first256' conditions (each response's first 256 tokens; computed by tiny-random-llama on an AMD
EPYC, 2026-12-08, added to ``run/`` the same way, so the analysis still reads stored statistics), the claims 8 F4
rows of task 'first256' (all inconclusive on 2 samples a side) and F4's definition and effect words (the others it
was compared with); Holm's family grew by those rows, which moved n_to_decide of 47 rows (no verdict).

tests/golden/followup-1cf225c/: ``reproduce --study followup --limit 3 --tasks instag/mag,reward/wiz,reasoning,gsm8k``
on tiny-random-llama with the follow-up's data: ``run/`` and ``run-reinit/`` (texts as SHA-1, the records' own
fields left out) and the claims 1cf225c (the code before studies were data) wrote of them.
"""

import shutil
from pathlib import Path

import pandas as pd
import pytest

from layergrad.cli import main
from tolerance import assert_analysis_close, assert_stats_close

GOLDEN = Path(__file__).parent / "golden" / "tiny-1e103d3"
REPRODUCE = Path(__file__).parent / "golden" / "reproduce-1e103d3"
KEYS = {"stats": ["condition", "sample_id", "param"], "samples": ["condition", "sample_id"]}
ADDED = {"cosine_pair", "cosine_pair_shuffled", "cosine_next_shuffled"}  # engine columns added since 1e103d3 (same-layer
# cosines and their shuffled-pair reference, with --cosine)
ANALYZE = ["--bootstrap", "50", "--formats", "png", "-q",
           "--metrics", "nuclear_norm,sigma1_ratio,effective_rank,cosine_next"]  # 1e103d3's choice
FOLLOWUP = Path(__file__).parent / "golden" / "followup-1cf225c"
FOLLOWUP_ARGS = ["--study", "followup", "--model", "tiny-random-llama", "--bootstrap", "20", "--metrics",
                 "nuclear_norm,effective_rank", "--quiet", "--no-task-reports", "--head", "3",
                 "--tasks", "instag/mag,reward/wiz,reasoning,gsm8k"]
REPRODUCE_ARGS = ["--model", "tiny-random-llama", "--bootstrap", "20", "--metrics", "nuclear_norm", "--quiet",
                  "--head", "3", "--tasks", "gsm8k,wiki", "--no-task-reports"]


def table(folder: Path, name: str) -> pd.DataFrame:
    return pd.read_parquet(folder / f"{name}.parquet").sort_values(KEYS[name]).reset_index(drop=True)


def test_stats_and_samples_equal_the_earlier_code(tmp_path):
    out = tmp_path / "tiny"
    assert main(["compute", "--model", "tiny-random-llama", "-q", "--cosine", "--spectrum",
                 "--data", "detailed=builtin:arith/detailed?n=4",
                 "--data", "detailed@irrelevant=builtin:arith/detailed@irrelevant?n=4",
                 "--data", "none=builtin:arith/none?n=4", "--out", str(out)]) == 0
    for name in KEYS:
        assert_stats_close(table(out, name), table(GOLDEN, name), ignore=ADDED)


@pytest.fixture(scope="module")
def analysis_of_the_stored_run(tmp_path_factory):
    run = tmp_path_factory.mktemp("golden") / "stored"
    run.mkdir()
    for name in KEYS:
        shutil.copy(GOLDEN / f"{name}.parquet", run)
    shutil.copy(GOLDEN / "run.json", run)  # the run's sources: what its conditions are (their attributes)
    assert main(["analyze", str(run), "--out", str(run / "analysis"), *ANALYZE]) == 0
    return run / "analysis"


@pytest.mark.parametrize("name", sorted(p.stem for p in (GOLDEN / "analysis").glob("*.csv")))
def test_analysis_tables_equal_the_earlier_code(analysis_of_the_stored_run, name):
    got = pd.read_csv(analysis_of_the_stored_run / f"{name}.csv")
    assert_analysis_close(got, pd.read_csv(GOLDEN / "analysis" / f"{name}.csv"), name)


def stored_runs(golden: Path, out: Path, runs=("run",)) -> Path:
    """The stored tables of a golden as the runs' one committed chunk each: a resume finds every sample done."""
    for run in runs:
        (out / run / "chunks").mkdir(parents=True)
        for name in KEYS:
            shutil.copy(golden / run / f"{name}.parquet", out / run / "chunks" / f"00000.{name}.parquet")
    return out


def test_reproduce_analysis_of_the_stored_run_gives_the_earlier_claims(paper_data, tmp_path):
    """`layergrad reproduce` without --study on 1e103d3's run: it computes nothing and writes its claims."""
    out = stored_runs(REPRODUCE, tmp_path / "repro")
    assert main(["reproduce", *REPRODUCE_ARGS, "--paper-data", paper_data, "--out", str(out)]) == 0
    assert_analysis_close(pd.read_csv(out / "claims.csv"),
                          pd.read_csv(REPRODUCE / "claims.csv"), "claims")


def test_followup_analysis_of_the_stored_runs_gives_the_earlier_claims(paper_data, followup_data, tmp_path):
    """`reproduce --study followup` on the stored run and its random-weights control: the same claims."""
    out = stored_runs(FOLLOWUP, tmp_path / "fu", ("run", "run-reinit"))
    assert main(["reproduce", *FOLLOWUP_ARGS, "--followup-data", str(followup_data), "--paper-data", paper_data,
                 "--out", str(out)]) == 0
    assert_analysis_close(pd.read_csv(out / "claims.csv"),
                          pd.read_csv(FOLLOWUP / "claims.csv"), "claims")


def test_reproduce_computes_the_earlier_run(paper_data, tmp_path):
    out = tmp_path / "repro"
    assert main(["reproduce", *REPRODUCE_ARGS, "--paper-data", paper_data, "--out", str(out)]) == 0
    want_samples = table(REPRODUCE / "run", "samples").drop(columns=["prompt", "response"])
    assert_stats_close(table(out / "run", "samples").drop(columns=["prompt", "response"]), want_samples)
    assert_stats_close(table(out / "run", "stats"), table(REPRODUCE / "run", "stats"))
