"""`selftaught export`: a real round (tiny, objective dpo, method lora) written as a Hugging Face
dataset and model, and loaded back with datasets, transformers and peft."""

import argparse
import shutil

import polars as pl
import pytest
import torch
import yaml

from filters.metrics import accuracy_by_difficulty
from pipelines import export
from selftaught import __version__
from selftaught.config import load_config
from selftaught.files import file_hash
from selftaught.store import Store
from tests.helpers import dpo_lora_config, run_rounds
from train.artifact import read_provenance

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def dpo_lora_round(tmp_path_factory):
    """One round that trains a LoRA adapter with DPO: it has a training set, pairs, samples and verdicts."""
    folder = tmp_path_factory.mktemp("export")
    config = dpo_lora_config(folder, max_rounds=1)
    store, _, _ = run_rounds(config, folder, 1)
    out = folder / "shared"
    assert export.run(_args(config, "r001", out)) == 0
    return config, store, out


def _args(config, key, to, **kw):
    p = argparse.ArgumentParser()
    export.add_arguments(p)
    argv = ["--config", str(config), key, "--to", str(to)]
    for k, v in kw.items():
        argv += [f"--{k.replace('_', '-')}"] + ([] if v is True else [str(v)])
    return p.parse_args(argv)


def _card(path):
    _, header, body = path.read_text().split("---\n", 2)
    return yaml.safe_load(header), body


def test_the_dataset_loads_back_one_config_per_table(dpo_lora_round, tmp_path):
    from datasets import load_dataset

    config, store, out = dpo_lora_round
    meta, body = _card(out / "dataset" / "README.md")
    names = [c["config_name"] for c in meta["configs"]]
    assert names == ["training_set", "pairs", "samples", "verdicts"]  # no rollouts in an offline round
    assert [c["config_name"] for c in meta["configs"] if c.get("default")] == ["pairs"]  # what dpo trained on
    for name in names:
        on_disk = store.table_path(name, "r001")
        assert file_hash(out / "dataset" / "data" / f"{name}.parquet") == file_hash(on_disk)  # byte for byte
        ds = load_dataset(str(out / "dataset"), name, cache_dir=str(tmp_path / "cache"))
        assert list(ds) == ["train"] and ds["train"].num_rows == pl.read_parquet(on_disk).height > 0
        assert set(ds["train"].column_names) == set(pl.read_parquet(on_disk).columns)
        assert f"| `{name}` | {ds['train'].num_rows} | {file_hash(on_disk)[:16]} |" in body
    default = load_dataset(str(out / "dataset"), cache_dir=str(tmp_path / "cache"))
    assert default["train"].num_rows == pl.read_parquet(store.table_path("pairs", "r001")).height


def test_cards_carry_the_lineage_and_the_config_reproduces_the_round(dpo_lora_round):
    config, store, out = dpo_lora_round
    cfg = load_config(config)
    prov = read_provenance(store.model_dir("r001"))
    verifier = pl.read_parquet(store.table_path("verdicts", "r001"))["verifier"][0]
    for card in (out / "dataset" / "README.md", out / "model" / "README.md"):
        _, body = _card(card)
        assert f"- parent policy: base (weights {prov['parent']['weights_hash']})" in body
        assert f"- verifier: {verifier}" in body
        assert f"- config hash: {prov['config_hash']} (round hash {cfg.round_hash()})" in body
        assert f"- selftaught version: {__version__}" in body
        assert f"- made by: `selftaught run --config {config} --rounds 1`" in body
        assert f"training data {prov['data_hash']}" in body  # `selftaught lineage`'s chain
        assert str(store.root) not in body  # no path of the machine that ran it
    # the resolved config shipped beside the cards hashes like the round's own
    shipped = load_config(out / "dataset" / "selftaught.yaml")
    assert shipped.round_hash() == cfg.round_hash() and shipped.storage_root == "data/runs/tiny"
    assert (out / "model" / "selftaught.yaml").read_text() == (out / "dataset" / "selftaught.yaml").read_text()


def test_the_model_and_its_adapter_load_back_with_the_cards_accuracy(dpo_lora_round):
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    config, store, out = dpo_lora_round
    prov = read_provenance(store.model_dir("r001"))
    meta, body = _card(out / "model" / "README.md")
    assert meta["tags"][:4] == ["selftaught", "self-training", "dpo", "lora"] and "base_model" not in meta  # tiny
    assert "- objective: dpo, method lora, init continue, reference base" in body
    assert f"adapter {prov['adapter_hash']} on base weights {prov['adapter_base_hash']}" in body
    assert "- beta: 0.1" in body and "- lora: r 4, alpha 8" in body
    for policy in ("base", "r001"):
        acc = accuracy_by_difficulty(pl.read_parquet(store.evaluation_path(policy)))
        assert f"| {policy} | " + " | ".join(f"{a:.1%}" for a in acc.values()) + " |" in body

    model = AutoModelForCausalLM.from_pretrained(out / "model")
    tok = AutoTokenizer.from_pretrained(out / "model")
    trained = AutoModelForCausalLM.from_pretrained(store.model_dir("r001") / "model")
    ids = torch.tensor([tok("3+4=")["input_ids"]])
    with torch.no_grad():
        logits = model(ids).logits
        assert torch.equal(logits, trained(ids).logits)
        base = AutoModelForCausalLM.from_pretrained(store.model_dir("base") / "model")
        adapted = PeftModel.from_pretrained(base, str(out / "model"), subfolder="adapter")
        assert torch.allclose(adapted(ids).logits, logits, atol=1e-4)  # the adapter on the base = the merged model
    assert not (out / "model" / "adapter" / "README.md").exists()  # peft's placeholder card, with a local path
    assert str(store.root) not in (out / "model" / "adapter" / "adapter_config.json").read_text()


def test_unknown_or_incomplete_rounds_name_the_rounds_there_are(dpo_lora_round, tmp_path, capsys):
    config, store, _ = dpo_lora_round
    assert export.run(_args(config, "r009", tmp_path / "a")) == 2
    err = capsys.readouterr().err
    assert "round 'r009' does not exist" in err and "complete rounds: r001" in err
    assert not (tmp_path / "a").exists()
    # a round that started (its prompts are written) but has no policy yet
    copy = tmp_path / "store"
    shutil.copytree(store.root, copy)
    shutil.copyfile(copy / "tables/prompts/r001.parquet", copy / "tables/prompts/r002.parquet")
    cfg = load_config(config)
    with pytest.raises(
        export.ExportError,
        match=r"round r002 is not complete .*no policy artifact or evaluation"
        r".*complete rounds: r001; started, not complete: r002",
    ):
        export.export_round(cfg, Store(copy), "r002", tmp_path / "b")
    with pytest.raises(export.ExportError, match=r"'r2' does not exist .*complete rounds: r001"):
        export.export_round(cfg, Store(copy), "r2", tmp_path / "b")
    assert not (tmp_path / "b").exists()


def test_a_non_empty_target_is_replaced_only_with_force(dpo_lora_round, tmp_path, capsys):
    config, store, _ = dpo_lora_round
    target = tmp_path / "out"
    target.mkdir()
    (target / "keep.txt").write_text("mine")
    assert export.run(_args(config, "r001", target)) == 2
    assert "is not empty: pass --force" in capsys.readouterr().err
    assert [p.name for p in tmp_path.iterdir()] == ["out"] and (target / "keep.txt").read_text() == "mine"
    assert export.run(_args(config, "r001", target, force=True)) == 0
    assert sorted(p.name for p in target.iterdir()) == ["dataset", "model"]
    assert [p.name for p in tmp_path.iterdir()] == ["out"]  # no temporary folder left beside it
    with pytest.raises(export.ExportError, match="holds the experiment's storage root"):
        export.export_round(load_config(config), store, "r001", store.root.parent, force=True)


def test_push_without_a_token_fails_before_any_network_call(dpo_lora_round, tmp_path, monkeypatch, capsys):
    import huggingface_hub
    from huggingface_hub import constants

    config, _, _ = dpo_lora_round
    for var in ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN", "HF_OIDC_RESOURCE"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setattr(constants, "HF_TOKEN_PATH", str(tmp_path / "no-token"))

    def no_network(*a, **kw):
        raise AssertionError("the hub was called")

    monkeypatch.setattr(huggingface_hub, "HfApi", no_network)
    assert export.run(_args(config, "r001", tmp_path / "out", push_to_hub="someone/tiny-r001")) == 2
    assert "needs a Hugging Face token" in capsys.readouterr().err and not (tmp_path / "out").exists()
    with pytest.raises(export.ExportError, match="name the namespace"):
        export.hub_token("tiny-r001")
    monkeypatch.setenv("HF_TOKEN", "hf_test")
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    with pytest.raises(export.ExportError, match="HF_HUB_OFFLINE"):
        export.push_to_hub(tmp_path / "out", "someone/tiny-r001")


def test_files_get_the_umask_modes_and_the_export_keeps_them(dpo_lora_round):
    """transformers writes model.safetensors through mkstemp (0600); published artifacts and
    exports get the modes the umask gives, like every other file."""
    from selftaught.files import umask

    _, store, out = dpo_lora_round
    want = 0o666 & ~umask()
    for folder in (store.model_dir("r001"), out):
        weights = list(folder.rglob("*.safetensors"))
        assert weights and {oct(w.stat().st_mode & 0o777) for w in weights} == {oct(want)}, folder


def test_a_damaged_table_or_an_unwritable_target_is_one_line_and_writes_nothing(dpo_lora_round, tmp_path, capsys):
    config, store, _ = dpo_lora_round
    copy = tmp_path / "store"
    shutil.copytree(store.root, copy)
    (copy / "tables/verdicts/r001.parquet").write_bytes(b"PAR1 cut")
    with pytest.raises(
        export.ExportError, match=r"the verdicts table of round r001 .* is damaged .*nothing was exported"
    ):
        export.export_round(load_config(config), Store(copy), "r001", tmp_path / "a")
    (tmp_path / "a_file").write_text("x")
    assert export.run(_args(config, "r001", tmp_path / "a_file" / "out")) == 2
    err = capsys.readouterr().err
    assert (
        err.strip()
        == f"error: cannot export to {tmp_path / 'a_file' / 'out'}: {tmp_path / 'a_file'} is a file, not a folder"
    )
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a_file", "store"]
