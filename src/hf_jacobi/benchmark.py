"""Side-by-side decoding benchmark on HumanEval prompts: HF greedy, HF prompt lookup and Jacobi decoding.

All methods run in one process on the same prompts, interleaved prompt by prompt after a warm-up, so the machine's
noise hits them alike; report ratios. Forwards are counted with a forward pre-hook on the model, the same way for
every method, so TPF (tokens per decoding forward, prefill excluded) is comparable across methods.
"""

from __future__ import annotations

import json
import os
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch
from tqdm.auto import tqdm

from .data import humaneval_instruction, load_humaneval
from .filler_gate import gated_filler
from .generation import JacobiConfig
from .generation.auto import interpolate_cost, measure_forward_costs
from .generation.configuration_jacobi import MODEL_DEFAULTS_OFF
from .loading import chat_prompt


@dataclass
class Method:
    """A decoding method: a name, the extra `generate` kwargs that select it, and which of the models runs it.

    Jacobi methods carry their `block_size` and a `variant` (the plot draws one line per model and variant).
    """

    name: str
    kwargs: dict = field(default_factory=dict)
    block_size: int | None = None
    model: str = "model"
    variant: str | None = None


def default_methods(
    block_sizes=(4, 16, 64),
    prompt_lookup: bool = True,
    model: str = "model",
    multiblock: tuple[int, int] | None = None,
    auto: bool = False,
    lookup: int | None = None,
    lookup_draft=(),
    lookup_num_tokens: int = 7,
    fresh_rows=(),
    fresh_tails=(),
) -> list[Method]:
    """HF greedy (the reference of its model), optionally HF prompt lookup, Jacobi at each block size, optionally
    multi-block Jacobi (`(num_blocks, pool_size)`) and Jacobi with context-lookup candidate rows (`lookup_ngram`) at
    each block size, Jacobi with the lookup continuation in the draft (`lookup_mode="draft"`, up to
    `lookup_num_tokens`) at each size of `lookup_draft`, Jacobi with the clean carry and `fresh_rows` rows at each
    block size for each count in `fresh_rows` and with `fresh_tails` tails at each block size that holds them (`n >=
    T*T`) for each count in `fresh_tails` (models trained with a token filler; with `lookup`, also beside a lookup
    row), and `block_size="auto"`. Settings a method leaves out come from its model's generation config (e.g. the
    filler and carry it was trained with), except fresh tails and context lookup: off unless the method names them,
    so that a method measures what its name says on any model; `check_methods` resolves them against the models."""
    prefix = "" if model == "model" else f"{model}/"

    def jacobi(**settings) -> dict:  # kwargs, not a JacobiConfig, so that the model's config fills the rest
        return {"generation_mode": "jacobi", **MODEL_DEFAULTS_OFF, **settings}

    methods = [Method(f"{prefix}hf_greedy", model=model)]
    if prompt_lookup:
        methods.append(Method(f"{prefix}hf_prompt_lookup", {"prompt_lookup_num_tokens": 10}, model=model))
    for n in block_sizes:
        methods.append(Method(f"{prefix}jacobi_n{n}", jacobi(block_size=n), n, model, "Jacobi"))
        if multiblock is not None:
            k, pool = multiblock
            methods.append(Method(f"{prefix}jacobi_n{n}_K{k}_pool{pool}", jacobi(block_size=n, num_blocks=k,
                                  pool_size=pool), n, model, f"Jacobi K={k} pool={pool}"))
        if lookup:
            methods.append(Method(f"{prefix}jacobi_n{n}_lookup{lookup}", jacobi(block_size=n, lookup_ngram=lookup),
                                  n, model, f"Jacobi + lookup{lookup} row"))
        for rows in fresh_rows:
            methods.append(Method(f"{prefix}jacobi_n{n}_clean_rows{rows}",
                                  jacobi(block_size=n, draft_carry="clean", fresh_rows=rows), n, model,
                                  f"Jacobi clean carry + {rows} fresh-tail rows"))
        for tails in (t for t in fresh_tails if n >= t * t):
            methods.append(Method(f"{prefix}jacobi_n{n}_clean_tails{tails}",
                                  jacobi(block_size=n, draft_carry="clean", fresh_tails=tails), n, model,
                                  f"Jacobi clean carry + {tails} fresh tails"))
            if lookup:
                methods.append(Method(f"{prefix}jacobi_n{n}_clean_tails{tails}_lookup{lookup}",
                                      jacobi(block_size=n, draft_carry="clean", fresh_tails=tails,
                                             lookup_ngram=lookup), n, model,
                                      f"Jacobi clean carry + {tails} fresh tails + lookup{lookup} row"))
    for n in lookup_draft:
        ngram = lookup or 2
        settings = jacobi(block_size=n, lookup_ngram=ngram, lookup_mode="draft", lookup_num_tokens=lookup_num_tokens)
        methods.append(Method(f"{prefix}jacobi_n{n}_lookup{ngram}_draft{lookup_num_tokens}", settings, n, model,
                              f"lookup{ngram} in draft ({lookup_num_tokens})"))
    if auto:
        methods.append(Method(f"{prefix}jacobi_auto", jacobi(block_size="auto"), model=model))
    return methods


def check_methods(models: dict, methods: list[Method]) -> None:
    """Resolve every Jacobi method's settings against its model's generation config, so that a bad combination (e.g.
    fresh rows for a model without a token filler) fails before anything is decoded, naming the method."""
    for method in methods:
        if method.kwargs.get("generation_mode") != "jacobi":
            continue
        settings = {k: v for k, v in method.kwargs.items() if k != "generation_mode"}
        try:
            JacobiConfig.from_generation_config(getattr(models[method.model], "generation_config", None), **settings)
        except (TypeError, ValueError) as error:
            raise ValueError(f"{method.name}: {error}") from None


def humaneval_prompt(tokenizer, problem: dict) -> str:
    return chat_prompt(tokenizer, humaneval_instruction(problem))


def extract_code(completion: str) -> str:
    """The first fenced code block of a chat answer (or the whole answer when there is none)."""
    match = re.search(r"```(?:python)?\n(.*?)(?:```|$)", completion, re.DOTALL)
    return match.group(1) if match else completion


def untrusted_env() -> dict:
    """The whole environment of a model-written program: a minimal PATH and nothing inherited (no proxies, tokens,
    PYTHONPATH, HOME, ...)."""
    env = {"PATH": os.defpath}
    if os.name == "nt":  # Python cannot start on Windows without it
        env["SYSTEMROOT"] = os.environ.get("SYSTEMROOT", r"C:\Windows")
    return env


def run_untrusted_program(program: str, timeout: float = 10.0) -> int | None:
    """Run a model-written Python program; returns its exit status, or None when it ran past `timeout` seconds.

    It runs in a fresh temporary directory (removed afterwards) as its working directory, in a subprocess of
    `python -I` (isolated mode: no PYTHON* variables, no user site-packages, no script folder on `sys.path`) with
    `untrusted_env()` as its whole environment, no standard input and its output discarded; on POSIX in a session of
    its own, killed with everything it started when it ends or times out.

    This is NOT a sandbox: the program runs as you, with your files, your network and your machine's resources.
    Run untrusted code only where that is acceptable (a throwaway container or VM).
    """
    with tempfile.TemporaryDirectory(prefix="hf_jacobi_exec_") as folder:
        script = Path(folder) / "program.py"
        script.write_text(program, encoding="utf-8")
        process = subprocess.Popen(
            [sys.executable, "-I", script.name], cwd=folder, env=untrusted_env(), stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=os.name == "posix",
        )
        try:
            return process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return None
        finally:
            _kill_tree(process)


def _kill_tree(process: subprocess.Popen) -> None:
    """Kill the program and (POSIX) whatever it left running in its session."""
    if os.name == "posix":
        try:
            os.killpg(process.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
    if process.poll() is None:
        process.kill()
    process.wait()


def passes_tests(problem: dict, completion: str, timeout: float = 10.0) -> bool:
    """Run the HumanEval tests of `problem` on a completion: executes model-written code, see
    `run_untrusted_program` (not a sandbox)."""
    program = (
        problem["prompt"] + "\n" + extract_code(completion) + "\n\n" + problem["test"]
        + f"\n\ncheck({problem['entry_point']})\n"
    )
    return run_untrusted_program(program, timeout) == 0


class ForwardCounter:
    """Counts forward calls of a model and the tokens each one feeds (a pre-hook, so every method is counted the
    same way); `fed` excludes the first forward of a generate call (the prefill) once `reset` is called before it."""

    def __init__(self, model):
        self.count = 0
        self.fed = 0
        # A PeftModel's generate calls the model inside it, not its own forward
        inner = model.get_base_model() if hasattr(model, "get_base_model") else model
        self.handle = inner.register_forward_pre_hook(self._hook, with_kwargs=True)

    def reset(self):
        self.count = self.fed = 0

    def _hook(self, module, args, kwargs):
        self.count += 1
        ids = kwargs.get("input_ids", args[0] if args else None)
        if self.count > 1 and ids is not None:
            self.fed += ids.numel()  # batch 1: candidate rows x draft length

    def remove(self):
        self.handle.remove()


def run_benchmark(
    models,
    tokenizer,
    problems: list[dict],
    methods: list[Method],
    max_new_tokens: int = 128,
    pass_at_1: bool = False,
    progress: bool = True,
    forward_costs: bool = True,
) -> dict:
    """Decode every problem with every method, interleaved prompt by prompt; per-method aggregates and samples.

    Args:
        models: a model, or a dict name -> model for methods of several models (e.g. base and trained) in one run.
        pass_at_1: also run the HumanEval tests on every answer (`passes_tests`). This executes model-written code on
            this machine, which is not sandboxed; off by default.
        forward_costs: time forwards of 1..128 new tokens of every model after the run and add the efficiency
            columns (`add_efficiency`).
    """
    models = models if isinstance(models, dict) else {"model": models}
    device = next(iter(models.values())).device
    prompts = [humaneval_prompt(tokenizer, p) for p in problems]
    encoded = [tokenizer(p, return_tensors="pt").to(device) for p in prompts]
    base = {"do_sample": False, "max_new_tokens": max_new_tokens, "pad_token_id": tokenizer.pad_token_id}
    counters = {name: ForwardCounter(model) for name, model in models.items()}
    try:
        for method in methods:  # warm-up
            models[method.model].generate(**encoded[0], **{**base, "max_new_tokens": 8}, **method.kwargs)
        records = {m.name: [] for m in methods}
        for problem, inputs in tqdm(list(zip(problems, encoded)), desc="benchmark", disable=not progress):
            for method in methods:
                counter = counters[method.model]
                counter.reset()
                if device.type == "cuda":
                    torch.cuda.synchronize()
                start = time.perf_counter()
                out = models[method.model].generate(**inputs, **base, **method.kwargs)
                if device.type == "cuda":
                    torch.cuda.synchronize()
                seconds = time.perf_counter() - start
                new = out[0, inputs["input_ids"].shape[1] :]
                records[method.name].append(
                    {"task_id": problem["task_id"], "tokens": new.tolist(), "seconds": seconds,
                     "forwards": counter.count, "fed": counter.fed}
                )
    finally:
        for counter in counters.values():
            counter.remove()
    result = summarize(records, methods, problems, tokenizer, pass_at_1)
    if forward_costs:
        context = int(statistics.median(len(e["input_ids"][0]) for e in encoded)) + max_new_tokens // 2
        costs = {name: measure_forward_costs(model, sizes=COST_SIZES, context_length=context,
                                             filler_token_id=gated_filler(model))
                 for name, model in models.items()}
        add_efficiency(result, costs)
    return result


#: Forward widths timed for the efficiency column (tokens fed in one forward).
COST_SIZES = (1, 2, 4, 8, 16, 32, 64, 128)


def add_efficiency(result: dict, costs: dict[str, dict[int, float]]) -> None:
    """Add `width`, `cost_ratio` and `efficiency` to every method of `result` (in place).

    A method that commits `TPF` tokens per forward of `w` fed tokens can at best be `TPF * cost(1) / cost(w)` times
    faster than greedy decoding (one token per forward of cost `cost(1)`), `cost` being the measured time of a forward
    of that many new tokens on this device and dtype. `efficiency` is the measured speedup over that ideal: the share
    the implementation reaches (Python, cache bookkeeping, lookup and processors are what it loses).
    """
    for row in result["methods"]:
        model_costs = costs.get(row["model"])
        if model_costs is None or row.get("speedup") is None:
            continue
        row["cost_ratio"] = interpolate_cost(model_costs, max(1.0, row["width"])) / model_costs[1]
        row["efficiency"] = row["speedup"] / (row["tpf"] / row["cost_ratio"])
    result["forward_costs"] = {name: {str(k): v for k, v in c.items()} for name, c in costs.items()}


def _greedy_of(method: Method, methods: list[Method]) -> str | None:
    """Name of the HF greedy method of the same model: the reference for exact match and speedup."""
    return next((m.name for m in methods if m.model == method.model and m.name.endswith("hf_greedy")), None)


def summarize(records, methods, problems, tokenizer, pass_at_1: bool) -> dict:
    by_id = {p["task_id"]: p for p in problems}
    rows = {}
    for method in methods:
        recs = records[method.name]
        tokens = sum(len(r["tokens"]) for r in recs)
        seconds = sum(r["seconds"] for r in recs)
        # TPF: tokens made by decoding forwards (the first comes from the prefill) per decoding forward
        decode_tokens = sum(len(r["tokens"]) - 1 for r in recs)
        decode_forwards = sum(r["forwards"] - 1 for r in recs)
        decode_fed = sum(r.get("fed", 0) for r in recs)
        row = {
            "method": method.name,
            "model": method.model,
            "block_size": method.block_size,
            "variant": method.variant,
            "tokens": tokens,
            "seconds": seconds,
            "tokens_per_s": tokens / seconds,
            "tpf": decode_tokens / max(decode_forwards, 1),
            "width": decode_fed / max(decode_forwards, 1),  # tokens fed per decoding forward
        }
        if pass_at_1:
            passed = [passes_tests(by_id[r["task_id"]], tokenizer.decode(r["tokens"], skip_special_tokens=True))
                      for r in recs]
            row["pass_at_1"] = sum(passed) / len(passed)
        rows[method.name] = row
    for method in methods:
        reference = _greedy_of(method, methods)
        if reference is None:
            continue
        ref_tokens = {r["task_id"]: r["tokens"] for r in records[reference]}
        recs = records[method.name]
        rows[method.name]["exact_match"] = sum(r["tokens"] == ref_tokens[r["task_id"]] for r in recs) / len(recs)
        rows[method.name]["speedup"] = rows[method.name]["tokens_per_s"] / rows[reference]["tokens_per_s"]
    return {"methods": list(rows.values()), "samples": records}


#: Columns of `markdown_table` (the model is in the method's name).
TABLE_COLUMNS = ("method", "tpf", "width", "cost_ratio", "tokens_per_s", "speedup", "efficiency", "exact_match",
                 "pass_at_1")


def markdown_table(result: dict, columns=TABLE_COLUMNS) -> str:
    present = [c for c in columns if any(c in r for r in result["methods"])]
    lines = ["| " + " | ".join(present) + " |", "|" + "---|" * len(present)]
    for row in result["methods"]:
        cells = []
        for c in present:
            value = row.get(c)
            if isinstance(value, float):
                value = f"{100 * value:.1f}%" if c in ("exact_match", "pass_at_1") else f"{value:.2f}"
            cells.append("" if value is None else str(value))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


PASS_AT_1_NOT_COMPUTED = (
    "pass@1 not computed: the generated code was not executed (`hf-jacobi bench --execute-code` or "
    "`run_benchmark(pass_at_1=True)` runs the HumanEval tests on it; that runs untrusted code, not sandboxed)."
)


def pass_at_1_computed(result: dict) -> bool:
    return any("pass_at_1" in row for row in result["methods"])


def plot(result: dict, path: Path) -> None:
    """Speedup and TPF against block size, one line per model and Jacobi variant (HF baselines as horizontal
    lines)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = result["methods"]
    fig, axes = plt.subplots(1, 2, figsize=(10, 5))
    for ax, key, label in ((axes[0], "speedup", "speedup vs HF greedy"), (axes[1], "tpf", "tokens / forward")):
        for i, model in enumerate(dict.fromkeys(r["model"] for r in rows)):
            lines = {}  # variant -> its rows, in method order (results written before variants existed: "Jacobi")
            for r in rows:
                if r["block_size"] and r["model"] == model:
                    lines.setdefault(r.get("variant") or "Jacobi", []).append(r)
            for j, (variant, line) in enumerate(lines.items()):
                line = sorted(line, key=lambda r: r["block_size"])
                ax.plot([r["block_size"] for r in line], [r.get(key, float("nan")) for r in line],
                        "os^vDP"[j % 6] + "-", color=f"C{i}", alpha=1.0 - 0.15 * (j % 4),
                        label=f"{model}: {variant}")
            for r in rows:
                if r["model"] == model and not r["block_size"] and "prompt_lookup" in r["method"] and key in r:
                    ax.axhline(r[key], linestyle=":", color=f"C{i}", label=f"{model}: HF prompt lookup")
        ax.axhline(1.0, linestyle="--", color="gray", label="HF greedy")
        ax.set_xscale("log", base=2)
        ax.set_xlabel("block size")
        ax.set_ylabel(label)
    handles, labels = axes[0].get_legend_handles_labels()  # one legend for both panels, below them
    fig.legend(handles, labels, loc="lower center", ncol=3, fontsize=8, frameon=False)
    fig.tight_layout(rect=(0, 0.045 * -(-len(labels) // 3) + 0.01, 1, 1))
    fig.savefig(path, dpi=120)
    plt.close(fig)


def write_outputs(result: dict, output_dir: str | Path, meta: dict) -> Path:
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    (output_dir / "results.json").write_text(json.dumps({"meta": meta, **result}, indent=1))
    note = "" if pass_at_1_computed(result) else f"\n{PASS_AT_1_NOT_COMPUTED}\n"
    (output_dir / "results.md").write_text(markdown_table(result) + "\n" + note)
    plot(result, output_dir / "results.png")
    return output_dir


def machine_description() -> str:
    import platform

    if torch.cuda.is_available():
        return f"{torch.cuda.get_device_name(0)}, torch {torch.__version__}"
    return f"CPU {platform.machine()}, {torch.get_num_threads()} threads, torch {torch.__version__}"


__all__ = [
    "Method",
    "default_methods",
    "load_humaneval",
    "markdown_table",
    "passes_tests",
    "run_benchmark",
    "run_untrusted_program",
    "write_outputs",
]
