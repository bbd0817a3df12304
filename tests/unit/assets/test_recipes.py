"""The recipe assets' helpers (assets/recipes.py): the reflection warm start shows a wrong
solution, its feedback and the right one."""

from selftaught.config import parse_config


def test_reflection_warm_start_shows_a_wrong_solution_its_feedback_and_the_right_one():
    from assets.recipes import repair_format_examples
    from synth.tasks import make_task

    cfg = parse_config(
        {
            "repair": {"mode": "reflect", "warm_start_share": 1.0},
            "task": {"warm_start": {2: 10}, "pool": {2: 5}, "eval": {2: 5}, "frontier": 2},
        }
    )
    warm = make_task(cfg.task).warm_start()
    ex = repair_format_examples(cfg, warm)
    target = dict(zip(warm["prompt"], warm["target"]))
    ref = dict(zip(warm["prompt"], warm["reference"]))
    assert 0 < ex.height <= warm.height
    for prompt, completion in ex.iter_rows():
        original = prompt.rsplit("Try again. ", 1)[1]
        assert completion == target[original]  # the right solution follows the reflection
        wrong = prompt[len(original) :].split(" Feedback: ")[0]
        assert wrong in target.values() and wrong != target[original]
        assert f"Feedback: the answer {wrong.rsplit(' ', 1)[1]} is wrong." in prompt
        assert f"answer {ref[original]} " not in prompt.split("Feedback:")[1]
