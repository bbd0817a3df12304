"""One experiment per storage root and per asset prefix (selftaught/lock.py), also when two
processes claim a fresh root at the same instant."""

import json

import pytest

from selftaught.lock import RootTaken, claim_root
from selftaught.store import Store


def test_a_storage_root_belongs_to_one_experiment(tmp_path):
    store = Store(tmp_path / "root")
    claim_root(store, "a")
    claim_root(store, "a")  # the owner again: fine
    with pytest.raises(RootTaken, match=r"belongs to experiment 'a'.*experiment 'b' would overwrite"):
        claim_root(store, "b")


def _claim(root, name, barrier, results):
    barrier.wait()
    try:
        claim_root(Store(root), name)
        results.put((name, "won"))
    except RootTaken:
        results.put((name, "refused"))


def test_two_experiments_claiming_a_fresh_root_at_once_one_wins(tmp_path):
    """The owner file is created in one step: of two processes released at the same instant,
    exactly one owns the root (an outside probe saw both succeed in 29 of 40 tries)."""
    import multiprocessing

    ctx = multiprocessing.get_context("fork")
    for trial in range(40):
        root = tmp_path / f"root{trial}"
        barrier, results = ctx.Barrier(2), ctx.Queue()
        procs = [ctx.Process(target=_claim, args=(root, name, barrier, results)) for name in ("a", "b")]
        for proc in procs:
            proc.start()
        for proc in procs:
            proc.join(30)
        outcome = sorted(results.get(timeout=5)[1] for _ in procs)
        assert outcome == ["refused", "won"], (trial, outcome)
        owner = json.loads((root / "experiment.json").read_text())["experiment"]
        assert owner in ("a", "b")


def test_one_asset_prefix_and_one_root_per_experiment_name_in_a_dagster_home(tmp_path):
    from selftaught.lock import claim_key_prefix

    home = tmp_path / "home"
    home.mkdir()
    claim_key_prefix(home, "conc_x", "/data/a")
    claim_key_prefix(home, "conc_x", "/data/a")  # again: fine
    with pytest.raises(RootTaken, match=r"experiments 'conc_x' and 'conc-x' would share the asset keys conc_x/"):
        claim_key_prefix(home, "conc-x", "/data/b")
    with pytest.raises(
        RootTaken,
        match=r"experiment 'conc_x' in the Dagster home .* keeps its data at /data/a; a "
        r"second 'conc_x' at /data/c",
    ):
        claim_key_prefix(home, "conc_x", "/data/c")
    claim_key_prefix(home, "other", "/data/c")
