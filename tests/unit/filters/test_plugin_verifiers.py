"""User verifiers at run time (filters/plugin_verifier.py): what a per-sample verifier returns
becomes a verdict; a hanging batch, a process that dies, TRL-style reward functions (as a
verifier and as GRPO's reward); the audit re-checks user code."""

import json
from pathlib import Path

import polars as pl
import pytest

from filters.verifiers import get_verifier, verify
from selftaught import schemas
from selftaught.config import parse_config
from selftaught.plugins import VERIFIERS
from tests.helpers import write_dedented as write


def prompts_with(rows: list[dict]) -> pl.DataFrame:
    """A prompts table: each row's prompt_id, reference and fields (a dict, stored as JSON)."""
    return schemas.validate(
        pl.DataFrame(
            {
                "prompt_id": [r["id"] for r in rows],
                "split": ["pool"] * len(rows),
                "round": ["r001"] * len(rows),
                "prompt": [r.get("prompt", f"question {r['id']}") for r in rows],
                "reference": [str(r.get("reference", "")) for r in rows],
                "target": [""] * len(rows),
                "difficulty": [1] * len(rows),
                "fields": [json.dumps(r.get("fields", {})) for r in rows],
            },
            schema=schemas.PROMPTS,
        ),
        "prompts",
    )


def samples_for(prompts: pl.DataFrame, completions: dict[str, list[str]]) -> pl.DataFrame:
    rows = [
        {
            "round": "r001",
            "prompt_id": pid,
            "sample_idx": i,
            "policy_id": "base",
            "policy_hash": "",
            "prompt": p,
            "completion": c,
            "backend": "hf",
            "temperature": 1.0,
            "top_p": 1.0,
            "max_new_tokens": 8,
            "seed": 0,
        }
        for pid, p in zip(prompts["prompt_id"], prompts["prompt"])
        for i, c in enumerate(completions[pid])
    ]
    return schemas.validate(pl.DataFrame(rows, schema=schemas.SAMPLES), "samples")


FAULTS = """
import os, random, time

def per_row(prompt, completion, reference, *, unit=None, **row):
    if completion == "raise":
        raise ValueError("cannot parse")
    if completion == "dict":
        return {"ok": True}
    if completion == "nan":
        return float("nan")
    if completion == "print":
        print("this goes to the log, not into an answer")
        return True
    if completion == "reason":
        return False, "wrong unit"
    if completion == "score":
        return 0.75
    return completion == reference and unit == "m"

def hangs(prompt, completion, reference):
    if completion == "hang":
        time.sleep(60)
    return True

def dies(prompt, completion, reference):
    if completion == "die":
        os._exit(3)
    return True

def coin(prompt, completion, reference):
    return random.random() < 0.5

def trl_style(prompts, completions, reference, **kwargs):
    return [None if c == "?" else 1.0 if c == r else 0.25 for c, r in zip(completions, reference)]

def short(prompts, completions, **kwargs):
    return [1.0]
"""


@pytest.fixture
def faults(tmp_path) -> Path:
    return write(tmp_path / "faults.py", FAULTS)


def _verify(faults: Path, attr: str, completions: list[str], plugin: dict | None = None, **kw) -> pl.DataFrame:
    cfg = parse_config({"verification": {"verifier": f"{faults}:{attr}", "plugin": plugin or {}}})
    prompts = prompts_with(
        [{"id": f"p{i}", "reference": "3000", "fields": {"unit": "m", "value": 3000}} for i in range(len(completions))]
    )
    v = get_verifier(cfg.verification.verifier, cfg.verification)
    try:
        return verify(v, prompts, samples_for(prompts, {f"p{i}": [c] for i, c in enumerate(completions)}))
    finally:
        v.close()


@pytest.mark.parametrize("isolated", [True, False])
def test_what_a_per_sample_verifier_returns_becomes_a_verdict(faults, isolated):
    out = _verify(
        faults,
        "per_row",
        ["3000", "300", "raise", "dict", "nan", "print", "reason", "score"],
        {"isolated": isolated, "threshold": 0.5},
    )
    assert out["verdict"].to_list() == [
        "correct",
        "incorrect",
        "unverifiable",
        "unverifiable",
        "unverifiable",
        "correct",
        "incorrect",
        "correct",
    ]
    reasons = out["reason"].to_list()
    assert reasons[2] == "verifier error: ValueError: cannot parse"
    assert reasons[3].startswith("the verifier returned dict, expected bool, a number, None")
    assert reasons[4] == "the verifier returned a non-finite score (nan)"
    assert reasons[6] == "wrong unit" and out["reward"][7] == 0.75
    assert out["verifier"][0].startswith("per_row@sha256:")


def test_a_hanging_batch_times_out_and_the_next_batch_runs_in_a_new_worker(faults):
    out = _verify(faults, "hangs", ["hang", "fine"], {"timeout_seconds": 2, "batch_size": 1})
    assert out["verdict"].to_list() == ["unverifiable", "correct"]
    assert "verifier timed out: a batch of 1 took over 2 s" in out["reason"][0]


def test_a_verifier_that_kills_its_process_makes_its_batch_unverifiable(faults):
    out = _verify(faults, "dies", ["die", "fine"], {"batch_size": 1})
    assert out["verdict"].to_list() == ["unverifiable", "correct"]
    assert out["reason"][0] == "the verifier process died (exit 3)"


def test_a_trl_reward_function_is_a_verifier_with_a_threshold(faults):
    out = _verify(faults, "trl_style", ["3000", "12", "?"], {"threshold": 0.5})
    assert out["verdict"].to_list() == ["correct", "incorrect", "unverifiable"]
    assert out["reward"].to_list()[:2] == [1.0, 0.25]
    assert VERIFIERS.get(f"{faults}:trl_style").caps.graded  # GRPO gets its score, as from TRL
    wrong = _verify(faults, "short", ["a", "b"])
    assert set(wrong["reason"]) == {"the verifier returned 1 values for 2 completions"}


def test_the_same_reward_function_rewards_grpo_rollouts_with_its_score(faults, tmp_path):
    from filters.rewards import VerifierReward

    cfg = parse_config({"verification": {"verifier": f"{faults}:trl_style"}})
    reward = VerifierReward(get_verifier(cfg.verification.verifier, cfg.verification), tmp_path / "r", "r001", "r001")
    try:
        got = reward(["q", "q", "q"], ["3000", "5", "?"], ["p", "p", "p"], ["3000"] * 3, ['{"unit": "m"}'] * 3)
    finally:
        reward.close()
    assert got == [1.0, 0.25, None]
    assert reward.table()["reward"].to_list() == [1.0, 0.25, None]


def test_the_audit_re_checks_user_code_and_catches_a_coin_flip(faults):
    from filters.audit import audit

    cfg = parse_config({"verification": {"verifier": f"{faults}:coin"}})
    prompts = prompts_with([{"id": f"p{i}", "reference": "1"} for i in range(60)])
    samples = samples_for(prompts, {f"p{i}": ["x"] for i in range(60)})
    v = get_verifier(cfg.verification.verifier, cfg.verification)
    try:
        verdicts = verify(v, prompts, samples)
        result = audit(v, prompts, samples, verdicts)
    finally:
        v.close()
    assert result.second_opinion == "the same check again, in a fresh process"
    # A fair coin per process: the audit re-checks a sample of the rows (16 here), so any share
    # can come out; none at all has odds 2^-16. (0.2..0.8 failed at 0.1875 once: ~1% odds.)
    assert result.numbers["audit_disagreement_share"] > 0
    steady = _verify(faults, "per_row", ["3000"] * 4)
    assert set(steady["verdict"]) == {"correct"}
