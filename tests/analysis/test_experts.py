"""A MoE run end to end: the run stores each expert's rows and the layers' summaries; analyze reads the summaries
like any kind, shows the single experts apart (experts.csv, the experts figure, the report), and every mean over
modules leaves single experts out."""

import json

import pandas as pd
import pytest

import layergrad
from layergrad.analysis.summary import summary_table
from layergrad.runs.config import RunConfig
from layergrad.runs.runner import run
from layergrad.schema import expert_rows, layer_rows


@pytest.fixture(scope="module")
def moe_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "moe"
    data = {"none": "builtin:arith/none?n=6", "detailed": "builtin:arith/detailed?n=6"}
    return run(RunConfig.build(model="tiny-random-mixtral", data=data, out=str(out), quiet=True))


def test_the_run_stores_experts_summaries_and_its_coverage(moe_run):
    stats = pd.read_parquet(moe_run / "stats.parquet")
    single = expert_rows(stats)
    assert set(single.module) == {"expert.gate_up_proj", "expert.down_proj"}
    assert sorted(single.expert.unique()) == list(range(8))
    per_sample = single.groupby(["sample_id", "layer", "module"]).size()
    assert (per_sample == 8).all()  # every expert recorded, routed or not
    unrouted = single[single.routed_tokens == 0]
    assert unrouted.nuclear_norm.isna().all() and (unrouted.route == "not routed").all()
    summaries = layer_rows(stats)[lambda f: f.module.str.startswith("experts.")]
    merged = summaries.merge(single.groupby(["sample_id", "layer", "module"], as_index=False).agg(
        total=("nuclear_norm", "sum"), tokens=("routed_tokens", "sum")).assign(
        module=lambda f: f.module.str.replace("expert.", "experts.")), on=["sample_id", "layer", "module"])
    assert len(merged) == len(summaries) > 0
    assert ((merged.nuclear_norm - merged.total).abs() <= 1e-6 * merged.total).all()  # the union's: the sum
    assert (merged.routed_tokens == merged.tokens).all()
    coverage = json.loads((moe_run / "run.json").read_text())["coverage"]
    assert coverage["measured"] == coverage["matrices"] == 4 * (4 + 2 * 8 + 1)


def test_analyze_shows_the_experts_apart(moe_run, tmp_path):
    a = layergrad.analyze(moe_run, tmp_path / "analysis", n_boot=50, log=lambda *_: None)
    assert not a.curves.module.str.startswith("expert.").any()  # curves read the layers' summaries
    assert {"experts.gate_up_proj", "experts.down_proj", "router"} <= set(a.curves.module)
    shares = a.experts.groupby(["group", "layer", "module"])[["token_share", "load"]].sum()
    assert ((shares - 1).abs() < 1e-9).all().all()  # per sample the shares of a layer's experts sum to 1
    assert (a.experts.routed_samples <= a.experts.samples).all()
    assert ("experts", "") in a.figure_list()
    assert (tmp_path / "analysis" / "experts.csv").exists()
    assert (tmp_path / "analysis" / "figures" / "experts.png").exists()
    html = (tmp_path / "analysis" / "report.html").read_text()
    assert "This model routes tokens to experts (8 per layer in 4 layers)" in html and 'alt="experts"' in html


def test_means_over_modules_leave_single_experts_out(moe_run):
    stats = pd.read_parquet(moe_run / "stats.parquet")
    assert summary_table(stats) == summary_table(layer_rows(stats))


def test_a_dense_run_has_no_expert_columns(tiny):
    frame = layergrad.compute(tiny("tiny-random-llama"), layergrad.load_samples("builtin:arith/none?n=1"))
    assert "expert" not in frame.columns and expert_rows(frame).empty and len(layer_rows(frame)) == len(frame)
