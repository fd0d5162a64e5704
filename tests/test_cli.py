"""The CLI contract: outputs, one-line errors with exit codes, resume after SIGKILL."""

import json
import time

import pandas as pd
import pytest

from layergrad.cli import main

TINY = ["--model", "tiny-random-llama", "--quiet"]


def run_cli(*args, capsys):
    code = main(list(args))
    err = capsys.readouterr().err.strip()
    return code, err


def test_compute_writes_the_documented_tables(tmp_path, capsys):
    out = tmp_path / "run"
    code, _ = run_cli("compute", *TINY, "--data", "a=builtin:arith/none?n=3", "--data",
                      "b=builtin:arith/simplified?n=3", "--out", str(out), capsys=capsys)
    assert code == 0
    stats = pd.read_parquet(out / "stats.parquet")
    samples = pd.read_parquet(out / "samples.parquet")
    for col in ("sample_id", "condition", "layer", "module", "param", "nuclear_norm", "sigma_max", "sigma1_ratio",
                "frobenius_norm", "effective_rank", "stable_rank", "rank_bound"):
        assert col in stats.columns
    for col in ("sample_id", "condition", "source_index", "loss", "n_tokens", "n_prompt_tokens",
                "n_response_tokens", "truncated", "status", "reason"):
        assert col in samples.columns
    assert len(stats) == 6 * 4 * 7 and set(samples.condition) == {"a", "b"}
    assert (out / "run.json").exists() and (out / "config.yaml").exists()


@pytest.mark.parametrize("args,needle", [
    (["--data", "a=/no/such/file.json"], "data file not found"),
    (["--data", "a=builtin:arith/none?n=2", "--model", "tiny-random-lama"], "Did you mean 'tiny-random-llama'"),
    (["--data", "a=builtin:arith/none?n=2", "--route", "fast"], "Invalid value for '--route'"),
    (["--data", "a=builtin:arith/bogus"], "unknown built-in source"),
])
def test_bad_input_is_one_line_exit_2(tmp_path, capsys, args, needle):
    code, err = run_cli("compute", *TINY, "--out", str(tmp_path / "r"), *args, capsys=capsys)
    assert code == 2 and needle in err and len(err.splitlines()) == 1 and "Traceback" not in err


def test_bad_files_and_directories(tmp_path, capsys):
    bad_yaml = tmp_path / "run.yaml"
    bad_yaml.write_text("model: [unclosed\n")
    code, err = run_cli("compute", "--config", str(bad_yaml), capsys=capsys)
    assert code == 2 and "malformed YAML" in err
    empty = tmp_path / "empty.json"
    empty.write_text("[]")
    code, err = run_cli("compute", *TINY, "--data", f"a={empty}", "--out", str(tmp_path / "r"), capsys=capsys)
    assert code == 2 and "no samples" in err
    blocker = tmp_path / "file"
    blocker.write_text("x")
    code, err = run_cli("compute", *TINY, "--data", "a=builtin:arith/none?n=2", "--out", str(blocker / "sub"),
                        capsys=capsys)
    assert code == 2 and "cannot create run directory" in err


@pytest.mark.parametrize("modules,kinds", [(None, 4), ("all", 7), ("mlp", 3)])
def test_explicit_modules_win_over_paper_mode(tmp_path, capsys, modules, kinds):
    out = tmp_path / "r"
    extra = ["--modules", modules] if modules else []
    assert run_cli("compute", *TINY, "--paper", *extra, "--data", "a=builtin:arith/none?n=2", "--out", str(out),
                   capsys=capsys)[0] == 0
    assert pd.read_parquet(out / "stats.parquet").module.nunique() == kinds
    replay = tmp_path / "replay"  # config.yaml keeps "not given" apart from "all"
    assert run_cli("compute", "--config", str(out / "config.yaml"), "--out", str(replay), capsys=capsys)[0] == 0
    assert pd.read_parquet(replay / "stats.parquet").module.nunique() == kinds


def test_explicit_modules_win_over_paper_mode_in_python(tiny):
    import layergrad

    samples = layergrad.load_samples("builtin:arith/none?n=1")
    assert layergrad.compute(tiny(), samples, paper=True).module.nunique() == 4
    assert layergrad.compute(tiny(), samples, paper=True, modules="all").module.nunique() == 7
    assert layergrad.compute(tiny(), samples).module.nunique() == 7


@pytest.fixture
def no_forward(monkeypatch):
    """Any forward pass (or, with ``no_model``, any model load) fails the test."""
    from layergrad.engine import compute
    from layergrad.runs import runner

    def forbidden(*args, **kwargs):
        raise AssertionError("a forward pass ran")

    monkeypatch.setattr(compute, "run_batch", forbidden)
    return lambda: monkeypatch.setattr(runner, "load_model", forbidden)


@pytest.mark.parametrize("records,needle", [
    ([{"instruction": "a"}], "1x record lacks text field(s) output; first: record 0 lacks"),
    ([{"instruction": "a", "output": " "}, {"instruction": "b", "output": ""}], "2x record has an empty response"),
])
def test_a_condition_without_usable_samples_fails_before_loading_the_model(tmp_path, capsys, no_forward, records,
                                                                          needle):
    no_forward()
    (tmp_path / "bad.json").write_text(json.dumps(records))
    code, err = run_cli("compute", *TINY, "--data", "good=builtin:arith/none?n=2", "--data",
                        f"x={tmp_path / 'bad.json'}", "--out", str(tmp_path / "r"), capsys=capsys)
    assert code == 2 and len(err.splitlines()) == 1 and "Traceback" not in err
    assert f"condition 'x': none of its {len(records)} samples can be computed" in err and needle in err
    assert not (tmp_path / "r" / "stats.parquet").exists()


def test_a_condition_whose_prompts_fill_the_budget_fails_before_any_forward_pass(tmp_path, capsys, no_forward):
    (tmp_path / "long.json").write_text(json.dumps([{"instruction": "word " * 300, "output": "yes"}] * 1))
    code, err = run_cli("compute", *TINY, "--max-length", "64", "--data", f"long={tmp_path / 'long.json'}",
                        "--out", str(tmp_path / "r"), capsys=capsys)
    assert code == 2 and len(err.splitlines()) == 1
    assert "condition 'long': none of its 1 samples" in err and "no response tokens after truncation" in err


def test_compute_says_what_it_did(tmp_path, capsys):
    rows = [{"instruction": "What is 1+1?", "output": "2"}, {"instruction": "Empty?", "output": " "},
            {"instruction": "Also empty?", "output": ""}, {"instruction": "No output"}]
    (tmp_path / "mixed.json").write_text(json.dumps(rows))
    args = ["compute", "--model", "tiny-random-llama", "--data", "a=builtin:arith/none?n=3", "--data",
            f"mixed={tmp_path / 'mixed.json'}", "--out", str(tmp_path / "r")]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "Samples per condition" in out and "Mean nuclear norm" in out and "MAD" in out
    counts = out.split("Mean nuclear norm")[0]
    cells = {line.split("│")[1].strip(): [c.strip() for c in line.split("│")[2:6]]
             for line in counts.splitlines() if line.count("│") > 3 and line.split("│")[1].strip()}
    assert cells["a"][:3] == ["3", "0", "0"] and cells["mixed"][:3] == ["1", "3", "0"]
    assert "2× record has an empty response" in counts and "1× record lacks text field(s) output" in counts
    assert main(args[:1] + ["--quiet"] + args[1:-1] + [str(tmp_path / "q")]) == 0
    captured = capsys.readouterr()  # --quiet: no progress, no table; the samples not computed still said
    assert captured.out == "" and captured.err.startswith("note: 3 of 7 samples not computed")
    assert len(captured.err.splitlines()) == 1


def test_first_use_of_an_alias_converts_once_when_two_processes_ask(tmp_path, monkeypatch):
    """Two loads of an alias at once (e.g. two torchrun ranks, two test workers) on a fresh cache:
    one converts, the other waits for the lock and finds the finished copy."""
    import threading

    from layergrad import models

    monkeypatch.setenv("LAYERGRAD_CACHE", str(tmp_path))
    calls = []

    def slow_convert(name, out, log=print):
        calls.append(name)
        time.sleep(0.5)
        tmp = out.with_name(out.name + ".tmp")
        tmp.mkdir()
        (tmp / "config.json").write_text("{}")
        tmp.rename(out)
        return out

    monkeypatch.setattr(models, "convert_alias", slow_convert)
    found = []
    workers = [threading.Thread(target=lambda: found.append(models.converted_alias("smollm2-135m-instruct")))
               for _ in range(2)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    assert calls == ["smollm2-135m-instruct"] and found == [tmp_path / "models" / "smollm2-135m-instruct"] * 2


def test_a_missing_model_folder_and_an_unknown_hub_id_say_so_in_one_line_quickly(tmp_path, capsys):
    """A path that does not exist is named as a missing folder (not a malformed hub id); a hub id that is neither in
    the local cache nor to be had fails in one line after one short request (not transformers' minute of retries)."""
    import time

    data = f"a={tmp_path / 'd.jsonl'}"
    (tmp_path / "d.jsonl").write_text('{"instruction": "a", "output": "b"}\n')
    code, err = run_cli("compute", "--data", data, "--model", "./no/such/folder", "--out", str(tmp_path / "r"),
                        capsys=capsys)
    assert code == 2 and err.strip() == ("error: model folder not found: ./no/such/folder (pass an existing checkpoint "
                                         "folder, a .gguf file, an alias or a hub id org/name)")
    start = time.perf_counter()
    code, err = run_cli("compute", "--data", data, "--model", "no-such-org-x7/no-such-model-x7", "--out",
                        str(tmp_path / "r2"), capsys=capsys)
    assert code == 2 and len(err.splitlines()) == 1 and "Traceback" not in err
    assert "no model 'no-such-org-x7/no-such-model-x7' on the hub" in err or "cannot reach the hub" in err
    assert time.perf_counter() - start < 30


@pytest.mark.parametrize("content,needle", [("", "no records to score"), ('{"instruction": "a", "output": "b"}\n{broken\n',
                                                                           "line 2 is not valid JSON")])
def test_score_checks_its_input_before_the_model_loads(tmp_path, capsys, no_forward, content, needle):
    """Nothing to score is exit 2 with one line, as compute's; a broken line is found before the model loads."""
    no_forward()  # loading the model would fail the test
    path = tmp_path / "data.jsonl"
    path.write_text(content)
    code, err = run_cli("score", str(path), *TINY, "--out", str(tmp_path / "o"), capsys=capsys)
    assert code == 2 and needle in err and len(err.splitlines()) == 1


def test_records_of_other_fields_are_told_how_to_map_them(tmp_path, capsys):
    """The error that asks for a mapping shows its syntax, which works for JSONL as for tables."""
    path = tmp_path / "odd.jsonl"
    path.write_text('{"question": "What is 2+2?", "answer": "4"}\n{"question": "What is 3+3?", "answer": "6"}\n')
    code, err = run_cli("compute", *TINY, "--data", f"x={path}", "--out", str(tmp_path / "r"), capsys=capsys)
    assert code == 2 and "'file.jsonl?prompt=<field>&response=<field>'" in err and len(err.splitlines()) == 1
    code, _ = run_cli("compute", *TINY, "--data", f"x={path}?prompt=question&response=answer", "--out",
                      str(tmp_path / "r2"), capsys=capsys)
    assert code == 0


def test_a_skipped_sample_is_said_even_with_quiet(tmp_path, capsys):
    path = tmp_path / "d.jsonl"
    path.write_text('{"instruction": "a", "output": "b"}\n{"instruction": "c", "output": ""}\n')
    code, err = run_cli("compute", *TINY, "--data", f"x={path}", "--out", str(tmp_path / "r"), "-q", capsys=capsys)
    assert code == 0 and err.strip() == ("note: 1 of 2 samples not computed (most often: record 1 has an empty "
                                         "response); samples.parquet names each one's reason")
