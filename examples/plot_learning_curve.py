"""Learning curve of an `hf-jacobi train` run: held-out TPF after each round against training tokens and wall time.

    python examples/plot_learning_curve.py runs/smollm2_jf docs/learning_curve.png ["previous adapter=1.18"] [RUN ...]

Optional `LABEL=TPF` arguments draw reference lines (e.g. another model measured the same way). Further run folders
continue the first: a copy of it whose last round trained on from its checkpoint (a longer time box), or a new run
started from the curve's last adapter (`--init_adapter`, its tokens and time counted on top); their rounds join the
same curve. A round trained in several sittings counts its training tokens once (each sitting logs the
round's total so far) and the wall time of every sitting.
"""

import json
import sys
import textwrap
from pathlib import Path

import matplotlib
import matplotlib.ticker

matplotlib.use("Agg")
import matplotlib.pyplot as plt


def curve(run: Path) -> list[dict]:
    """Points (tokens, seconds, tpf, tpf outside loops where measured) from the base measurement and every finished
    round."""
    base = json.loads((run / "round_0" / "tpf_base.json").read_text())
    points = [{"round": "base", "tokens": 0, "seconds": 0.0, "tpf": base["tpf"],
               "tpf_outside_loops": base.get("tpf_outside_loops")}]
    tokens = seconds = 0.0
    for round_dir in sorted(run.glob("round_*"), key=lambda p: int(p.name.split("_")[1])):
        if not (round_dir / "tpf.json").exists():
            break
        logs = [json.loads(line) for line in (round_dir / "train" / "train_log.json").open()]
        tokens += logs[-1]["tokens_seen"]  # the trainer's epoch, so a resumed round's total, not the sitting's
        measured = json.loads((round_dir / "tpf.json").read_text())
        # the measured round time covers the last sitting; the earlier sittings' training time is in their logs
        seconds += measured.get("seconds", 0.0) + sum(log["seconds"] for log in logs[:-1])
        points.append({"round": round_dir.name, "tokens": tokens, "seconds": seconds, "tpf": measured["tpf"],
                       "tpf_outside_loops": measured.get("tpf_outside_loops"),
                       "block_size": measured.get("round_block_size")})
    return points


def main(run: str, out: str, *extra: str) -> None:
    references = [arg for arg in extra if "=" in arg]
    continued = [Path(arg) for arg in extra if "=" not in arg]
    points = curve(Path(run))
    for other in continued:  # their rounds after the base
        more = curve(other)[1:]
        if json.loads((other / "pipeline_config.json").read_text())["script"].get("init_adapter"):
            # a new run that went on from the adapter of the curve so far: its tokens and time come on top
            last = max(points, key=lambda p: p["tokens"])
            more = [p | {"tokens": p["tokens"] + last["tokens"], "seconds": p["seconds"] + last["seconds"]}
                    for p in more]
        points += [p | {"round": f"{other.name} {p['round']}"} for p in more]
    points.sort(key=lambda p: p["tokens"])
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for ax, key, label in ((axes[0], "tokens", "training tokens"), (axes[1], "seconds", "wall time (s, collect + train + measure)")):
        ax.plot([p[key] for p in points], [p["tpf"] for p in points], marker="o", label="all tokens")
        # Loops are drafted almost for free: the TPF of the tokens before each answer's loop, where measured
        outside = [p for p in points if p.get("tpf_outside_loops") is not None]
        if outside:
            ax.plot([p[key] for p in outside], [p["tpf_outside_loops"] for p in outside], marker="s", linestyle=":",
                    label="tokens outside repetition loops")
            ax.legend(loc="lower right")
        for p in points:
            ax.annotate(p["round"].replace("round_", "r"), (p[key], p["tpf"]), textcoords="offset points", xytext=(4, 4))
        for reference in references:
            name, value = reference.rsplit("=", 1)
            ax.axhline(float(value), linestyle="--", color="gray")
            ax.annotate(name, (0, float(value)), textcoords="offset points", xytext=(4, -12), color="gray")
        if key == "tokens":  # 200k rather than 200000: long tick labels overlap
            ax.xaxis.set_major_formatter(matplotlib.ticker.FuncFormatter(lambda x, _: f"{x / 1000:g}k" if x else "0"))
        ax.set_xlabel(label)
        ax.set_ylabel("tokens per forward (block 16, unseen prompts)")
        ax.grid(alpha=0.3)
    title = " -> ".join(["Jacobi Forcing learning curve: " + Path(run).name, *(path.name for path in continued)])
    fig.suptitle(textwrap.fill(title, 110))  # a run continued many times names every sitting
    fig.tight_layout()
    fig.savefig(out, dpi=120)
    print(json.dumps(points, indent=1))


if __name__ == "__main__":
    main(*sys.argv[1:])
