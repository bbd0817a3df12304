"""The process a user verifier runs in (filters.plugin_verifier.Worker): `python -m
filters.plugin_worker`, one JSON request per line on stdin, one answer per line on the
original stdout. The verifier's own prints go to stderr (the parent's log file), so they
cannot corrupt an answer.

    {"load": <Plugin.load>, "options": {...}, "threshold": 1.0, "spec": "..."}  -> {"ok": true}
    {"batch": {"prompts": [...], "completions": [...], "references": [...],
               "prompt_ids": [...], "rows": [...]}}                              -> {"checks": [[...], ...]}
"""

from __future__ import annotations

import json
import os
import sys


def main() -> None:
    answers = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)  # print() in the user's code goes to the log, not into an answer
    sys.stdout = sys.stderr
    from filters.plugin_verifier import adapt, check_to_json, run_batch
    from selftaught.plugins import PluginError, load

    adapted, threshold = None, 1.0
    for line in sys.stdin:
        message = json.loads(line)
        if "load" in message:
            try:
                adapted = adapt(load(message["load"], "verifier"), message["spec"], message.get("options") or {})
            except PluginError as exc:
                answers.write(json.dumps({"fatal": str(exc)}) + "\n")
                return
            threshold = message["threshold"]
            answers.write(json.dumps({"ok": True}) + "\n")
            continue
        if adapted is None:  # run_batch would fail on it
            raise RuntimeError("a batch came before the verifier was loaded")
        checks = run_batch(adapted, message["batch"], threshold)
        answers.write(json.dumps({"checks": [check_to_json(c) for c in checks]}, default=str) + "\n")


if __name__ == "__main__":
    main()
