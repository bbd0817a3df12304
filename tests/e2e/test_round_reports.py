"""Round diffs, the verifier audit and the compute ledger on real rounds of the tiny experiment
(two, run once for the module): every number recomputed from the tables on disk, the CLI and
the report asset; three rounds in one process peak like the first."""

from __future__ import annotations

import dagster as dg
import polars as pl
import pytest

from pipelines.cli import main
from pipelines.progress import ROUND_ORDER
from tests.helpers import TINY_CONFIG, copy_config, fresh_dagster_home, run_rounds


@pytest.fixture(scope="module")
def two_rounds(tmp_path_factory):
    folder = tmp_path_factory.mktemp("insight")
    config = copy_config(
        TINY_CONFIG, folder / "tiny.yaml", storage_root=str(folder / "store"), operations__price_per_hour=2.0
    )
    store, meta, _ = run_rounds(config, folder, rounds=2)
    return config, folder, store, meta


@pytest.mark.slow
def test_round_diff_numbers_add_up_against_the_tables(two_rounds, capsys):
    config, _, store, meta = two_rounds
    diff = meta[("round_diff", "r002")]
    assert diff["against"] == "r001" and meta[("round_diff", "r001")]["against"] == "base"

    before = pl.read_parquet(store.table_path("evaluation", "r001")).select(
        "prompt_id", "difficulty", b=pl.col("verdict") == "correct"
    )
    after = pl.read_parquet(store.table_path("evaluation", "r002")).select(
        "prompt_id", a=pl.col("verdict") == "correct"
    )
    both = before.join(after, on="prompt_id")
    assert diff["newly_solved"] == both.filter(pl.col("a") & ~pl.col("b")).height
    assert diff["newly_lost"] == both.filter(~pl.col("a") & pl.col("b")).height
    table = pl.read_parquet(store.table_path("round_diff", "r002"))
    assert table["newly_solved"].sum() == diff["newly_solved"] and table["prompts"].sum() == both.height

    rows = pl.read_parquet(store.table_path("training_set", "r002"))
    kept = rows.filter((pl.col("source_round") == "r002") & (pl.col("origin") != "warm_start"))
    assert diff["kept_rows"] == kept.height == meta[("training_set", "r002")]["new_rows"]
    kept_before = rows.filter(pl.col("source_round") == "r001")
    shared = set(kept["prompt_id"]) & set(kept_before["prompt_id"])
    assert diff["kept_overlap"] == pytest.approx(len(shared) / len(set(kept["prompt_id"])))
    verdicts = pl.read_parquet(store.table_path("verdicts", "r002"))
    distinct = verdicts.group_by("prompt_id").agg(pl.col("extracted_answer").drop_nulls().n_unique())
    assert diff["distinct_answers_per_prompt"] == pytest.approx(distinct["extracted_answer"].mean())
    assert "| difficulty | prompts |" in diff["diff"]

    assert main(["diff", "--config", str(config), "r002"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("r002 against r001") and f"newly_solved: {diff['newly_solved']:.4g}" in out
    assert main(["diff", "--config", str(config), "base", "r002"]) == 0
    assert capsys.readouterr().out.startswith("r002 against base")
    assert main(["diff", "--config", str(config), "r009"]) == 2
    assert "no evaluation of r008 or r009" in capsys.readouterr().err


@pytest.mark.slow
def test_a_real_rounds_audit_matches_its_verdicts_table(two_rounds):
    _, _, store, meta = two_rounds
    verdicts = pl.read_parquet(store.table_path("verdicts", "r001"))
    correct = verdicts.filter(pl.col("verdict") == "correct")
    m = meta[("verdicts", "r001")]
    assert m["audit_correct_samples"] == correct.height
    assert m["audit_disagreement_share"] == pytest.approx(
        correct.filter(~pl.col("rationale_ok")).height / correct.height
    )


@pytest.mark.slow
def test_the_ledger_of_real_rounds_matches_the_tables_and_drives_the_stop_rule(two_rounds, capsys):
    from pipelines.build import build_definitions
    from pipelines.progress import too_slow
    from selftaught.config import load_config
    from selftaught.hardware import matmul_ceiling
    from synth.backends import count_tokens
    from train.artifact import parameter_count

    config, folder, store, meta = two_rounds
    for stage in ("prompts", "samples", "verdicts", "training_set", "policy", "evaluation", "round_diff"):
        m = meta[(stage, "r002")]
        assert m["stage_wall_s"] > 0 and m["stage_cpu_s"] >= 0 and m["stage_peak_rss_mb"] > 50, stage
    assert meta[("policy", "r002")]["stage_cpu_s"] > 0
    samples = pl.read_parquet(store.table_path("samples", "r001"))
    assert meta[("samples", "r001")]["generated_tokens"] == count_tokens(
        store.model_dir("base") / "model", samples["completion"]
    )
    assert meta[("policy", "r002")]["trained_tokens"] > 0
    # FLOPs by filters/ledger.py's rules, from the tables and the weights' headers; FLOP/s over the wall
    base = store.model_dir("base") / "model"
    params = parameter_count(base)
    prompts = pl.read_parquet(store.table_path("prompts", "r001"))
    prompt_tokens = count_tokens(base, prompts.filter(pl.col("prompt_id").is_in(samples["prompt_id"]))["prompt"])
    gen = meta[("samples", "r001")]
    assert gen["prompt_tokens"] == prompt_tokens and gen["parameters"] == params
    assert gen["flops"] == pytest.approx(2 * params * (gen["generated_tokens"] + prompt_tokens))
    assert gen["flop_per_s"] == pytest.approx(gen["flops"] / gen["stage_wall_s"], rel=1e-3)
    assert gen["mfu"] == pytest.approx(gen["flop_per_s"] / matmul_ceiling(gen["flops_dtype"]), rel=1e-3)
    train = meta[("policy", "r002")]
    lora = load_config(config).training.method == "lora"
    assert train["flops"] == pytest.approx((4 if lora else 6) * params * train["trained_tokens"])
    assert 0 < train["mfu"] < 1 and 0 < gen["mfu"] < 1

    with fresh_dagster_home(folder), dg.DagsterInstance.get() as instance:
        defs = build_definitions(config)
        assert defs.resolve_job_def("refresh_summary").execute_in_process(instance=instance).success
        cfg = load_config(config)
        assert too_slow(instance, cfg, None) is None
        assert too_slow(instance, cfg, 1e9).startswith("too slow: r002 gained")
    table = pl.read_parquet(store.table_path("ledger"))
    assert table["round"].to_list() == ["r001", "r002"]
    r2 = table.row(1, named=True)
    wall = sum(meta[(s, "r002")]["stage_wall_s"] for s in ROUND_ORDER)
    assert r2["wall_s"] == pytest.approx(wall)
    assert r2["samples_verified"] == pl.read_parquet(store.table_path("verdicts", "r002")).height
    assert r2["kept_rows"] == meta[("training_set", "r002")]["new_rows"]
    assert r2["kept_per_1k_samples"] == pytest.approx(1000 * r2["kept_rows"] / r2["samples_verified"])
    assert r2["cost"] == pytest.approx(wall / 3600 * 2.0)
    delta = meta[("evaluation", "r002")]["frontier_delta"]
    assert r2["points_per_hour"] == pytest.approx(100 * delta / (wall / 3600))
    assert r2["flops"] == pytest.approx(meta[("samples", "r002")]["flops"] + train["flops"])
    assert (r2["gen_mfu"], r2["train_mfu"]) == (meta[("samples", "r002")]["mfu"], train["mfu"])
    assert (store.root / "ledger.png").stat().st_size > 5_000

    assert main(["ledger", "--config", str(config), "--dagster-home", str(folder / "dagster_home")]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split()[:3] == ["round", "wall", "s"] and lines[3].split()[0] == "r002"


@pytest.mark.slow
def test_three_rounds_in_one_process_peak_like_the_first(tmp_path):
    """Nothing of a round stays alive into the next: with the three rounds in one process, round
    3's peak is within 10% (or 40 MB) of round 1's, stage by stage."""
    config = copy_config(TINY_CONFIG, tmp_path / "tiny.yaml", storage_root=str(tmp_path / "store"), max_rounds=3)
    _, meta, _ = run_rounds(config, tmp_path, rounds=3)
    for stage in ("samples", "verdicts", "training_set", "policy", "evaluation"):
        first, third = meta[(stage, "r001")]["stage_peak_rss_mb"], meta[(stage, "r003")]["stage_peak_rss_mb"]
        assert third <= max(first * 1.10, first + 40), (stage, first, third)
