"""The Dagster graph of every preset, snapshotted: a change to asset keys, their
dependencies, jobs, schedules or sensors, or to what a preset computes (its round
hash), shows in review as a diff of tests/snapshots/definitions.json. After an
intended change:

    SELFTAUGHT_UPDATE_SNAPSHOTS=1 .venv/bin/python -m pytest tests/project/test_definitions_snapshot.py
"""

import json
import os
from pathlib import Path

from pipelines.build import build_definitions
from pipelines.progress import ROUND_ORDER, UPSTREAM
from selftaught.config import load_config
from tests.helpers import ROOT

SNAPSHOT = ROOT / "tests" / "snapshots" / "definitions.json"


def graph_of(config: Path) -> dict:
    """Asset keys with their parents, jobs, schedules and sensors; the experiment's key
    prefix is written <experiment>, so presets with the same graph compare equal."""
    defs = build_definitions(config)
    graph = defs.resolve_asset_graph()
    prefix = next(iter(graph.get_all_asset_keys())).path[0]

    def name(text: str) -> str:
        return text.replace(prefix, "<experiment>", 1)

    return {
        "assets": {
            name(key.to_user_string()): sorted(name(d.to_user_string()) for d in graph.get(key).parent_keys)
            for key in sorted(graph.get_all_asset_keys(), key=lambda k: k.to_user_string())
        },
        "jobs": sorted(j.name for j in defs.resolve_all_job_defs()),
        "schedules": sorted(name(s.name) for s in defs.schedules or []),
        "sensors": sorted(name(s.name) for s in defs.sensors or []),
    }


def snapshot() -> dict:
    """{"graph": the demo's, "presets": those with that graph, "graph of <p>": any other}."""
    graphs = {p.stem: graph_of(p) for p in sorted((ROOT / "pipelines" / "presets").glob("*.yaml"))}
    out = {"graph": graphs["demo"], "presets": sorted(n for n, g in graphs.items() if g == graphs["demo"])}
    out.update({f"graph of {n}": g for n, g in graphs.items() if g != graphs["demo"]})
    # What each preset computes (its resolved config, `extends` applied): a change shows here too.
    out["round_hash"] = {
        p.stem: load_config(p).round_hash() for p in sorted((ROOT / "pipelines" / "presets").glob("*.yaml"))
    }
    return out


def test_every_presets_graph_matches_the_snapshot():
    current = snapshot()
    if os.environ.get("SELFTAUGHT_UPDATE_SNAPSHOTS") == "1" or not SNAPSHOT.is_file():
        SNAPSHOT.write_text(json.dumps(current, indent=1, sort_keys=True) + "\n")
    assert current == json.loads(SNAPSHOT.read_text()), (
        "the Dagster graph changed: review it, then SELFTAUGHT_UPDATE_SNAPSHOTS=1 to record it"
    )


def test_the_round_order_is_the_asset_graph():
    assert ROUND_ORDER == [
        "prompts",
        "sampling_plan",
        "samples",
        "verdicts",
        "repairs",
        "training_set",
        "pairs",
        "policy",
        "evaluation",
        "round_diff",
    ]
    assert UPSTREAM["training_set"] == ["prompts", "repairs", "samples", "sampling_plan", "verdicts"]
    assert UPSTREAM["policy"] == ["pairs", "prompts", "training_set"] and UPSTREAM["prompts"] == []
