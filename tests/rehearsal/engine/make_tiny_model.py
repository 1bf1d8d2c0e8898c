"""Creates the rehearsal engine's tiny local model (run at image build time, no hub access).

    python make_tiny_model.py OUT_DIR

What it writes to OUT_DIR:
  * a byte-level BPE tokenizer trained here on a small generated corpus, carrying the DeepSeek V4
    special tokens (`<｜begin▁of▁sentence｜>`, `<｜User｜>`, `<｜Assistant｜>`, `<think>`, `</think>`, ...),
    so vLLM's `--tokenizer-mode deepseek_v4` (DeepSeek V4 prompt encoding) and
    `--reasoning-parser deepseek_v4` work on it unchanged;
  * a Jinja chat template with the same conventions, for plans that do not use the deepseek_v4
    tokenizer mode: `chat_template_kwargs` `thinking` (or `enable_thinking`) opens a `<think>` block
    after `<｜Assistant｜>`, otherwise `</think>` closes it at once; `reasoning_effort: "max"` adds a
    reasoning-effort line, as the DeepSeek V4 encoding does;
  * a two-layer Llama (head_dim 32) with random attention/MLP weights. Its embeddings and LM head are
    laid out so that it behaves like a bigram table: after `<think>` it writes a short fixed reasoning
    text, then `</think>`, then the fixed answer `323` (the answer to the recipe's example question
    17*19), then end-of-sentence; after any other token it writes the answer. The attention/MLP
    branches are scaled down so the random weights are computed but do not change the text. So
    Non-think answers `323` and the think modes answer with reasoning_content plus `323`, whatever the
    sampling settings. This proves the serving path end to end, not the model.
"""

from __future__ import annotations

import json
import os
import sys

import torch
from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

BOS = "<｜begin▁of▁sentence｜>"
EOS = "<｜end▁of▁sentence｜>"
PAD = "<｜▁pad▁｜>"
SPECIAL = [
    BOS,
    EOS,
    PAD,
    "<｜User｜>",
    "<｜Assistant｜>",
    "<｜latest_reminder｜>",
    "<｜DSML｜tool_calls>",
    "</｜DSML｜tool_calls>",
]
# Not special, as in DeepSeek tokenizers: they stay in decoded text and are parsed by id.
THINK_START, THINK_END = "<think>", "</think>"

REASONING_TEXT = "The rehearsal model reasons briefly before it answers."
ANSWER_TEXT = "323"

HIDDEN = 128
HEADS = 4
KV_HEADS = 2
HEAD_DIM = HIDDEN // HEADS  # 32: a head size vLLM's CPU attention supports
LAYERS = 2
INTERMEDIATE = 256
LOGIT_GAIN = 3.0  # logit of the wired next token = LOGIT_GAIN * sqrt(HIDDEN) (~34); every other ~0

CHAT_TEMPLATE = (
    "{{ bos_token }}"
    "{%- set think = (thinking is defined and thinking) or (enable_thinking is defined and enable_thinking) -%}"
    "{%- if reasoning_effort is defined and reasoning_effort == 'none' %}{% set think = false %}{% endif -%}"
    "{%- if think and reasoning_effort is defined and reasoning_effort == 'max' -%}"
    "Reasoning Effort: Absolute maximum.\n\n"
    "{%- endif -%}"
    "{%- for message in messages -%}"
    "{%- set content = message['content'] if message['content'] is string else "
    "(message['content'] | map(attribute='text') | join('')) -%}"
    "{%- if message['role'] == 'system' -%}{{ content }}"
    "{%- elif message['role'] == 'user' -%}<｜User｜>{{ content }}"
    "{%- elif message['role'] == 'assistant' -%}<｜Assistant｜></think>{{ content }}<｜end▁of▁sentence｜>"
    "{%- endif -%}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}<｜Assistant｜>{%- if think -%}<think>{%- else -%}</think>{%- endif -%}"
    "{%- endif -%}"
)


def corpus() -> list[str]:
    base = [
        REASONING_TEXT,
        ANSWER_TEXT,
        "What is 17*19? Return only the final integer.",
        "Say hello from the rehearsal engine.",
        "The quick brown fox jumps over the lazy dog.",
        "Prefill and decode engines exchange the KV cache through a connector.",
        "The router sends each request to a prefill engine and then to a decode engine.",
        "Numbers: 0 1 2 3 4 5 6 7 8 9 10 17 19 42 100 256 323 512 1024.",
        "Reasoning Effort: Absolute maximum. You MUST be very thorough in your thinking.",
    ]
    # Repetition makes the fixed texts whole-word tokens.
    return base * 200 + [REASONING_TEXT, " " + ANSWER_TEXT] * 400


def build_tokenizer() -> Tokenizer:
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=640,
        min_frequency=2,
        special_tokens=SPECIAL,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(corpus(), trainer=trainer)
    tok.add_tokens([AddedToken(THINK_START, special=False, normalized=False),
                    AddedToken(THINK_END, special=False, normalized=False)])
    return tok


def chain_ids(tok: Tokenizer) -> list[int]:
    """Token ids the model writes after `<think>`, ending with end-of-sentence."""
    reasoning = tok.encode(REASONING_TEXT, add_special_tokens=False).ids
    answer = tok.encode(ANSWER_TEXT, add_special_tokens=False).ids
    ids = [tok.token_to_id(THINK_START), *reasoning, tok.token_to_id(THINK_END), *answer, tok.token_to_id(EOS)]
    if len(set(ids)) != len(ids):
        raise SystemExit(f"the wired text must use distinct tokens, got {ids}")
    if len(ids) + 1 > HIDDEN:
        raise SystemExit("the wired text is longer than the hidden size allows")
    return ids


def build_model(vocab_size: int, bos_id: int, eos_id: int, pad_id: int, chain: list[int], answer_start: int):
    torch.manual_seed(1234)
    config = LlamaConfig(
        vocab_size=vocab_size,
        hidden_size=HIDDEN,
        intermediate_size=INTERMEDIATE,
        num_hidden_layers=LAYERS,
        num_attention_heads=HEADS,
        num_key_value_heads=KV_HEADS,
        head_dim=HEAD_DIM,
        max_position_embeddings=4096,
        rms_norm_eps=1e-6,
        bos_token_id=bos_id,
        eos_token_id=eos_id,
        pad_token_id=pad_id,
        tie_word_embeddings=False,
    )
    config.dtype = torch.float32
    model = LlamaForCausalLM(config).to(torch.float32)  # random init
    with torch.no_grad():
        # Random attention/MLP weights stay; their contribution to the residual stream is scaled down.
        for layer in model.model.layers:
            layer.self_attn.o_proj.weight.mul_(0.01)
            layer.mlp.down_proj.weight.mul_(0.01)
        emb = model.model.embed_tokens.weight
        head = model.lm_head.weight
        other = HIDDEN - 1  # the direction shared by every token outside the wired text
        emb.copy_(torch.randn_like(emb) * 1e-3)
        emb[:, other] += 1.0
        head.zero_()
        for k, tid in enumerate(chain):
            emb[tid].zero_()
            emb[tid, k] = 1.0
            nxt = chain[k + 1] if k + 1 < len(chain) else eos_id
            head[nxt, k] = LOGIT_GAIN
        head[answer_start, other] = LOGIT_GAIN
    return model


def main(out: str) -> None:
    os.makedirs(out, exist_ok=True)
    tok = build_tokenizer()
    chain = chain_ids(tok)
    answer_start = chain[chain.index(tok.token_to_id(THINK_END)) + 1]
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token=BOS,
        eos_token=EOS,
        pad_token=PAD,
        model_max_length=4096,
        clean_up_tokenization_spaces=False,
    )
    fast.chat_template = CHAT_TEMPLATE
    fast.save_pretrained(out)

    model = build_model(len(tok.get_vocab()), tok.token_to_id(BOS), tok.token_to_id(EOS), tok.token_to_id(PAD),
                        chain, answer_start)
    model.save_pretrained(out, safe_serialization=True)
    model.generation_config.save_pretrained(out)

    # Self-check with transformers: greedy after `<think>` gives the wired text.
    prompt = tok.encode(BOS + "<｜User｜>What is 17*19?<｜Assistant｜>" + THINK_START, add_special_tokens=False).ids
    with torch.no_grad():
        out_ids = model.generate(torch.tensor([prompt]), max_new_tokens=len(chain) + 2, do_sample=False)[0]
    text = tok.decode(out_ids[len(prompt):].tolist(), skip_special_tokens=False)
    expected = REASONING_TEXT + THINK_END + ANSWER_TEXT + EOS
    if text.replace(" ", "") != expected.replace(" ", ""):
        raise SystemExit(f"tiny model self-check failed: {text!r} != {expected!r}")
    with open(os.path.join(out, "rehearsal_model.json"), "w", encoding="utf-8") as fh:
        json.dump({"reasoning": REASONING_TEXT, "answer": ANSWER_TEXT, "chain_ids": chain,
                   "vocab_size": len(tok.get_vocab())}, fh, indent=1)
    print(f"tiny model written to {out}: vocab {len(tok.get_vocab())}, output {text!r}")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "/models/tiny")
