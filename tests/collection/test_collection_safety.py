"""Collection folders stay safe: resume refuses other prompts or another model, one run at a time holds a folder,
rewrites are atomic, torn lines lose nothing else, too-long prompts are refused up front, progress counts prompts."""

import json
import os
import socket
import subprocess
import sys

import pytest
import torch
from test_collection import PROMPTS, tokenizer, wide_model  # noqa: F401  (the tokenizer fixture)
from testing_utils import require_smollm2

from hf_jacobi import collection
from hf_jacobi.collection import CONFIG_FILE, LOCK_FILE, RECORDS_FILE, CollectConfig, collect_trajectories

pytestmark = require_smollm2  # every test collects with SmolLM2's tokenizer

CONFIG = CollectConfig(block_size=4, max_new_tokens=8, batch_size=2)


@pytest.fixture(scope="module")
def model(tokenizer):  # noqa: F811
    return wide_model(tokenizer)


@pytest.fixture(scope="module")
def full(model, tokenizer, tmp_path_factory):  # noqa: F811
    """An uninterrupted collection of PROMPTS (3 chunks of 2, 2, 1 prompts) and its records file."""
    folder = tmp_path_factory.mktemp("full")
    dataset = collect_trajectories(model, tokenizer, PROMPTS, folder, CONFIG, progress=False)
    return dataset.to_list(), (folder / RECORDS_FILE).read_text()


def partial(model, tokenizer, folder, chunks=1):  # noqa: F811
    collect_trajectories(model, tokenizer, PROMPTS, folder, CONFIG, max_chunks=chunks, progress=False)
    return folder


def count_chunks(monkeypatch):
    calls = []
    original = collection._chunk_trajectories

    def counted(*args, **kwargs):
        calls.append(args[4])  # first prompt index of the chunk
        return original(*args, **kwargs)

    monkeypatch.setattr(collection, "_chunk_trajectories", counted)
    return calls


# 1. resume compares the prompts and the model, not just their count and name


def test_resume_refuses_other_prompts_of_the_same_count(model, tokenizer, tmp_path):  # noqa: F811
    partial(model, tokenizer, tmp_path)
    other = PROMPTS[:-1] + ["something else entirely"]
    with pytest.raises(ValueError, match=r"(?s)other settings.*prompts.*new output_dir"):
        collect_trajectories(model, tokenizer, other, tmp_path, CONFIG, progress=False)


def test_resume_refuses_other_weights_under_the_same_name(model, tokenizer, tmp_path):  # noqa: F811
    partial(model, tokenizer, tmp_path)
    adapted = wide_model(tokenizer)
    with torch.no_grad():  # what an adapter does: other weights, same model_name
        adapted.model.layers[0].self_attn.q_proj.weight.add_(0.01)
    with pytest.raises(ValueError, match=r"(?s)other settings.*model weights.*new output_dir"):
        collect_trajectories(adapted, tokenizer, PROMPTS, tmp_path, CONFIG, progress=False)
    # the same weights (a fresh copy) resume
    same = wide_model(tokenizer)
    assert len(collect_trajectories(same, tokenizer, PROMPTS, tmp_path, CONFIG, progress=False)) == len(PROMPTS)


def test_old_folders_without_the_checks_still_resume(model, tokenizer, tmp_path, full):  # noqa: F811
    partial(model, tokenizer, tmp_path)
    stored = json.loads((tmp_path / CONFIG_FILE).read_text())
    for key in ("prompts_sha256", "model_fingerprint", "model_name_or_path"):
        stored.pop(key, None)
    (tmp_path / CONFIG_FILE).write_text(json.dumps(stored))
    with pytest.warns(UserWarning, match="cannot tell"):
        resumed = collect_trajectories(model, tokenizer, PROMPTS, tmp_path, CONFIG, progress=False)
    assert resumed.to_list() == full[0]
    assert "prompts_sha256" in json.loads((tmp_path / CONFIG_FILE).read_text())  # recorded for the next resume


def test_old_folder_records_of_other_prompts_are_refused(model, tokenizer, tmp_path):  # noqa: F811
    partial(model, tokenizer, tmp_path)
    stored = json.loads((tmp_path / CONFIG_FILE).read_text())
    stored.pop("prompts_sha256")
    (tmp_path / CONFIG_FILE).write_text(json.dumps(stored))
    other = ["another first prompt"] + PROMPTS[1:]
    with pytest.warns(UserWarning, match="cannot tell"), pytest.raises(ValueError, match=r"prompt 0.*another prompt"):
        collect_trajectories(model, tokenizer, other, tmp_path, CONFIG, progress=False)


# 2. one run at a time


def test_a_second_run_on_a_locked_folder_fails(model, tokenizer, tmp_path):  # noqa: F811
    tmp_path.mkdir(exist_ok=True)
    lock = tmp_path / LOCK_FILE
    lock.write_text(json.dumps({"pid": os.getpid(), "host": socket.gethostname()}))  # a live holder
    with pytest.raises(RuntimeError, match=r"(?s)another collection.*pid"):
        collect_trajectories(model, tokenizer, PROMPTS, tmp_path, CONFIG, progress=False)
    assert lock.exists() and not (tmp_path / RECORDS_FILE).exists()
    lock.write_text(json.dumps({"pid": os.getpid(), "host": "some-other-host"}))  # cannot check: refused too
    with pytest.raises(RuntimeError, match="some-other-host"):
        collect_trajectories(model, tokenizer, PROMPTS, tmp_path, CONFIG, progress=False)


def test_a_stale_lock_is_taken_over_and_the_lock_is_removed_on_exit(model, tokenizer, tmp_path):  # noqa: F811
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    (tmp_path / LOCK_FILE).write_text(json.dumps({"pid": dead.pid, "host": socket.gethostname()}))
    with pytest.warns(UserWarning, match="stale"):
        partial(model, tokenizer, tmp_path)
    assert not (tmp_path / LOCK_FILE).exists()
    with pytest.raises(ValueError, match="other settings"):  # released on errors too
        collect_trajectories(model, tokenizer, PROMPTS, tmp_path, CollectConfig(block_size=8), progress=False)
    assert not (tmp_path / LOCK_FILE).exists()


# 3., 4. atomic writes


def test_a_kill_during_the_records_rewrite_loses_nothing(model, tokenizer, tmp_path, monkeypatch):  # noqa: F811
    partial(model, tokenizer, tmp_path)
    records = tmp_path / RECORDS_FILE
    complete = records.read_text()
    with open(records, "a") as handle:
        handle.write('{"prompt_index": 2, "chunk": 1, "prom')  # torn: the resume rewrites the file
    original = os.replace

    def killed(src, dst):
        if str(dst).endswith(RECORDS_FILE):
            raise KeyboardInterrupt("killed during the rewrite")
        return original(src, dst)

    monkeypatch.setattr(collection.os, "replace", killed)
    with pytest.raises(KeyboardInterrupt):
        collect_trajectories(model, tokenizer, PROMPTS, tmp_path, CONFIG, progress=False)
    assert records.read_text().startswith(complete)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([CONFIG_FILE, RECORDS_FILE])  # no temp file left


def test_a_kill_during_the_config_write_keeps_it_readable(model, tokenizer, tmp_path, monkeypatch):  # noqa: F811
    partial(model, tokenizer, tmp_path)
    config_path = tmp_path / CONFIG_FILE
    before = json.loads(config_path.read_text())
    original = os.replace

    def killed(src, dst):
        if str(dst).endswith(CONFIG_FILE):
            raise KeyboardInterrupt("killed during the config write")
        return original(src, dst)

    monkeypatch.setattr(collection.os, "replace", killed)
    with pytest.raises(KeyboardInterrupt):
        partial(model, tokenizer, tmp_path)
    assert json.loads(config_path.read_text()) == before


def test_a_torn_config_names_the_file(model, tokenizer, tmp_path):  # noqa: F811
    partial(model, tokenizer, tmp_path)
    config_path = tmp_path / CONFIG_FILE
    config_path.write_text(config_path.read_text()[:20])
    with pytest.raises(ValueError, match=r"(?s)collect_config\.json.*[Dd]elete it"):
        collect_trajectories(model, tokenizer, PROMPTS, tmp_path, CONFIG, progress=False)
    config_path.unlink()  # as the message says: the records are kept and checked against the prompts
    assert len(collect_trajectories(model, tokenizer, PROMPTS, tmp_path, CONFIG, progress=False)) == len(PROMPTS)


# 5. a torn line in the middle drops only itself


def test_a_torn_middle_line_keeps_the_later_records(model, tokenizer, tmp_path, full, monkeypatch):  # noqa: F811
    lines = full[1].splitlines(keepends=True)
    assert len(lines) == 5
    (tmp_path / RECORDS_FILE).write_text("".join(lines[:1] + [lines[1][:30] + "\n"] + lines[2:]))
    partial(model, tokenizer, tmp_path / "seed", chunks=0)  # a config for the folder: copy it over
    (tmp_path / CONFIG_FILE).write_text((tmp_path / "seed" / CONFIG_FILE).read_text())
    calls = count_chunks(monkeypatch)
    with pytest.warns(UserWarning, match=r"1 torn line"):
        resumed = collect_trajectories(model, tokenizer, PROMPTS, tmp_path, CONFIG, progress=False)
    assert calls == [0]  # only the chunk with the torn line is redone
    assert resumed.to_list() == full[0]


# 6. too-long prompts are refused up front, by index


def test_too_long_prompts_are_named_before_anything_is_written(tokenizer, tmp_path):  # noqa: F811
    model = wide_model(tokenizer)
    model.config.max_position_embeddings = 64
    prompts = ["hi", "word " * 80, "ok", "more words " * 40]
    folder = tmp_path / "out"
    with pytest.raises(ValueError, match=r"(?s)at most 56 tokens.*64 positions.*prompt index \(tokens\): 1 \(\d+\), 3 \(\d+\)\."):
        collect_trajectories(model, tokenizer, prompts, folder, CONFIG, progress=False)
    assert not folder.exists()


# 7. progress counts prompts


def test_progress_counts_prompts(model, tokenizer, tmp_path, monkeypatch):  # noqa: F811
    bars = []

    class Recorder(collection.tqdm):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            self.steps, self.postfixes = [], []
            bars.append(self)

        def update(self, n=1):
            self.steps.append(n)
            return super().update(n)

        def set_postfix(self, *args, **kwargs):
            self.postfixes.append(kwargs)
            return super().set_postfix(*args, **kwargs)

    monkeypatch.setattr(collection, "tqdm", Recorder)
    partial(model, tokenizer, tmp_path)
    collect_trajectories(model, tokenizer, PROMPTS, tmp_path, CONFIG, progress=True)
    first, resumed = bars
    assert first.total == len(PROMPTS) and first.steps == [2]
    assert resumed.total == len(PROMPTS) and resumed.initial == 2 and resumed.steps == [2, 1]
    assert all("tokens" in p for p in resumed.postfixes) and resumed.postfixes
