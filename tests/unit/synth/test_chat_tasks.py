"""The procedural chat tasks (synth/chat_tasks.py): references and worked solutions agree with
the question, levels mean what they say, and ids are stable and disjoint across splits."""

import re

import pytest

from filters.numeric import extract_number
from synth import chat_tasks


@pytest.mark.parametrize("task", sorted(chat_tasks.GENERATORS))
def test_references_and_worked_solutions_agree(task):
    levels = {2: 15, 3: 15, 5: 15, 8: 15} if task == "list_max" else {1: 15, 2: 15, 3: 15, 5: 15}
    df = chat_tasks.make_problems(task, levels, seed=3, render=lambda q: q)
    assert df.height == 60 and df["prompt_id"].n_unique() == 60
    for q, ref, target, level in df.select("prompt", "reference", "target", "difficulty").iter_rows():
        assert q.endswith(chat_tasks.ANSWER_FORMAT)
        assert extract_number(target) == (ref, "####")  # the warm-start target verifies as correct
        if task == "list_max":
            xs = [int(x) for x in re.search(r"list: ([\d, ]+)\?", q)[1].split(", ")]
            assert len(xs) == level and int(ref) == max(xs)
        elif task == "addition":
            a, b = map(int, re.search(r"What is (\d+) \+ (\d+)\?", q).groups())
            assert int(ref) == a + b and len(str(a)) == level
        else:  # replay the story
            n = int(re.search(r"has (\d+) ", q)[1])
            steps = re.findall(r"(gets|gives away) (\d+)", q)
            for verb, k in steps:
                n += int(k) if verb == "gets" else -int(k)
            assert len(steps) == level and int(ref) == n >= 0


def test_same_seed_same_problems_and_exclusion():
    one = chat_tasks.make_problems("story", {2: 10}, seed=1, render=str.upper)
    again = chat_tasks.make_problems("story", {2: 10}, seed=1, render=str.upper)
    assert one.equals(again) and one["prompt"][0].isupper()  # render is applied
    other = chat_tasks.make_problems("story", {2: 10}, seed=1, render=str.upper, exclude=set(one["prompt_id"]))
    assert not set(one["prompt_id"]) & set(other["prompt_id"])
    with pytest.raises(ValueError, match="a list needs 2 or more numbers"):
        chat_tasks.make_problems("list_max", {1: 1}, seed=0, render=str)
    with pytest.raises(ValueError, match="ran out of distinct level-1 problems"):
        chat_tasks.make_problems("addition", {1: 120}, seed=0, render=str)  # 100 ordered pairs exist


def test_every_generated_task_is_registered_as_a_procedural_chat_task():
    from selftaught.config import TaskConfig
    from selftaught.plugins import TASKS
    from synth.tasks import ChatTask

    assert {p.name for p in TASKS.entries() if p.obj is ChatTask} == set(chat_tasks.GENERATORS)
    assert all(
        TaskConfig(name=t, warm_start={2: 1}, pool={2: 1}, eval={2: 1}).procedural() for t in chat_tasks.GENERATORS
    )
