"""Building Definitions (pipelines/build.py): a folder of experiments on one storage root is refused,
the Kubernetes example, the stages' placement tags."""

import pytest

from pipelines.build import build_definitions
from selftaught.config import ConfigError
from tests.helpers import ROOT, make_tiny_config


def test_the_kubernetes_example_is_a_valid_experiment_and_needs_dagster_k8s():
    from selftaught.config import ConfigError, load_config

    path = ROOT / "deploy" / "k8s" / "experiment.yaml"
    cfg = load_config(path)
    assert cfg.operations.executor.kind == "k8s" and cfg.storage_root.startswith("/data/runs")
    try:
        import dagster_k8s  # noqa: F401
    except ImportError:
        with pytest.raises(ConfigError, match="pip install dagster-k8s"):
            build_definitions(path)


def test_stages_carry_their_placement(tmp_path):
    defs = build_definitions(make_tiny_config(tmp_path))
    graph = defs.resolve_asset_graph()
    where = {n.key.path[-1]: n.tags.get("selftaught/resource") for n in graph.asset_nodes}
    assert {k for k, v in where.items() if v == "gpu"} == {
        "base_model",
        "sampling_plan",
        "samples",
        "repairs",
        "policy",
        "evaluation",
    }
    job = defs.resolve_job_def("round")
    queues = {node.name: node.tags.get("dagster-celery/queue") for node in job.graph.node_defs}
    assert queues["samples"] == "gpu" and queues["verdicts"] == "cpu" and queues["policy"] == "gpu"


def test_a_folder_of_experiments_on_one_storage_root_is_refused(tmp_path, tiny_config):
    from pipelines.build import build_folder_definitions
    from tests.helpers import copy_config

    folder = tmp_path / "experiments"
    folder.mkdir()
    copy_config(tiny_config, folder / "a.yaml", name="exp-a")
    copy_config(tiny_config, folder / "b.yaml", name="exp-b")  # the same storage_root
    with pytest.raises(ConfigError, match=r"experiment 'exp-b' has the storage_root of experiment 'exp_a'"):
        build_folder_definitions(folder)
