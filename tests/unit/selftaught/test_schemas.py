"""Table schemas (selftaught/schemas.py): missing columns and bad verdicts are reported, tables are
validated at the edges."""

import polars as pl
import pytest

from selftaught import schemas


def test_tables_are_validated_at_the_edges():
    from selftaught import schemas
    from synth.backends import SamplingParams
    from synth.sampling import to_samples

    with pytest.raises(schemas.SchemaError, match=r"missing column\(s\) \['prompt_id'"):
        schemas.validate(pl.DataFrame({"round": ["r001"]}), "samples")
    prompts = schemas.empty("prompts").vstack(
        pl.DataFrame(
            {
                "prompt_id": ["p"],
                "split": ["pool"],
                "round": ["r001"],
                "prompt": ["1+1"],
                "reference": ["2"],
                "target": [""],
                "difficulty": [1],
                "fields": [None],
            },
            schema=schemas.PROMPTS,
        )
    )
    with pytest.raises(RuntimeError, match="returned 1 samples for p, expected 2"):
        to_samples(prompts, [["only one"]], SamplingParams(n=2, temperature=1.0), "r001", "base", "", "hf")
    with pytest.raises(RuntimeError, match="answered 0 prompts, expected 1"):
        to_samples(prompts, [], SamplingParams(n=2, temperature=1.0), "r001", "base", "", "hf")


def test_validate_reports_missing_columns_and_bad_verdicts():
    with pytest.raises(schemas.SchemaError, match="missing column"):
        schemas.validate(pl.DataFrame({"round": ["r001"]}), "samples")
    v = schemas.empty("verdicts").vstack(
        pl.DataFrame(
            {
                "round": ["r"],
                "prompt_id": ["p"],
                "sample_idx": [0],
                "verdict": ["maybe"],
                "reward": [0.0],
                "extracted_answer": [None],
                "parsed_reference": [None],
                "rationale_ok": [None],
                "reason": [""],
                "verifier": ["v"],
                "details": [None],
            },
            schema=schemas.VERDICTS_TABLE,
        )
    )
    with pytest.raises(schemas.SchemaError, match="verdict must be one of"):
        schemas.validate(v, "verdicts")
    with pytest.raises(schemas.SchemaError, match="undeclared"):
        schemas.validate(schemas.empty("prompts").with_columns(pl.lit(1).alias("x")), "prompts")
