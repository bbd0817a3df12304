"""ExperimentConfig: the sections together, the rules that span them, and the config hashes."""

from __future__ import annotations

import hashlib
import json
from typing import Any, NamedTuple

from pydantic import Field, PrivateAttr, ValidationError, field_validator, model_validator

from selftaught.config.evaluation import EvaluationConfig
from selftaught.config.limits import MAX_ROUND_SAMPLES, MAX_ROUNDS, MAX_STEPS, Strict
from selftaught.config.merge import merge
from selftaught.config.model import ModelConfig
from selftaught.config.operations import OperationsConfig, TrackingConfig
from selftaught.config.phases import PhaseConfig
from selftaught.config.sampling import SamplingConfig
from selftaught.config.selection import RepairConfig, SelectionConfig
from selftaught.config.task import TaskConfig
from selftaught.config.training import TrainingConfig
from selftaught.config.verification import PluginConfig, VerificationConfig
from selftaught.plugins import OBJECTIVES, REGISTRIES, VERIFIERS, Plugin, PluginError, adapt


class FrontierScope(NamedTuple):
    """A frontier setting and the difficulties it picks from (the shape of a TaskConfig that
    filters.metrics.frontier_of reads), for an evaluation task of its own."""

    frontier: int | str
    pool: list[int]
    level_name: str

    def frontier_pool(self) -> list[int]:
        return self.pool


def _names_with(capability: str, kind: str = "verifier") -> str:
    """The registered plugins of `kind` with a capability (for an error message)."""
    return ", ".join(p.name for p in REGISTRIES[kind].entries() if getattr(p.caps, capability)) or "none"


class ExperimentConfig(Strict):
    """One experiment: its name, storage, round count and every config section."""

    name: str = Field(
        "demo",
        pattern=r"^[A-Za-z0-9_\-]+$",
        description="the experiment's name (letters, digits, "
        "_ and -): prefix of its Dagster assets and jobs, default tracker project",
    )
    storage_root: str = Field("data/runs/demo", description="a path, or an object store URL (s3://bucket/prefix)")
    storage_options: dict[str, Any] = Field(
        default_factory=dict,
        description=(
            "fsspec options for a URL root, e.g. {endpoint_url: ...} for MinIO; credentials come from the "
            "environment (AWS_ACCESS_KEY_ID, ...), not from here"
        ),
    )
    storage_cache: str | None = Field(None, description="local mirror of a URL root (default ~/.cache/selftaught)")
    max_rounds: int = Field(
        3,
        ge=1,
        le=MAX_ROUNDS,
        description="self-training rounds (what `selftaught run` "
        "completes by default); the schedule and auto-continue stop after the last",
    )
    # default_factory: a task and an objective are registry entries, looked up when a config is made
    task: TaskConfig = Field(default_factory=TaskConfig, description="what the model is asked, and how many prompts")
    model: ModelConfig = Field(ModelConfig(), description="the base model and its warm start")
    sampling: SamplingConfig = Field(
        SamplingConfig(), description="how each round samples the pool: backend, samples per prompt, B-STaR and budgets"
    )
    verification: VerificationConfig = Field(
        VerificationConfig(), description="which verifier scores samples, and its limits"
    )
    selection: SelectionConfig = Field(SelectionConfig(), description="which correct samples become training rows")
    training: TrainingConfig = Field(
        default_factory=TrainingConfig,
        description="how each round trains the policy: objective, optimizer, LoRA, V-STaR verifier, launcher",
    )
    repair: RepairConfig = Field(
        RepairConfig(), description="second attempts at what failed (STaR rationalization, Re-ReST reflection)"
    )
    evaluation: EvaluationConfig = Field(
        EvaluationConfig(), description="how the base model and every round's policy are scored on held-out prompts"
    )
    operations: OperationsConfig = Field(
        OperationsConfig(),
        description="schedule, auto-continue, Dagster executor, trackers and machine cost (not in the round hash)",
    )
    phases: list[PhaseConfig] = Field(
        default_factory=list,
        description="rounds that run other settings, e.g. SFT rounds then GRPO rounds (selftaught/config/phases.py): "
        "each item names its rounds (1-2, 3+) and the sampling/verification/selection/repair/training keys "
        "laid over this config for them",
    )
    _phase_configs: dict[int, ExperimentConfig] = PrivateAttr(default_factory=dict)

    @field_validator("storage_root")
    @classmethod
    def _root(cls, v: str) -> str:
        from selftaught.objectstore import check_protocol, is_url

        if not v.strip():
            raise ValueError("must name a folder or a URL (an empty root would make the current directory the store)")

        if is_url(v):
            check_protocol(v)
        return v

    # Cross-section rules: each section validates its own keys; the rules below span sections
    # and all live here, in this order (the first that fails is the one reported). They ask the
    # plugins' capabilities (selftaught.plugins), never their names:
    #   _recipes                      repair.mode rationalize needs reference answers (a verifier that
    #                                 reads references, no label_free sources); selection.require_rationale
    #                                 needs a verifier that checks steps; training.dpo.pairs reference needs
    #                                 an objective that trains on pairs; training.verifier (V-STaR) needs
    #                                 evaluation.samples_per_prompt >= 2
    #   _user_verifier                verification.plugin only for a user verifier, whose class (if it is one)
    #                                 is made with verification.plugin.options
    #   _chat_needs_a_real_tokenizer  task.chat_template (and evaluation.task's) need a model.base other than tiny
    #   _objectives                   model.warm_start trains on rows (sft); training.grpo needs an online
    #                                 objective (grpo), which rolls out inside the policy step, so it takes
    #                                 none of the stages that read offline samples (repair, sampling.balance
    #                                 or budget, training.verifier, task.curriculum), no verifier that
    #                                 generates (the judge) and no launcher
    #   _lora_fits_vllm               training.lora.r <= sampling.vllm.max_lora_rank when vllm samples or
    #                                 evaluates a LoRA policy
    #   _round_fits                   a round stays within MAX_ROUND_SAMPLES samples, its last round within
    #                                 MAX_STEPS training steps
    #   _phases                       phases cover disjoint round ranges within max_rounds, and each phase's
    #                                 config (its sections over this one) passes every rule above
    @model_validator(mode="after")
    def _recipes(self):
        verifier = self.verifier_plugin()
        if self.repair.mode == "rationalize" and self.label_free():
            raise ValueError(
                "repair.mode rationalize gives the reference answer as a hint: it needs a task "
                f"with references and a verifier that checks them ({verifier.name} is label-free, "
                "or a source is label_free)"
                if not verifier.caps.needs_reference
                else "repair.mode rationalize gives the reference answer as a hint: it needs a task "
                "with references (a source is label_free)"
            )
        if self.selection.require_rationale and not verifier.caps.checks_steps:
            raise ValueError(
                "selection.require_rationale keeps samples whose steps check out: the "
                f"{verifier.name} verifier checks no steps (those that do: {_names_with('checks_steps')}), "
                "so every sample would be dropped"
            )
        if self.training.dpo.pairs == "reference" and self.training.objective_caps().trains_on != "pairs":
            raise ValueError(
                f"training.dpo.pairs only applies to an objective that trains on pairs "
                f"(training.objective {self.training.objective} trains on "
                f"{self.training.objective_caps().trains_on})"
            )
        if self.training.verifier is not None and self.evaluation.samples_per_prompt < 2:
            raise ValueError(
                "training.verifier (V-STaR) is judged by best-of-k: set evaluation.samples_per_prompt >= 2"
            )
        return self

    @model_validator(mode="after")
    def _user_verifier(self):
        """verification.plugin is for user code (named in verification.verifier, or the task's
        own); a verifier class must be made with its options."""
        plugin = self.verifier_plugin()
        if plugin.builtin:
            if self.verification.plugin != PluginConfig():
                raise ValueError(
                    f"verification.plugin configures user verifiers; the {plugin.name} verifier is built-in"
                )
            return self
        try:
            adapt(plugin.obj, plugin.spec, dict(self.verification.plugin.options))
        except PluginError as exc:
            raise ValueError(str(exc)) from None
        return self

    @model_validator(mode="after")
    def _chat_needs_a_real_tokenizer(self):
        if self.eval_task().chat_template and self.model.base == "tiny":
            raise ValueError(
                "evaluation.task.chat_template needs model.base to be a model with a chat template "
                "(the tiny character tokenizer has none)"
            )
        if self.task.chat_template and self.model.base == "tiny":
            raise ValueError(
                "task.chat_template needs model.base to be a model with a chat template "
                "(the tiny character tokenizer has none)"
            )
        return self

    @model_validator(mode="after")
    def _objectives(self):
        if self.model.warm_start is not None and self.model.warm_start.objective_caps().trains_on != "training_set":
            raise ValueError("model.warm_start trains on reference solutions (rows): objective must be sft")
        t = self.training
        caps = t.objective_caps()
        if t.grpo is not None and not caps.online:
            raise ValueError(
                f"training.grpo only applies with training.objective grpo (an online objective), not {t.objective}"
            )
        if self.model.warm_start is not None and self.model.warm_start.grpo is not None:
            raise ValueError("model.warm_start trains with objective sft: model.warm_start.grpo does not apply")
        if caps.online:
            offline = [
                name
                for name, used in (
                    ("repair.mode", self.repair.mode != "none"),
                    ("sampling.balance", self.sampling.balance is not None),
                    ("sampling.budget", self.sampling.budget.mode != "uniform"),
                    ("training.verifier", t.verifier is not None),
                    ("task.curriculum", self.task.curriculum is not None),
                )
                if used
            ]
            if offline:
                raise ValueError(
                    f"training.objective {t.objective} generates its rollouts inside training; "
                    f"{offline} work on offline samples, which a {t.objective} round does not draw"
                )
            if self.verifier_plugin().caps.generates:
                raise ValueError(
                    f"training.objective {t.objective} with the {self.verifier_plugin().name} verifier "
                    "is not supported: the judge would generate inside every training step (use a "
                    "programmatic verifier or majority)"
                )
        if t.launcher.launched() and not caps.launchable:
            raise ValueError(
                f"training.objective {t.objective} runs in the step's process; training.launcher "
                f"(accelerate launch) supports {_names_with('launchable', 'objective')}"
            )
        return self

    @model_validator(mode="after")
    def _lora_fits_vllm(self):
        uses_vllm = "vllm" in (self.sampling.backend, self.evaluation.backend)
        if uses_vllm and self.training.method == "lora" and self.training.lora.r > self.sampling.vllm.max_lora_rank:
            raise ValueError(
                f"training.lora.r ({self.training.lora.r}) is above sampling.vllm.max_lora_rank "
                f"({self.sampling.vllm.max_lora_rank}); vLLM would refuse the adapter"
            )
        return self

    @model_validator(mode="after")
    def _control_has_rows(self):
        t = self.task
        if self.evaluation.control == "warm_start" and not (
            sum(t.warm_start.values()) if t.procedural() else t.warm_start_size
        ):
            raise ValueError(
                "evaluation.control warm_start trains on the task's warm-start rows, and the task has none: "
                + ("set task.warm_start" if t.procedural() else "set task.warm_start_size")
                + ", or evaluation.control: null (no control)"
            )
        return self

    @model_validator(mode="after")
    def _round_fits(self):
        size = self.round_size()
        if size["samples"] > MAX_ROUND_SAMPLES:
            raise ValueError(
                f"a round would generate {size['samples']:,} samples ({size['prompts']:,} prompts x "
                f"{size['samples_per_prompt']:,}); the limit is {MAX_ROUND_SAMPLES:,}: "
                + (
                    "use fewer training steps, grpo.prompts_per_step or grpo.num_generations"
                    if self.training.objective_caps().online
                    else "use smaller pools"
                )
            )
        if size["steps_last_round"] > MAX_STEPS:
            raise ValueError(
                f"round {self.max_rounds} would train {size['steps_last_round']:,} steps (max_steps "
                f"{self.training.max_steps} x steps_growth {self.training.steps_growth:g}^"
                f"{self.max_rounds - 1}); the limit is {MAX_STEPS:,}"
            )
        return self

    @model_validator(mode="after")
    def _phases(self):
        """Phases cover disjoint, non-empty round ranges that start within max_rounds, and each
        phase's config (its sections laid over this one) is a valid config: built here, once."""
        for i, phase in enumerate(self.phases):
            first, last = phase.span()
            if first > self.max_rounds:
                raise ValueError(
                    f"phase {i + 1} ({phase.describe()}) starts after the last round (max_rounds "
                    f"{self.max_rounds}): it would never run"
                )
            for j, other in enumerate(self.phases[:i]):
                o_first, o_last = other.span()
                if first <= (o_last or MAX_ROUNDS) and o_first <= (last or MAX_ROUNDS):
                    raise ValueError(
                        f"phases {j + 1} ({other.describe()}) and {i + 1} ({phase.describe()}) both cover "
                        f"round {max(first, o_first)}: a round runs one phase"
                    )
        labels = [self.phase_name(i) for i in range(len(self.phases))]
        if len(set(labels)) != len(labels):
            raise ValueError(f"phase names repeat ({', '.join(labels)}): name each phase once")
        base = self.model_dump(exclude_unset=True, exclude={"phases"})
        configs = {}
        for i, phase in enumerate(self.phases):
            try:
                configs[i] = ExperimentConfig.model_validate(merge(base, phase.overlay(), ExperimentConfig))
            except ValidationError as err:
                problems = "; ".join(
                    (".".join(str(p) for p in e["loc"]) + ": " if e["loc"] else "")
                    + ("unknown key" if e["type"] == "extra_forbidden" else e["msg"].removeprefix("Value error, "))
                    for e in err.errors()
                )
                raise ValueError(f"phase {i + 1} ({phase.describe()}): {problems}") from None
        self._phase_configs = configs
        return self

    # ---- phases ---------------------------------------------------------------------------------

    def phase_of(self, index: int) -> int | None:
        """The position in `phases` of the phase that runs round `index`; None: the experiment's config."""
        return next((i for i, phase in enumerate(self.phases) if phase.covers(index)), None)

    def phase_name(self, i: int) -> str:
        return self.phases[i].name or f"phase{i + 1}"

    def phase_label(self, index: int) -> str | None:
        """The name of the phase round `index` runs (None without phases, or outside every phase)."""
        i = self.phase_of(index)
        return None if i is None else self.phase_name(i)

    def for_round(self, index: int) -> ExperimentConfig:
        """The config round `index` runs: its phase's sections laid over this config, or this config."""
        i = self.phase_of(index)
        return self if i is None else self._phase_configs[i]

    def round_size(self) -> dict[str, int]:
        """What one round costs at most: prompts, samples and new tokens generated, training
        steps (first and last round) and held-out prompts."""
        t, s = self.task, self.sampling
        prompts = sum(t.pool.values()) if t.procedural() else t.pool_size
        per_prompt = max(s.n, s.budget.max_n if s.budget.mode == "solve_rate" else 0)
        new_tokens = s.max_new_tokens
        e = self.eval_task()
        evals = sum(e.eval.values()) if e.procedural() else e.eval_size
        steps_last = self.training.max_steps * self.training.steps_growth ** (self.max_rounds - 1)
        if self.training.objective_caps().online:  # rollouts: (the last round's) steps x prompts per step x group
            g = self.training.grpo_settings()
            prompts = int(min(steps_last, 2**62)) * g.prompts_per_step
            per_prompt, new_tokens = g.num_generations, g.max_completion_length
        return {
            "prompts": prompts,
            "samples_per_prompt": per_prompt,
            "samples": prompts * per_prompt,
            "new_tokens": prompts * per_prompt * new_tokens,
            "steps_first_round": self.training.steps_for(1),
            "steps_last_round": int(min(steps_last, 2**62)),
            "eval_prompts": evals,
        }

    # ---- plugins --------------------------------------------------------------------------------

    def verifier_spec(self) -> str:
        """The verifier that judges samples, as the config names it (a registered name, a dotted
        path or a file): verification.verifier, else the task's own."""
        return self.verification.verifier or self.task.plugin().caps.verifier

    def verifier_plugin(self) -> Plugin:
        """The registry entry of verifier_spec()."""
        return VERIFIERS.get(self.verifier_spec())

    def label_free(self) -> bool:
        """Samples are judged without reference answers: a verifier that reads none (majority
        vote: TTRL), or a source marked label_free. GRPO then rolls out without references."""
        return not self.verifier_plugin().caps.needs_reference or any(
            src is not None and src.label_free for src in (self.task.train, self.task.test)
        )

    def eval_task(self) -> TaskConfig:
        """The task whose held-out rows are the evaluation set: evaluation.task, else the task."""
        return self.evaluation.task or self.task

    def evaluation_verifier(self) -> str:
        """The verifier held-out accuracy is scored with: evaluation.verifier; else evaluation.task's
        own; else the one that judges samples when it reads references (the check you chose is the
        check that measures), else the task's own (a label-free verifier never scores evaluation)."""
        if self.evaluation.verifier is not None:
            return self.evaluation.verifier
        if self.evaluation.task is not None:
            return self.evaluation.task.plugin().caps.verifier
        chosen = self.verification.verifier
        if chosen is not None and VERIFIERS.get(chosen).caps.needs_reference:
            return chosen
        return self.task.plugin().caps.verifier

    def frontier_scope(self):
        """What the headline difficulty is picked from (filters.metrics.frontier_of): the task's
        frontier and pool; with evaluation.task, its frontier among the evaluated difficulties."""
        if self.evaluation.task is None:
            return self.task
        return FrontierScope(self.evaluation.task.frontier, [], self.evaluation.task.plugin().caps.level_name)

    def plugins(self) -> dict[str, Plugin]:
        """The task and verifiers this experiment uses: {role: registry entry}."""
        out = {
            "task": self.task.plugin(),
            "verifier": self.verifier_plugin(),
            "evaluation verifier": VERIFIERS.get(self.evaluation_verifier()),
            "objective": OBJECTIVES.get(self.training.objective),
        }
        if self.evaluation.task is not None:
            out["evaluation task"] = self.evaluation.task.plugin()
        return out

    def eval_backend(self) -> str:
        if self.evaluation.backend:
            return self.evaluation.backend
        return self.sampling.backend if self.sampling.backend in ("hf", "vllm") else "hf"

    def round_hash(self) -> str:
        """Hash of what a round's outputs depend on: the config sections (content_hash) and the
        code version (not the name, storage, round count or schedule). A round materialized
        under another value is stale."""
        from selftaught import __version__

        return hashlib.sha256(f"{self.content_hash()}:{__version__}".encode()).hexdigest()[:16]

    def control_hash(self) -> str | None:
        """Hash of what a round's control depends on: the round's (round_hash) and the control's
        definition; None without evaluation.control."""
        control = self.evaluation.control
        if control is None:
            return None
        return hashlib.sha256(f"{self.round_hash()}:control={control}".encode()).hexdigest()[:16]

    def content_hash(self) -> str:
        """Hash of the config sections a round's outputs depend on (ROUND_SECTIONS), without the
        code version: when it stays and the outputs change, the version must change."""
        return self.section_hash(*ROUND_SECTIONS)

    def section_hash(self, *sections: str) -> str:
        """Hash of the named sections (all when none): what a cached artifact depends on. A plugin
        of user code counts by its identity (name, package version, source sha256), not by where
        its file lies; a built-in by its name, as before plugins existed."""
        data = drop_defaults(self.model_dump(mode="json"), HASHED_WHEN_SET)  # keys newer than the runs on disk
        drop_paths(data, NOT_HASHED)
        data["task"]["name"] = self.task.plugin().hash_key()
        if self.verification.verifier is not None:
            data["verification"]["verifier"] = VERIFIERS.get(self.verification.verifier).hash_key()
        if self.evaluation.task is not None:
            data["evaluation"]["task"]["name"] = self.evaluation.task.plugin().hash_key()
        if self.evaluation.verifier is not None:
            data["evaluation"]["verifier"] = VERIFIERS.get(self.evaluation.verifier).hash_key()
        if self.evaluation.lm_eval is not None:  # the task files' contents, not their folder
            data["evaluation"]["lm_eval"]["include_path"] = self.evaluation.lm_eval.fingerprint()
        data.pop("phases", None)  # a round's hash is its own config's (for_round), whatever the other phases say
        picked = {k: data[k] for k in sections} if sections else data
        return hashlib.sha256(json.dumps(picked, sort_keys=True).encode()).hexdigest()[:16]


# The sections a round's outputs depend on (its round hash); name, storage_root, max_rounds and
# operations are not among them.
ROUND_SECTIONS = ("task", "model", "sampling", "verification", "selection", "repair", "training", "evaluation")


def drop_defaults(data: dict, entries: dict[tuple[str, ...], object]) -> dict:
    """`data` (a config dump) without the keys of `entries` that hold their default value."""
    for path, default in entries.items():
        *parents, leaf = path
        node: object = data
        for part in parents:
            node = node.get(part) if isinstance(node, dict) else None
        if isinstance(node, dict) and node.get(leaf, default) == default:
            node.pop(leaf, None)
    return data


def drop_paths(data: dict, paths: tuple[tuple[str, ...], ...]) -> dict:
    """`data` (a config dump) without the keys at `paths`, whatever they hold."""
    for *parents, leaf in paths:
        node: object = data
        for part in parents:
            node = node.get(part) if isinstance(node, dict) else None
        if isinstance(node, dict):
            node.pop(leaf, None)
    return data


# Keys that never count in the hashes: where something runs, not what it computes. The
# interpreter of the vllm job is a path on one machine; the same config run elsewhere (another
# checkout, another venv) computes the same rounds, as with storage_root.
# The control (evaluation.control) is not what a round computes either: it is trained beside the
# round, and its assets carry their own hash (control_hash).
NOT_HASHED: tuple[tuple[str, ...], ...] = (("sampling", "vllm", "python"), ("evaluation", "control"))

# Keys added after 0.3.0 count in the hashes only when set to something else than their
# default, so rounds and base models made before they existed do not all turn stale.
HASHED_WHEN_SET: dict[tuple[str, ...], object] = {
    ("sampling", "dtype"): "float32",
    ("sampling", "prompt_band"): None,
    ("training", "bf16"): None,
    ("verification", "sandbox", "allow_unisolated"): False,
    ("verification", "max_audit_disagreement"): None,
    ("verification", "audit_rows"): 20_000,
    ("model", "warm_start", "bf16"): None,
    ("training", "verifier", "bf16"): None,
    ("training", "grpo"): None,
    ("model", "warm_start", "grpo"): None,
    ("training", "dtype"): "auto",
    ("model", "warm_start", "dtype"): "auto",
    ("training", "trl"): {},
    ("model", "warm_start", "trl"): {},
    ("task", "test_share"): 0.2,
    ("task", "options"): {},
    ("evaluation", "task"): None,
    ("evaluation", "verifier"): None,
    ("evaluation", "lm_eval"): None,
    ("verification", "plugin"): {
        "threshold": None,
        "timeout_seconds": 60.0,
        "batch_size": 256,
        "isolated": True,
        "options": {},
    },
    ("operations", "tracking"): TrackingConfig().model_dump(mode="json"),
    ("operations", "price_per_hour"): None,
    ("operations", "auto_continue", "min_points_per_hour"): None,
}
# ... and in the base model's cache key (assets/setup.py), which dumps the model section as is.
BASE_KEY_WHEN_SET = {
    path[1:]: default
    for path, default in HASHED_WHEN_SET.items()
    if path in {("model", "warm_start", "dtype"), ("model", "warm_start", "trl")}
}
