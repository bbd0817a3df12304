"""selection and repair: which verified samples are kept, and second attempts at failed ones."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from selftaught.config.limits import MAX_SAMPLES, Strict


class SelectionConfig(Strict):
    """Which correct samples (and verified repairs) become the round's training rows."""

    max_per_prompt: int = Field(
        1, ge=1, le=MAX_SAMPLES, description="most kept samples per prompt (after dedup, lowest sample index first)"
    )
    require_rationale: bool = Field(
        False, description="keep only samples whose steps check out (needs a verifier that checks steps)"
    )
    dedup: bool | Literal["none", "exact", "normalized", "reasoning"] = Field(
        "normalized",
        description="one kept sample per distinct completion: exact text, normalized text "
        "(case and whitespace), or reasoning path (RFT: the sequence of equations); true = normalized",
    )
    min_chars: int | None = Field(None, ge=0, description="drop kept samples shorter than this")
    max_chars: int | None = Field(None, ge=1, description="drop kept samples longer than this")
    accumulate: bool = Field(True, description="train on kept rows of all rounds so far, not this round's alone")
    include_warm_start: bool = Field(True, description="add the warm-start examples to every round's training set")
    min_new_rows: int = Field(
        1,
        ge=0,
        description="the training_set check stops a round that kept fewer new rows; "
        "0 lets it train on the earlier rows alone",
    )


HINT_TEMPLATE = "Hint: the answer is {reference}. {prompt}"
REFLECT_TEMPLATE = "{prompt}{completion} Feedback: {feedback} Try again. {prompt}"


class RepairConfig(Strict):
    """Second attempts at what failed. rationalize (STaR): prompts with no correct sample are
    sampled again with the reference answer as a hint. reflect (Re-ReST): each failed sample
    and its verifier feedback go into a reflection prompt. Both are re-verified; kept ones
    train on the original prompt."""

    mode: Literal["none", "rationalize", "reflect"] = Field(
        "none", description="none: no second attempts; rationalize (STaR) or reflect (Re-ReST)"
    )
    n: int = Field(
        1, ge=1, le=MAX_SAMPLES, description="attempts per failed prompt (rationalize) or failed sample (reflect)"
    )
    template: str | None = Field(
        None,
        description="rationalize: {prompt} {reference}; reflect: {prompt} "
        "{completion} {feedback}; default: a short hint / retry prompt",
    )
    max_failed_per_prompt: int = Field(2, ge=1, description="reflect: failed samples repaired per prompt")
    warm_start_share: float = Field(
        0.0,
        ge=0,
        le=1,
        description="share of warm-start examples also shown in "
        "the repair format (with the hint; or after another example's wrong solution "
        "and its feedback), so a base model trained from scratch knows it",
    )

    def prompt_template(self) -> str:
        if self.template:
            return self.template
        return HINT_TEMPLATE if self.mode == "rationalize" else REFLECT_TEMPLATE

    @model_validator(mode="after")
    def _placeholders(self):
        if self.mode == "none" or self.template is None:
            return self
        need = ("{prompt}", "{reference}") if self.mode == "rationalize" else ("{prompt}", "{feedback}")
        for key in need:
            if key not in self.template:
                raise ValueError(f"repair template for {self.mode} must contain {key}")
        return self
