"""The decisive test of the packed Jacobi Forcing forward (the attention mask of arXiv 2512.14681).

Every row of the packed sequence sees a causal chain of tokens at the right positions, so its logits must equal a
plain causal forward over exactly those tokens: clean and prompt rows over `prompt + c_0 + c_1 ...`, noisy block
`k_j` over `prompt + k_0..k_{j-1} + k_j` (noisy context) or `prompt + c_0..c_{j-1} + k_j` (clean context).
"""


import pytest
import torch
from testing_utils import CONFIGS, PAD, random_example, tiny_model

from hf_jacobi.training import JacobiForcingCollator

BLOCK = 4
# Different prompt lengths and block counts, so the batch is padded; different first noisy offsets
LAYOUTS = [(3, 3, 1), (6, 1, 0), (4, 2, 2)]


def make_examples(seed=0):
    gen = torch.Generator().manual_seed(seed)
    return [random_example(p, t, BLOCK, gen, noisy_from=k) for p, t, k in LAYOUTS]


def flatten(blocks):
    return [token for block in blocks for token in block]


def plain_logits(model, ids):
    with torch.no_grad():
        return model(torch.tensor([ids])).logits[0]


def assert_packed_matches_plain(model, packed_logits, batch, examples, mask_context, reference_model=None):
    reference_model = reference_model or model
    for b, ex in enumerate(examples):
        prompt, noisy, clean = ex["prompt_ids"], ex["noisy_blocks"], ex["clean_blocks"]
        P, T = len(prompt), len(clean)
        clean_seq = prompt + flatten(clean)
        ref = plain_logits(reference_model, clean_seq)
        torch.testing.assert_close(packed_logits[b, :P], ref[:P], atol=1e-4, rtol=1e-4)
        clean_index = batch["clean_index"][b, : T * BLOCK]
        torch.testing.assert_close(packed_logits[b, clean_index], ref[P:], atol=1e-4, rtol=1e-4)
        for j in range(T):
            context = noisy[:j] if mask_context == "noisy" else clean[:j]
            ref_noisy = plain_logits(reference_model, prompt + flatten(context) + noisy[j])[-BLOCK:]
            noisy_index = batch["noisy_index"][b, j * BLOCK : (j + 1) * BLOCK]
            torch.testing.assert_close(packed_logits[b, noisy_index], ref_noisy, atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("mask_context", ["noisy", "clean"])
@pytest.mark.parametrize("attn_implementation", ["eager", "sdpa"])
@pytest.mark.parametrize("arch", sorted(CONFIGS))
def test_packed_forward_equals_plain_causal_forwards(arch, attn_implementation, mask_context):
    model = tiny_model(arch, attn_implementation)
    examples = make_examples()
    collator = JacobiForcingCollator(
        pad_token_id=PAD, block_size=BLOCK, mask_context=mask_context, attn_implementation=attn_implementation
    )
    batch = collator(examples)
    if attn_implementation == "eager":
        assert batch["attention_mask"].dtype == torch.float32  # additive: a bool mask is silently wrong with eager
    else:
        assert batch["attention_mask"].dtype == torch.bool
    with torch.no_grad():
        logits = model(
            input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], position_ids=batch["position_ids"]
        ).logits
    assert torch.isfinite(logits).all()  # padding rows see themselves, so no NaN anywhere
    assert_packed_matches_plain(model, logits, batch, examples, mask_context)


@pytest.mark.parametrize("mask_context", ["noisy", "clean"])
def test_flex_attention_block_mask(monkeypatch, mask_context):
    """The flex `BlockMask` gives the same logits as the plain forwards.

    On this CPU build (torch 2.13), transformers' compiled flex kernel is not usable in tests: Inductor's CPU flex
    template fails to compile for some shapes (CppCompileError) or crashes the process, and compiling takes tens of
    seconds. So the model's flex path runs torch's unfused `flex_attention`, which evaluates the same `BlockMask`
    (including its `mask_mod`); on GPU the compiled kernel reads the same mask.
    """
    import transformers.integrations.flex_attention as flex_integration
    from torch.nn.attention.flex_attention import BlockMask, flex_attention

    monkeypatch.setattr(
        flex_integration,
        "compile_friendly_flex_attention",
        lambda query, key, value, training=False, **kwargs: flex_attention(query, key, value, **kwargs),
    )
    model = tiny_model("llama", "flex_attention")
    reference = tiny_model("llama", "sdpa")
    reference.load_state_dict(model.state_dict())
    examples = make_examples(seed=1)
    batch = JacobiForcingCollator(
        pad_token_id=PAD, block_size=BLOCK, mask_context=mask_context, attn_implementation="flex_attention"
    )(examples)
    assert isinstance(batch["attention_mask"], BlockMask)
    with torch.no_grad():
        logits = model(
            input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], position_ids=batch["position_ids"]
        ).logits
    assert_packed_matches_plain(model, logits, batch, examples, mask_context, reference_model=reference)


def state_examples(seed=0):
    """State layout: noisy drafts at arbitrary starts along the continuation (two at the same start), as a sliding
    decoder meets them; different prompt and continuation lengths so the batch is padded."""
    gen = torch.Generator().manual_seed(seed)

    def ids(k):
        return torch.randint(3, 60, (k,), generator=gen).tolist()

    return [
        {"prompt_ids": ids(3), "clean_ids": ids(10), "noisy_starts": [0, 3, 3, 6], "noisy_blocks": [ids(BLOCK) for _ in range(4)]},
        {"prompt_ids": ids(5), "clean_ids": ids(6), "noisy_starts": [2], "noisy_blocks": [ids(BLOCK)]},
    ]


@pytest.mark.parametrize("attn_implementation", ["eager", "sdpa"])
@pytest.mark.parametrize("arch", sorted(CONFIGS))
def test_state_layout_equals_plain_causal_forwards(arch, attn_implementation):
    """Each state sees the prompt, the clean tokens before its start and itself: its logits are those of a plain
    forward over exactly that, and its teacher index points at the clean logits of the same positions."""
    model = tiny_model(arch, attn_implementation)
    examples = state_examples()
    batch = JacobiForcingCollator(pad_token_id=PAD, block_size=BLOCK, attn_implementation=attn_implementation)(examples)
    with torch.no_grad():
        logits = model(
            input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], position_ids=batch["position_ids"]
        ).logits
    assert torch.isfinite(logits).all()
    for b, ex in enumerate(examples):
        prompt, clean = ex["prompt_ids"], ex["clean_ids"]
        ref = plain_logits(model, prompt + clean)
        P = len(prompt)
        torch.testing.assert_close(logits[b, : P + len(clean)], ref, atol=1e-4, rtol=1e-4)
        for k, (s, state) in enumerate(zip(ex["noisy_starts"], ex["noisy_blocks"])):
            ref_state = plain_logits(model, prompt + clean[:s] + state)[-BLOCK:]
            index = batch["noisy_index"][b, k * BLOCK : (k + 1) * BLOCK]
            torch.testing.assert_close(logits[b, index], ref_state, atol=1e-4, rtol=1e-4)
            assert batch["clean_index"][b, k * BLOCK : (k + 1) * BLOCK].tolist() == list(range(P + s, P + s + BLOCK))
