"""Data formats round-trip, paper sources, condition builders, response masks, bad input."""

import json
import random

import pandas as pd
import pytest

import layergrad
from layergrad.cli import main
from layergrad.data.conditions import final_answer, make_irrelevant
from layergrad.data.formatting import Formatter
from layergrad.data.samples import load_samples
from layergrad.engine.batching import Item, pad_batch
from layergrad.errors import InputError
from layergrad.tiny import tiny_tokenizer

PAIRS = [("What is 2+3?", "5"), ("Name a colour.", "Red, like a \"rose\".\nThat is all."),
         ("Ünïcödé ✓ prompt", "  leading spaces and émojis 🙂")]


def write_formats(tmp_path):
    alpaca = [{"instruction": p, "input": "", "output": r} for p, r in PAIRS]
    files = {
        "alpaca.json": json.dumps(alpaca),
        "alpaca.jsonl": "\n".join(json.dumps(r) for r in alpaca),
        "pc.jsonl": "\n".join(json.dumps({"prompt": p, "completion": r}) for p, r in PAIRS),
        "pc_chat.jsonl": "\n".join(json.dumps({"prompt": [{"role": "user", "content": p}],
                                               "completion": [{"role": "assistant", "content": r}]}) for p, r in PAIRS),
        "messages.jsonl": "\n".join(json.dumps({"messages": [{"role": "user", "content": p},
                                                             {"role": "assistant", "content": r}]}) for p, r in PAIRS),
    }
    for name, text in files.items():
        (tmp_path / name).write_text(text, encoding="utf-8")
    table = pd.DataFrame({"question": [p for p, _ in PAIRS], "answer": [r for _, r in PAIRS]})
    table.to_csv(tmp_path / "table.csv", index=False)
    table.to_parquet(tmp_path / "table.parquet", index=False)
    return list(files) + ["table.csv?prompt=question&response=answer", "table.parquet?prompt=question&response=answer"]


def test_every_format_round_trips_to_the_same_samples(tmp_path):
    sources = write_formats(tmp_path)
    expected = None
    for source in sources:
        samples = load_samples(str(tmp_path / source))
        got = [(s.prompt, s.response, s.source_index, s.sample_id) for s in samples]
        assert [(p, r) for p, r, _, _ in got] == PAIRS, source
        assert [i for _, _, i, _ in got] == [0, 1, 2]
        expected = expected or got
        assert got == expected, f"{source}: same content must give the same sample_id"


def test_messages_keep_earlier_turns_as_context(tmp_path):
    rec = {"messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"},
                        {"role": "assistant", "content": "Hello"}, {"role": "user", "content": "2+2?"},
                        {"role": "assistant", "content": "4"}]}
    (tmp_path / "m.jsonl").write_text(json.dumps(rec))
    [s] = load_samples(str(tmp_path / "m.jsonl"))
    assert (s.prompt, s.response) == ("2+2?", "4")
    assert s.context == (("system", "Be brief."), ("user", "Hi"), ("assistant", "Hello"))


def test_paper_sources_resolve_against_the_shared_folder(paper_data):
    none = load_samples("paper:gsm8k/none", paper_data=paper_data)
    irrelevant = load_samples("paper:gsm8k/none@irrelevant", paper_data=paper_data)
    assert len(none) == 500 and [s.prompt for s in none] == [s.prompt for s in irrelevant]
    for name in ("aqua/detailed", "strategyqa/simplified", "math-geometry/detailed", "wiki/popular-500",
                 "wiki/unpopular", "creak/none@irrelevant"):
        assert load_samples(f"paper:{name}", limit=3, strict=False, paper_data=paper_data)
    with pytest.raises(InputError, match="Did you mean"):
        load_samples("paper:gsm8k/detialed", paper_data=paper_data)


@pytest.mark.parametrize("task", ["strategyqa", "creak", "sensemaking"])
def test_irrelevant_answers_never_equal_the_correct_one(paper_data, task, tmp_path):
    samples = load_samples(f"paper:{task}/none", paper_data=paper_data, strict=False)
    paper_irr = load_samples(f"paper:{task}/none@irrelevant", paper_data=paper_data, strict=False)
    paper_equal = sum(a.response.strip() == b.response.strip() for a, b in zip(samples, paper_irr))
    assert paper_equal > 200  # the paper's files: about half
    out = tmp_path / "irr.json"
    assert main(["data", "irrelevant", "--in", f"paper:{task}/none", "--out", str(out), "--mode", "answer",
                 "--paper-data", paper_data]) == 0
    ours = json.loads(out.read_text())
    assert len(ours) == len(samples)
    assert sum(s.response.strip() == r["output"].strip() for s, r in zip(samples, ours)) == 0


def test_sentences_mode_changes_every_final_answer(paper_data):
    samples = load_samples("paper:gsm8k/detailed", paper_data=paper_data, strict=False)
    records = [{"instruction": s.prompt, "input": "", "output": s.response} for s in samples]
    result = make_irrelevant(records, mode="sentences", seed=3)
    assert all(final_answer(a["output"]) != final_answer(b["output"]) for a, b in zip(records, result))
    assert all(a["output"] != b["output"] for a, b in zip(records, result))


# ----------------------------------------------------------------------------- masks

DATED_TEMPLATE = ("{{ bos_token }}Today is 26 Nov 2026.\n{% for m in messages %}<|im_start|>{{ m.role }}\n"
                  "{{ m.content }}<|im_end|>\n{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n"
                  "{% endif %}")


def check_mask(fmt: Formatter, tok, prompt: str, response: str):
    sample = layergrad.Sample(prompt, response)
    enc = fmt.encode(sample)
    ids = list(enc.input_ids)
    rendered = fmt.render_prompt(sample)
    assert tok.decode(ids[:enc.n_prompt]) == rendered
    end = fmt._end_of_turn
    assert tok.decode(ids[enc.n_prompt:]) == response + end
    _, _, targets = pad_batch([Item("c", sample, enc)], 0, "cpu")
    predicted = [ids[j + 1] for j in range(len(ids) - 1) if targets[0, j]]
    assert predicted == ids[enc.n_prompt:]
    if tok.bos_token_id is not None:
        assert ids.count(tok.bos_token_id) <= 1
    return enc


@pytest.mark.parametrize("prompt,response", [
    ("What is 2+3?", " 5"), ("What is 2+3?", "\n\n5"), ("Finish the list:", ", and so on."),
    ("Line one\n", "line two"), ("Ends with a space ", " starts with one"), ("x", ".")])
@pytest.mark.parametrize("chat", [True, False])
def test_response_mask_on_tricky_boundaries(prompt, response, chat):
    tok = tiny_tokenizer(chat=chat)
    check_mask(Formatter(tok, chat=chat), tok, prompt, response)


def test_response_mask_with_a_template_that_adds_a_date_and_bos():
    tok = tiny_tokenizer(chat=True)
    tok.chat_template = DATED_TEMPLATE
    fmt = Formatter(tok, chat=True, system_prompt="Be brief.")
    enc = check_mask(fmt, tok, "What is 2+3?", " 5.")
    assert enc.input_ids[0] == tok.bos_token_id and list(enc.input_ids).count(tok.bos_token_id) == 1


# ----------------------------------------------------------------------------- bad input

def cli(capsys, *args):
    code = main(list(args))
    err = capsys.readouterr().err.strip()
    assert "Traceback" not in err and len(err.splitlines()) <= 1, err
    return code, err


def test_bad_data_is_one_line_exit_2(tmp_path, capsys):
    run = ["compute", "--model", "tiny-random-llama", "-q", "--out", str(tmp_path / "r"), "--data"]
    (tmp_path / "bad.jsonl").write_text('{"instruction": "a", "output": "b"}\n{oops\n')
    (tmp_path / "latin1.json").write_bytes('[{"instruction": "caf\xe9", "output": "x"}]'.encode("latin-1"))
    (tmp_path / "data.txt").write_text("hello")
    cases = [(f"a={tmp_path / 'missing.json'}", "data file not found"),
             (f"a={tmp_path / 'bad.jsonl'}", "line 2 is not valid JSON"),
             (f"a={tmp_path / 'latin1.json'}", "not UTF-8"),
             (f"a={tmp_path / 'data.txt'}", "unknown data format"),
             (f"a={tmp_path / 'data.txt'}?prompt=q", "needs both prompt= and response=")]
    for data, needle in cases:
        code, err = cli(capsys, *run, data)
        assert code == 2 and needle in err, (data, err)
    code, err = cli(capsys, "compute", "--model", "no-such-model-alias", "-q", "--out", str(tmp_path / "r2"),
                    "--data", "a=builtin:arith/none?n=2")
    assert code == 2 and "no-such-model-alias" in err


def test_bad_records_are_recorded_skips_while_good_ones_compute(tmp_path, capsys):
    rows = [{"instruction": "What is 1+1?", "output": "2"}, {"instruction": "Empty?", "output": "  "},
            {"instruction": "No output"}, {"instruction": "What is 1+1?", "output": "2"},
            {"question": "wrong fields"}, {"instruction": "What is 2+2?", "output": "4"}]
    (tmp_path / "mixed.json").write_text(json.dumps(rows))
    out = tmp_path / "run"
    code, _ = cli(capsys, "compute", "--model", "tiny-random-llama", "-q", "--out", str(out),
                  "--data", f"a={tmp_path / 'mixed.json'}")
    assert code == 0
    samples = pd.read_parquet(out / "samples.parquet").set_index("source_index")
    assert list(samples.status[[0, 5]]) == ["ok", "ok"]
    reasons = samples.reason.to_dict()
    assert "empty response" in reasons[1] and "lacks text field(s) output" in reasons[2]
    assert "duplicates record 0" in reasons[3] and "no known fields" in reasons[4]
    stats = pd.read_parquet(out / "stats.parquet")
    assert stats.sample_id.nunique() == 2


def test_data_styles_splits_gsm8k_answers(tmp_path, capsys):
    rows = [{"question": "Tom has 3 apples and buys 4. How many?", "answer": "3 + 4 = <<3+4=7>>7\\n#### 7",
             "long": "Tom starts with 3 apples. He buys 4 more, so he has 3 + 4 = 7 apples. The answer is 7."}]
    rows[0]["answer"] = rows[0]["answer"].replace("\\n", "\n")
    (tmp_path / "gsm.jsonl").write_text(json.dumps(rows[0]) + "\n")
    assert main(["data", "styles", "--in", str(tmp_path / "gsm.jsonl"), "--out", str(tmp_path / "out"),
                 "--detailed", "long"]) == 0
    none, simplified, detailed = (json.loads((tmp_path / "out" / f"{n}.json").read_text())[0]
                                  for n in ("none", "simplified", "detailed"))
    assert none["output"] == "7" and none["instruction"] == rows[0]["question"]
    assert simplified["output"] == "3 + 4 = 7\nThe final answer is 7"
    assert detailed["output"] == rows[0]["long"]
    code = main(["data", "styles", "--in", str(tmp_path / "gsm.jsonl"), "--out-dir", str(tmp_path / "o2"),
                 "--question", "q"])
    assert code == 2 and "lacks 'q'" in capsys.readouterr().err


def test_a_subsample_is_seeded_in_source_order_and_keeps_paired_conditions_paired(paper_data):
    from layergrad.data.samples import Subsample

    take = Subsample(5, seed=3)
    assert take.positions(50) == sorted(random.Random(3).sample(range(50), 5)) == take.positions(50)
    assert Subsample(5, head=True).positions(50) == [0, 1, 2, 3, 4] and Subsample(9).positions(4) == [0, 1, 2, 3]
    none = load_samples("paper:gsm8k/none", 5, seed=3, paper_data=str(paper_data))
    detailed = load_samples("paper:gsm8k/detailed", 5, seed=3, paper_data=str(paper_data))
    assert [s.prompt for s in none] == [s.prompt for s in detailed]  # the same problems, so the pairs hold
    assert [s.source_index for s in none] == take.positions(len(load_samples("paper:gsm8k/none",
                                                                            paper_data=str(paper_data))))
    assert [s.source_index for s in load_samples("paper:gsm8k/none", 3, head=True, paper_data=str(paper_data))] == \
        [0, 1, 2]


def test_limit_and_head_together_are_one_line(capsys):
    assert main(["compute", "--model", "tiny-random-llama", "--data", "a=builtin:arith/none?n=4", "--limit", "2",
                 "--head", "2", "--out", "unused"]) == 2
    assert "--limit (a random subsample) and --head (the first N) exclude each other" in capsys.readouterr().err


def test_prompt_response_records_load_without_a_mapping(tmp_path):
    path = tmp_path / "mine.jsonl"
    path.write_text(json.dumps({"prompt": "What is 2+2?", "response": "4", "score": 0.5}) + "\n")
    (sample,) = load_samples(str(path))
    assert (sample.prompt, sample.response, dict(sample.meta)) == ("What is 2+2?", "4", {"score": 0.5})


def test_a_source_cut_to_its_first_tokens(tmp_path, paper_data, capsys):
    """'#first=N' on any kind of source: the same samples (ids, order), each to be trained on its response's first N
    tokens; the attributes say so; a bad N is one line."""
    from layergrad.data.attributes import attributes_of

    whole = load_samples("paper:gsm8k/detailed", 4, paper_data=str(paper_data))
    cut = load_samples("paper:gsm8k/detailed#first=32", 4, paper_data=str(paper_data))
    assert [s.sample_id for s in cut] == [s.sample_id for s in whole]
    assert {s.first_tokens for s in cut} == {32} and {s.first_tokens for s in whole} == {None}
    (tmp_path / "t.csv").write_text("q,a\nWhat is 2+2?,four\n")
    (mapped,) = load_samples(f"{tmp_path / 't.csv'}?prompt=q&response=a#first=3")
    assert (mapped.response, mapped.first_tokens) == ("four", 3)
    assert attributes_of("paper:gsm8k/none#first=64") == {**attributes_of("paper:gsm8k/none"), "first": "64"}
    with pytest.raises(InputError, match="'#first=' needs a whole number of tokens"):
        load_samples("builtin:arith/none?n=2#first=0")
    code, err = cli(capsys, "compute", "--model", "tiny-random-llama", "-q", "--out", str(tmp_path / "r"),
                    "--data", "a=builtin:arith/none?n=2#first=x")
    assert code == 2 and "#first=" in err
