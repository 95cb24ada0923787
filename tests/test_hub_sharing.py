"""Sharing on the Hub, tested without a Hub: the model card, the folder the upload sends, the upload
calls themselves, and loading by repo id from a snapshot laid out as the Hub's cache lays it out."""

import json
import os
import subprocess
import sys

import pytest
import torch
from conftest import padded_batch, random_ids, tiny_backbone
from huggingface_hub import ModelCard

from sktuning import SKModel, SKTuningConfig
from sktuning.sharing.hub import CARD_NAME, model_card, push_to_hub, stage_upload
from sktuning.core.adapter_format import CONFIG_NAME, WEIGHTS_NAME


@pytest.fixture()
def run_folder(tmp_path):
    """What `sktune train` leaves: DIR/adapter and DIR/metrics.json."""
    config = SKTuningConfig(text="w7 w8 w9", num_labels=2, label_names=["no", "yes"])
    model = SKModel(tiny_backbone("llama"), config, random_ids(3, seed=9))
    with torch.no_grad():
        model.head.classifier.weight.add_(0.3)
    model.save_pretrained(tmp_path / "run" / "adapter", {"model": "smollm2-135m", "task": "rt-polarity"})
    metrics = {"task": "rt-polarity", "split": "test", "metrics": {"accuracy": 0.8475, "macro_f1": 0.8447},
               "steps": 200, "seed": 0, "best_step": 200}
    (tmp_path / "run" / "metrics.json").write_text(json.dumps(metrics))
    return tmp_path / "run", model


def test_the_card_carries_the_hubs_metadata_the_text_the_scores_and_how_to_load(run_folder):
    folder, model = run_folder
    card = ModelCard(model_card(folder / "adapter", "someone/sk-rt"))
    data = card.data
    assert data.library_name == "sktuning" and data.base_model == "HuggingFaceTB/SmolLM2-135M-Instruct"
    assert data.pipeline_tag == "text-classification" and {"sktuning", "sk-prefix"} <= set(data.tags)
    assert {(r.metric_type, r.metric_value, r.dataset_name, r.dataset_split) for r in data.eval_results} == {
        ("accuracy", 0.8475, "rt-polarity", "test"), ("macro_f1", 0.8447, "rt-polarity", "test")}
    text = card.text
    assert "> w7 w8 w9" in text and "Labels: `no`, `yes`." in text
    assert f"{model.num_trainable_parameters():,d} trainable parameters" in text
    assert 'SKModel.from_pretrained(backbone, "someone/sk-rt", tokenizer=tokenizer)' in text
    assert "Q4_1 GGUF" in text  # the backbone's provenance is said, not hidden


def test_without_metrics_or_a_known_base_the_card_says_so(tmp_path):
    model = SKModel(tiny_backbone("llama"), SKTuningConfig(text="t", task="regression", num_labels=1),
                    random_ids(2, seed=9))
    model.save_pretrained(tmp_path / "adapter", {"model": str(tmp_path)})
    card = ModelCard(model_card(tmp_path / "adapter"))
    assert card.data.base_model is None and not card.data.eval_results
    assert f"a local model folder ({tmp_path})" in card.text and "| metric" not in card.text


def test_the_upload_sends_the_adapter_and_the_card_only(run_folder, tmp_path, monkeypatch):
    folder, _ = run_folder
    staged = stage_upload(folder / "adapter", tmp_path / "staged", "someone/sk-rt")
    assert sorted(p.name for p in staged.iterdir()) == sorted([CONFIG_NAME, WEIGHTS_NAME, CARD_NAME])
    for name in (CONFIG_NAME, WEIGHTS_NAME):
        assert (staged / name).read_bytes() == (folder / "adapter" / name).read_bytes()

    calls = []
    from huggingface_hub import HfApi

    monkeypatch.setattr(HfApi, "create_repo", lambda self, repo_id, **kw: calls.append(("create", repo_id, kw)))

    def upload_folder(self, *, repo_id, folder_path, **kw):
        calls.append(("upload", repo_id, sorted(os.listdir(folder_path))))
        return type("CommitInfo", (), {"commit_url": f"https://huggingface.co/{repo_id}/commit/abc"})()

    monkeypatch.setattr(HfApi, "upload_folder", upload_folder)
    assert push_to_hub(folder / "adapter", "someone/sk-rt", private=True).endswith("/someone/sk-rt/commit/abc")
    assert calls == [("create", "someone/sk-rt", {"private": True, "exist_ok": True, "repo_type": "model"}),
                     ("upload", "someone/sk-rt", sorted([CONFIG_NAME, WEIGHTS_NAME, CARD_NAME]))]
    calls.clear()
    model = SKModel.from_pretrained(tiny_backbone("llama"), folder / "adapter")
    assert push_to_hub(model, "someone/again").endswith("/someone/again/commit/abc")
    assert calls[0][:2] == ("create", "someone/again")
    assert calls[1] == ("upload", "someone/again", sorted([CONFIG_NAME, WEIGHTS_NAME, CARD_NAME]))
    with pytest.raises(NotImplementedError, match="sktuning.sharing import push_to_hub"):
        model.push_to_hub("someone/again")


@pytest.mark.subprocess
def test_a_repo_id_loads_from_a_snapshot_laid_out_as_the_hub_caches_it(run_folder, tmp_path):
    folder, model = run_folder
    cache = tmp_path / "hub-cache"
    snapshot = cache / "models--someone--sk-rt" / "snapshots" / ("0" * 40)
    stage_upload(folder / "adapter", snapshot, "someone/sk-rt")
    (cache / "models--someone--sk-rt" / "refs").mkdir()
    (cache / "models--someone--sk-rt" / "refs" / "main").write_text("0" * 40)
    ids, mask, _ = padded_batch([4, 2], "left")
    want = model.eval()(input_ids=ids, attention_mask=mask).logits
    code = f"""
import sys, torch
sys.path.insert(0, {str(os.path.dirname(__file__))!r})
from conftest import padded_batch, tiny_backbone
from sktuning import SKModel
model = SKModel.from_pretrained(tiny_backbone("llama"), "someone/sk-rt")
ids, mask, _ = padded_batch([4, 2], "left")
torch.save(model(input_ids=ids, attention_mask=mask).logits, {str(tmp_path / "logits.pt")!r})
"""
    env = {**os.environ, "HF_HUB_CACHE": str(cache), "HF_HUB_OFFLINE": "1"}
    subprocess.run([sys.executable, "-c", code], check=True, env=env, timeout=600)
    assert torch.equal(torch.load(tmp_path / "logits.pt"), want)


def test_sktune_push_dry_run_writes_what_would_be_sent_and_refuses_a_bad_repo_id(run_folder, tmp_path, capsys):
    from sktuning.cli import main

    folder, _ = run_folder
    assert main(["push", "--adapter", str(folder / "adapter"), "--repo-id", "someone/sk-rt",
                 "--dry-run", str(tmp_path / "out")]) == 0
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == sorted([CONFIG_NAME, WEIGHTS_NAME, CARD_NAME])
    assert "would upload" in capsys.readouterr().out
    assert main(["push", "--adapter", str(folder / "adapter"), "--repo-id", "sk-rt"]) == 2
    assert "give it as user/name" in capsys.readouterr().err


def test_a_card_without_a_repo_id_still_carries_the_scores(run_folder):
    folder, _ = run_folder
    card = ModelCard(model_card(folder / "adapter"))  # huggingface_hub needs a model name beside eval results
    assert card.data.model_name == "adapter" and len(card.data.eval_results) == 2
