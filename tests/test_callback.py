"""LayerGradCallback: probing during training changes nothing of the training, and each probe is a
normal run directory whose step-0 numbers equal `compute` on the untouched model."""

import pandas as pd
import pytest
import torch

import layergrad
from layergrad.callback import LayerGradCallback
from layergrad.cli import main
from layergrad.tiny import tiny_model


def dataset(tok, n=8, length=48):
    """Equal-length causal-LM examples from the built-in arithmetic problems (labels = inputs)."""
    rows = []
    for s in layergrad.load_samples(f"builtin:arith/simplified?n={n}"):
        ids = tok(s.prompt + "\n" + s.response, add_special_tokens=False)["input_ids"][:length]
        ids = ids + [tok.pad_token_id] * (length - len(ids))
        mask = [int(i != tok.pad_token_id) for i in ids]
        labels = [i if m else -100 for i, m in zip(ids, mask)]
        rows.append({"input_ids": torch.tensor(ids), "attention_mask": torch.tensor(mask),
                     "labels": torch.tensor(labels)})
    return rows


def train(tmp_path, callback=None, steps=4):
    from transformers import Trainer, TrainingArguments

    model, tok = tiny_model("tiny-random-llama")
    args = TrainingArguments(output_dir=str(tmp_path / "trainer"), max_steps=steps, per_device_train_batch_size=2,
                             learning_rate=5e-3, logging_steps=1, report_to=[], save_strategy="no", seed=0,
                             use_cpu=True, disable_tqdm=True, dataloader_num_workers=0)
    trainer = Trainer(model=model, args=args, train_dataset=dataset(tok), processing_class=tok)
    if callback is not None:
        callback.attach(trainer)
    trainer.train()
    return trainer, tok


def probe_set():
    return {"none": layergrad.load_samples("builtin:arith/none?n=3"),
            "detailed": layergrad.load_samples("builtin:arith/detailed?n=3")}


def test_probing_changes_nothing_of_the_training(tmp_path):
    plain, _ = train(tmp_path / "plain")
    callback = LayerGradCallback(probe_set(), every=2, out=tmp_path / "probes")
    probed, _ = train(tmp_path / "probed", callback)
    # Equal by construction: both trainings make the same calls in the same order in this process, on the
    # same threads (the probe leaves torch's thread setting, RNG and the model's weights and mode as they were).
    for (name, a), (_, b) in zip(plain.model.named_parameters(), probed.model.named_parameters()):
        assert torch.equal(a, b), name
        assert a.grad is None and b.grad is None or torch.equal(a.grad, b.grad)
    state_a, state_b = plain.optimizer.state_dict()["state"], probed.optimizer.state_dict()["state"]
    assert state_a.keys() == state_b.keys()
    for key in state_a:
        for field, value in state_a[key].items():
            assert torch.equal(value, state_b[key][field]), (key, field)
    losses = [[e["loss"] for e in t.state.log_history if "loss" in e] for t in (plain, probed)]
    assert losses[0] == losses[1] and len(losses[0]) == 4
    assert probed.model.training == plain.model.training

    runs = sorted((tmp_path / "probes").glob("step-*"))
    assert [r.name for r in runs] == ["step-000000", "step-000002", "step-000004"]
    for r in runs:
        stats, samples, manifest = layergrad.analysis.summary.load_run(r)  # noqa: F841
        assert manifest["step"] == int(r.name.split("-")[1])
        assert len(stats) == 6 * 4 * 7 and (samples.status == "ok").all()
    logged = [e for e in probed.state.log_history if "layergrad/none/nn_early" in e]
    assert [e["step"] for e in logged] == [0, 2, 4]
    assert {"layergrad/detailed/mad", "layergrad/detailed/nn_late"} <= set(logged[0])


def test_step_zero_equals_compute_on_the_untouched_model(tmp_path):
    train(tmp_path / "t", LayerGradCallback(probe_set(), every=100, out=tmp_path / "probes"), steps=1)
    model, tok = tiny_model("tiny-random-llama")
    m = layergrad.models.LoadedModel(model, tok, "tiny", True, {})
    want = layergrad.compute(m, probe_set()).set_index(["condition", "sample_id", "param"]).sort_index()
    got = pd.read_parquet(tmp_path / "probes" / "step-000000" / "stats.parquet")
    got = got.set_index(["condition", "sample_id", "param"]).sort_index()
    for column in ("nuclear_norm", "sigma_max", "frobenius_norm", "effective_rank"):
        pd.testing.assert_series_equal(got[column], want[column], rtol=1e-6)


def test_over_steps_view(tmp_path, capsys):
    train(tmp_path / "t", LayerGradCallback(probe_set(), every=1, out=tmp_path / "probes"), steps=2)
    runs = [str(p) for p in sorted((tmp_path / "probes").glob("step-*"))]
    assert main(["analyze", *runs, "--out", str(tmp_path / "over"), "--over-steps", "--formats", "png", "-q"]) == 0
    table = pd.read_csv(tmp_path / "over" / "steps.csv")
    assert sorted(table.step.unique()) == [0, 1, 2] and set(table.condition) == {"none", "detailed"}
    assert (tmp_path / "over" / "figures" / "over_steps.png").exists()
    assert main(["analyze", runs[0], "--out", str(tmp_path / "x"), "-q", "--bootstrap", "20", "--metrics",
                 "nuclear_norm", "--formats", "png"]) == 0  # a probe is a normal run
    plain = tmp_path / "plain"
    assert main(["compute", "--model", "tiny-random-llama", "-q", "--data", "a=builtin:arith/none?n=2", "--out",
                 str(plain)]) == 0
    assert main(["analyze", str(plain), "--out", str(tmp_path / "y"), "--over-steps"]) == 2
    assert "names no step" in capsys.readouterr().err


def test_bad_probe_is_one_line():
    with pytest.raises(layergrad.LayergradError, match="empty"):
        LayerGradCallback({}, every=2)
    with pytest.raises(layergrad.LayergradError, match="positive"):
        LayerGradCallback(probe_set(), every=0)
