"""Verifiers as GRPO rewards (filters/rewards.py): unverifiable rollouts get no reward and a mostly
unverifiable batch stops; the label-free reward agrees with the majority."""

import polars as pl
import pytest

from filters.rewards import TooManyUnverifiable, VerifierReward
from filters.verifiers import get_verifier
from selftaught.config import load_config
from tests.helpers import ROOT

PRESETS = ROOT / "pipelines" / "presets"


class _State:
    def __init__(self, step):
        self.global_step = step


def test_unverifiable_rollouts_get_no_reward_and_a_mostly_unverifiable_batch_stops(tmp_path):
    reward = VerifierReward(
        get_verifier("arithmetic"), tmp_path / "rollouts", "r001", "r001", max_unverifiable_share=0.5, min_rollouts=8
    )
    prompts = ["Q: 2+3=?"] * 4
    # Prompt u has no reference: its rollouts cannot be verified.
    got = reward(
        prompts,
        [" 2+3+0=5:5; answer 5", " answer 6", " answer 5", " answer 5"],
        prompt_id=["p", "p", "u", "p"],
        reference=["5", "5", "", "5"],
        trainer_state=_State(0),
    )
    assert got == [1.0, 0.0, None, 1.0]  # unverifiable: None (TRL leaves it out), never 0
    table = reward.table().sort("prompt_id", "sample_idx")
    assert table["reward"].to_list() == [1.0, 0.0, 1.0, None] and table["sample_idx"].to_list() == [0, 1, 2, 0]
    assert table["verdict"].to_list() == ["correct", "incorrect", "correct", "unverifiable"]
    # The round's share so far counts (5 of 8 here), once min_rollouts are in: one batch is too noisy.
    with pytest.raises(
        TooManyUnverifiable,
        match="62% of the 8 rollouts so far unverifiable .*max_unverifiable_share 50%.*no reference answer",
    ):
        reward(prompts, [" answer 5"] * 4, prompt_id=["u", "u", "u", "u"], reference=[""] * 4, trainer_state=_State(1))
    # A resumed run regenerates from its checkpoint's step: those rollouts go, numbering continues.
    assert reward.forget_from(1) == 1
    again = VerifierReward(get_verifier("arithmetic"), tmp_path / "rollouts", "r001", "r001")
    again(
        ["Q: 1+1=?"] * 2, [" answer 2", " answer 3"], prompt_id=["p"] * 2, reference=["2"] * 2, trainer_state=_State(1)
    )
    assert again.table().filter(pl.col("prompt_id") == "p")["sample_idx"].to_list() == [0, 1, 2, 3, 4]
    assert again.table().filter(pl.col("prompt_id") == "u")["sample_idx"].to_list() == [0]


def test_label_free_reward_agrees_with_the_majority_and_gets_no_reference(tmp_path):
    from assets.recipes import rollout_prompts

    ttrl = load_config(PRESETS / "ttrl.yaml")
    prompts = pl.DataFrame({"prompt_id": ["p"], "prompt": ["Q: 2+3=?"], "reference": ["5"], "difficulty": [1]})
    assert rollout_prompts(ttrl, prompts).columns == ["prompt_id", "prompt"]  # nothing to read a label from
    assert "reference" in rollout_prompts(load_config(PRESETS / "grpo.yaml"), prompts).columns
    reward = VerifierReward(
        get_verifier("majority", ttrl.verification),
        tmp_path / "r",
        "r001",
        "r001",
        max_unverifiable_share=ttrl.verification.max_unverifiable_share,
    )
    # The majority (7) is wrong: label-free rewards agreement, not the truth it cannot see.
    got = reward(
        ["Q: 2+3=?"] * 4,
        [" answer 7", " answer 7", " answer 5", " answer 7"],
        prompt_id=["p"] * 4,
        trainer_state=_State(0),
    )
    assert got == [1.0, 1.0, 0.0, 1.0]
    assert reward.table()["parsed_reference"].to_list() == ["7"] * 4
