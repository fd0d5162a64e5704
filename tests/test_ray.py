"""The Ray Data stage (layergrad.integrations.ray) against ``layergrad score``: the same records, the same
numbers and columns row for row, a reason for every record not scored, the length residual and the selection
by Ray Data's own aggregates and sort, and ``score --engine ray`` end to end. Ray is an optional extra: the core
never imports it."""

import json
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from layergrad.cli import main
from layergrad.errors import InputError
from layergrad.integrations import ray as stage
from layergrad.scoring import score
from test_scoring import records
from tolerance import SPECTRUM_ATOL, STAT_RTOL, assert_within

TEXT = ("lg_status", "lg_reason", "lg_sample_id", "lg_ifd_note")


def indexed(n: int) -> list[dict]:
    """Records with their index, two that have no response token (empty, whitespace only)."""
    rows = [{**r, "idx": i} for i, r in enumerate(records(n))]
    for i, empty in ((7, ""), (11, "   ")):
        if i < n:
            rows[i]["output"] = empty
    return rows


def write_jsonl(path, rows) -> str:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return str(path)


def assert_same_scores(got: pd.DataFrame, want: pd.DataFrame) -> None:
    """Every lg_ column of ``want`` in ``got``, row for row: numbers to 1e-5 relative (tolerance.py; the actors'
    one thread against this process's several), a mean σ_min at 1e-6 of the mean σ1 (it can be rounding noise
    near 0), text equal."""
    for column in (c for c in want.columns if c.startswith("lg_")):
        a, b = got[column].to_numpy(), want[column].to_numpy()
        if column in TEXT:
            assert [x or None for x in a] == [x or None for x in b], column
        elif column.startswith("lg_sigma_min"):
            scale = want[column.replace("sigma_min", "sigma_max")].to_numpy(dtype=float)
            assert_within(a.astype(float), b.astype(float), SPECTRUM_ATOL * np.nan_to_num(scale), column)
        else:
            np.testing.assert_allclose(a.astype(float), b.astype(float), rtol=STAT_RTOL, atol=0, err_msg=column)


@pytest.fixture(scope="module")
def ray_local():
    ray = pytest.importorskip("ray")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    ray.data.DataContext.get_current().enable_progress_bars = False
    yield ray
    ray.shutdown()


@pytest.fixture(scope="module")
def scored(ray_local, tmp_path_factory):
    """200 tiny-model records, 4 blocks, 2 actors, pandas batches of 16; and layergrad score's result."""
    folder = tmp_path_factory.mktemp("ray")
    rows = indexed(200)
    local = score(write_jsonl(folder / "data.jsonl", rows), folder / "local", model="tiny-random-llama",
                  log=lambda *a: None)
    ds = ray_local.data.from_items(rows, override_num_blocks=4)
    out = ds.map_batches(stage.GradientScorer, fn_constructor_kwargs={"model": "tiny-random-llama",
                                                                       "index_column": "idx"},
                         batch_size=16, batch_format="pandas",
                         compute=ray_local.data.ActorPoolStrategy(size=2)).materialize()
    return out, local, folder


@pytest.mark.slow
def test_the_stage_equals_layergrad_score_row_for_row(scored):
    out, local, _ = scored
    got = out.to_pandas().sort_values("idx").reset_index(drop=True)
    assert len(got) == 200 and got.idx.tolist() == list(range(200))
    assert {c for c in got.columns if c.startswith("lg_")} == {c for c in local.columns if c.startswith("lg_")}
    assert_same_scores(got, local)
    for i in (7, 11):  # no response token: kept, with the reason layergrad score gives
        assert got.loc[i, "lg_status"] == "skipped" and got.loc[i, "lg_reason"]
        assert pd.isna(got.loc[i, "lg_nuclear_norm"])
    assert (got.drop(index=[7, 11]).lg_status == "ok").all()


@pytest.mark.slow
def test_the_length_residual_and_the_selection_equal_the_local_ones(scored):
    out, _, folder = scored
    local = score(str(folder / "data.jsonl"), folder / "local", model="tiny-random-llama", log=lambda *a: None,
                  by="effective_rank", residualize="length", top=10)
    column = "lg_effective_rank_given_length"
    residual = stage.residualize_length(out, "lg_effective_rank").materialize()
    got = residual.to_pandas().sort_values("idx").reset_index(drop=True)
    scale = np.nanstd(local[column])
    np.testing.assert_allclose(got[column], local[column], rtol=0, atol=1e-9 * scale)
    top = stage.select(residual, column, top=10).to_pandas()
    want = [json.loads(line)["idx"] for line in (folder / "local" / f"top-10-{column[3:]}.jsonl").open()]
    assert sorted(top.idx) == want
    bottom = stage.select(residual, column, bottom=0.05).to_pandas()  # 5% of the 198 scored
    scored = got[got.lg_status == "ok"].sort_values([column, "lg_sample_id"])
    assert sorted(bottom.idx) == sorted(scored.idx[:10])
    with pytest.raises(InputError, match="no column lg_nope"):
        stage.select(out, "lg_nope", top=3)


def test_a_record_that_fails_keeps_its_row_with_the_error_as_its_reason(monkeypatch):
    """An engine error inside a batch: the batch is scored record by record; the failing record keeps its row,
    status 'failed' and the error; the others equal a batch without it."""
    real = stage.score_batch

    def failing(m, batch, options, fields=None):
        if any("boom" in r["instruction"] for _, r in batch):
            raise RuntimeError("kernel exploded")
        return real(m, batch, options, fields)

    rows = indexed(5)
    rows[2]["instruction"] = "boom"
    scorer = stage.GradientScorer("tiny-random-llama", index_column="idx", layers="-1", log=lambda *a: None)
    clean = scorer(pd.DataFrame(rows))
    monkeypatch.setattr(stage, "score_batch", failing)
    got = scorer(pd.DataFrame(rows))
    assert got.lg_status.tolist() == ["ok", "ok", "failed", "ok", "ok"]
    assert got.lg_reason[2] == "RuntimeError: kernel exploded" and np.isnan(got.lg_nuclear_norm[2])
    keep = [0, 1, 3, 4]
    assert_same_scores(got.iloc[keep].reset_index(drop=True), clean.iloc[keep].reset_index(drop=True))
    assert list(got.columns) == list(clean.columns)


def test_pyarrow_batches_get_the_same_columns_and_types(tiny):
    pa = pytest.importorskip("pyarrow")
    rows = indexed(4)
    scorer = stage.GradientScorer("tiny-random-llama", layers="-1", log=lambda *a: None)
    table = scorer(pa.Table.from_pylist(rows))
    frame = scorer(pd.DataFrame(rows))
    assert table.column_names == list(frame.columns)
    assert table.schema.field("lg_reason").type == pa.string() and table.schema.field("lg_loss").type == pa.float64()
    assert_same_scores(table.to_pandas(), frame)
    assert "@" not in table.column("lg_sample_id")[0].as_py()  # no index column: the content hash alone


def test_a_stage_refuses_a_whole_runs_options():
    with pytest.raises(InputError, match="limit: a whole run's option"):
        stage.GradientScorer("tiny-random-llama", limit=5)


@pytest.mark.slow
def test_score_engine_ray_end_to_end_readable_by_datasets_and_pandas(ray_local, tmp_path, capsys):
    datasets = pytest.importorskip("datasets")
    data = write_jsonl(tmp_path / "data.jsonl", indexed(40))
    common = ["score", data, "--model", "tiny-random-llama", "--layers", "-1", "--top", "5", "--by", "nuclear_norm",
              "-q"]
    assert main([*common, "--out", str(tmp_path / "local")]) == 0
    assert main([*common, "--out", str(tmp_path / "ray"), "--engine", "ray", "--concurrency", "2",
                 "--window", "8"]) == 0
    want = pd.read_parquet(tmp_path / "local" / "scored.parquet")
    got = pd.read_parquet(tmp_path / "ray" / "scored.parquet")  # a folder of part files, in input order
    assert got.idx.tolist() == list(range(40))
    # no index column: the id is the content hash alone and a reason names no position
    unnumbered = want.assign(lg_sample_id=want.lg_sample_id.str.split("@").str[0],
                             lg_reason=want.lg_reason.str.replace(r"^record \d+", "the record", regex=True))
    assert_same_scores(got, unnumbered)
    assert got.lg_reason[7] == "the record has an empty response"
    parts = sorted(str(p) for p in (tmp_path / "ray" / "scored.jsonl").glob("*.json"))
    read = datasets.load_dataset("json", data_files=parts, split="train")
    assert read.num_rows == 40 and read["lg_status"].count("skipped") == 2
    top = [json.loads(line) for p in sorted((tmp_path / "ray" / "top-5-nuclear_norm.jsonl").glob("*.json"))
           for line in open(p)]
    local_top = [json.loads(line) for line in open(tmp_path / "local" / "top-5-nuclear_norm.jsonl")]
    assert sorted(r["idx"] for r in top) == [r["idx"] for r in local_top]
    assert all(not k.startswith("lg_") for r in top for k in r)  # the records unchanged
    manifest = json.loads((tmp_path / "ray" / "ray.json").read_text())
    assert manifest["records"] == {"ok": 38, "skipped": 2}
    assert manifest["coverage"] == json.loads((tmp_path / "local" / "run" / "run.json").read_text())["coverage"]
    assert main([*common, "--out", str(tmp_path / "ray"), "--engine", "ray"]) == 2  # an earlier result: refused
    assert "--overwrite" in capsys.readouterr().err


def test_the_ray_options_belong_to_the_ray_engine(tmp_path, capsys):
    assert main(["score", "x.jsonl", "--out", str(tmp_path), "--concurrency", "2"]) == 2
    assert "only with --engine ray" in capsys.readouterr().err


def test_without_ray_the_engine_says_how_to_install_it(monkeypatch, tmp_path, capsys):
    monkeypatch.setitem(sys.modules, "ray", None)  # as if not installed: import ray raises ImportError
    assert main(["score", "x.jsonl", "--out", str(tmp_path), "--engine", "ray"]) == 2
    assert "pip install 'layergrad[ray]'" in capsys.readouterr().err


def test_the_core_never_imports_ray():
    code = ("import sys, layergrad, layergrad.cli, layergrad.scoring, layergrad.analysis.analyze\n"
            "from layergrad.cli import main\n"
            "main(['score', '--help'])\n"
            "assert not any(m == 'ray' or m.startswith('ray.') for m in sys.modules), 'ray imported'\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


@pytest.mark.integration
def test_smollm2_on_eight_real_records_equals_layergrad_score(ray_local, followup_data, tmp_path):
    """The eight shortest of the follow-up's Magpie records (its InsTag high subset), SmolLM2's last layer, all
    seven kinds: two actors, four records a batch, equal to layergrad score to 1e-5."""
    rows = json.loads((followup_data / "instag" / "mag_10k_highest_200.json").read_text())
    rows = sorted(rows, key=lambda r: len(r["instruction"]) + len(r["output"]))[:8]
    rows = [{**r, "idx": i} for i, r in enumerate(rows)]
    local = score(write_jsonl(tmp_path / "data.jsonl", rows), tmp_path / "local", model="smollm2-135m-instruct",
                  layers="-1", log=lambda *a: None)
    ds = ray_local.data.from_items(rows, override_num_blocks=2)
    out = ds.map_batches(stage.GradientScorer, fn_constructor_kwargs={"model": "smollm2-135m-instruct", "layers": "-1",
                                                                       "index_column": "idx"},
                         batch_size=4, batch_format="pyarrow", compute=ray_local.data.ActorPoolStrategy(size=2))
    got = out.to_pandas().sort_values("idx").reset_index(drop=True)
    assert (local.lg_status == "ok").all() and len(got) == 8
    assert_same_scores(got, local)
