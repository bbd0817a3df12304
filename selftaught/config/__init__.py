"""The experiment config: one YAML file, validated strictly.

Unknown keys and wrong types are errors that name the key and the file, so a
typo never silently falls back to a default.

One module per config section (task, training, model, sampling, verification,
selection and repair, evaluation, operations), on the bounds and strict base of
limits.py; experiment.py joins them in ExperimentConfig, with every rule that
spans sections; load.py reads a YAML file (`extends:` chains included). Import
from here: `from selftaught.config import load_config, ExperimentConfig`.
"""

from selftaught.config.evaluation import EvaluationConfig, LmEvalConfig
from selftaught.config.experiment import HASHED_WHEN_SET, ExperimentConfig
from selftaught.config.limits import (
    MAX_BATCH,
    MAX_PROMPTS,
    MAX_ROUND_SAMPLES,
    MAX_SAMPLES,
    MAX_STEPS,
    MAX_TOKENS,
    ConfigError,
    Strict,
)
from selftaught.config.load import (  # noqa: F401
    PRESETS,
    _describe,
    _merge,
    _parent_path,
    _read_yaml,
    _section_model,
    _UniqueKeyLoader,
    config_files,
    load_config,
    parse_config,
    parse_settings,
    resolve_yaml,
    with_overrides,
)
from selftaught.config.model import ModelConfig, TinyModelConfig
from selftaught.config.operations import AutoContinueConfig, ExecutorConfig, OperationsConfig, TrackingConfig
from selftaught.config.phases import PhaseConfig
from selftaught.config.sampling import (
    BalanceConfig,
    BudgetConfig,
    OpenAIConfig,
    PromptBandConfig,
    SamplingConfig,
    VLLMConfig,
)
from selftaught.config.selection import HINT_TEMPLATE, REFLECT_TEMPLATE, RepairConfig, SelectionConfig
from selftaught.config.task import CurriculumConfig, SourceConfig, TaskConfig, _counts  # noqa: F401
from selftaught.config.training import (
    LauncherConfig,
    LoraConfig,
    PreferenceConfig,
    TrainingConfig,
    VerifierTrainingConfig,
)
from selftaught.config.verification import JUDGE_TEMPLATE, JudgeConfig, PluginConfig, SandboxConfig, VerificationConfig

# The private helpers imported above (_merge, _UniqueKeyLoader, ...) stay importable from here,
# as they were from the single module, but are not part of the public names.
__all__ = [
    "HASHED_WHEN_SET",
    "HINT_TEMPLATE",
    "JUDGE_TEMPLATE",
    "MAX_BATCH",
    "MAX_PROMPTS",
    "MAX_ROUND_SAMPLES",
    "MAX_SAMPLES",
    "MAX_STEPS",
    "MAX_TOKENS",
    "PRESETS",
    "REFLECT_TEMPLATE",
    "AutoContinueConfig",
    "BalanceConfig",
    "BudgetConfig",
    "ConfigError",
    "CurriculumConfig",
    "EvaluationConfig",
    "LmEvalConfig",
    "ExecutorConfig",
    "ExperimentConfig",
    "JudgeConfig",
    "LauncherConfig",
    "LoraConfig",
    "ModelConfig",
    "OpenAIConfig",
    "OperationsConfig",
    "PluginConfig",
    "PreferenceConfig",
    "PromptBandConfig",
    "RepairConfig",
    "SamplingConfig",
    "SandboxConfig",
    "SelectionConfig",
    "SourceConfig",
    "PhaseConfig",
    "Strict",
    "TaskConfig",
    "TinyModelConfig",
    "TrackingConfig",
    "TrainingConfig",
    "VLLMConfig",
    "VerificationConfig",
    "VerifierTrainingConfig",
    "config_files",
    "load_config",
    "parse_config",
    "parse_settings",
    "resolve_yaml",
    "with_overrides",
]
