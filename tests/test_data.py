"""Offline training prompts from the standard library: disjoint from HumanEval, deduplicated, both styles."""

import re

import pytest

from hf_jacobi.benchmark import load_humaneval
from hf_jacobi.data import stdlib_coding_prompts


def test_stdlib_prompts_are_disjoint_from_humaneval_and_unique():
    entry_points = {p["entry_point"] for p in load_humaneval()}
    instruction = stdlib_coding_prompts(templates_per_task=3)
    completion = stdlib_coding_prompts(style="completion")
    assert len(instruction) > 1000 and len(completion) > 300
    assert len(set(instruction)) == len(instruction) and len(set(completion)) == len(completion)
    names = {re.search(r"def (\w+)\(", p).group(1) for p in completion}
    assert names and not names & entry_points
    assert all(p.startswith("Complete this Python function:\n```python\ndef ") and p.endswith('"""\n```')
               for p in completion)
    assert stdlib_coding_prompts(5, seed=1) == stdlib_coding_prompts(5, seed=1) != stdlib_coding_prompts(5, seed=2)


@pytest.mark.parametrize("kwargs, message", [(dict(style="chat"), "style"), (dict(templates_per_task=4), "templates")])
def test_stdlib_prompts_bad_input(kwargs, message):
    with pytest.raises(ValueError, match=message):
        stdlib_coding_prompts(**kwargs)
