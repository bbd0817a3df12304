"""Where each stage runs on a cluster: GPU stages (generation, training, evaluation) and
CPU stages (tables, verification). Asset tags show it in the UI; op tags tell the
executors: the dagster-celery queue a step goes to, and the pod resources the
dagster-k8s executor requests. Other executors ignore them."""

GPU_POD = {
    "container_config": {"resources": {"requests": {"cpu": "4", "memory": "32Gi"}, "limits": {"nvidia.com/gpu": "1"}}}
}
CPU_POD = {"container_config": {"resources": {"requests": {"cpu": "2", "memory": "4Gi"}}}}


def on(kind: str) -> dict:
    """Keyword arguments for @dg.asset: on("gpu") or on("cpu")."""
    pod = GPU_POD if kind == "gpu" else CPU_POD
    return {"tags": {"selftaught/resource": kind}, "op_tags": {"dagster-celery/queue": kind, "dagster-k8s/config": pod}}
