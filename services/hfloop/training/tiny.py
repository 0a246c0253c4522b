"""Tiny causal LMs and tokenizers built locally (no model hub), for tests, the demo and CPU runs.

:func:`ensure_tiny_base` writes, once, a folder any Hugging Face loader accepts
(``AutoTokenizer.from_pretrained(path)``, ``AutoModelForCausalLM.from_pretrained(path)``):
a word-level tokenizer trained on the synthetic world with a chat template, and a small
Llama briefly pre-trained on answers of every quality, so that it speaks the world's
language (its answers have realistic lengths and end with EOS) but has no preference yet.
A random-initialised model would never emit EOS, which would blind the length audits.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import tempfile
from pathlib import Path
from typing import Any

from hfloop.training import synthetic

SPECIALS = ["<|pad|>", "<|unk|>", "<|eos|>", "<|user|>", "<|assistant|>", "<|system|>", "<|tool|>"]
# The prompt rendered alone (with the generation prompt) is a token prefix of prompt+answer,
# which TRL relies on to find where the completion starts.
CHAT_TEMPLATE = (
    "{%- for m in messages -%}"
    "{{ '<|' + m['role'] + '|> ' + m['content'] + (' <|eos|> ' if m['role'] == 'assistant' else ' ') }}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{ '<|assistant|> ' }}{%- endif -%}"
)
MODEL_SIZES: dict[str, dict[str, Any]] = {
    "tiny": {"hidden_size": 64, "intermediate_size": 192, "num_hidden_layers": 2, "num_attention_heads": 4},
    "small": {"hidden_size": 128, "intermediate_size": 384, "num_hidden_layers": 4, "num_attention_heads": 4},
}


def build_tokenizer(texts: list[str], vocab_size: int = 4000) -> Any:
    """A word-level PreTrainedTokenizerFast trained on ``texts`` (whitespace-separated words)."""
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.WordLevel(unk_token="<|unk|>"))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    trainer = trainers.WordLevelTrainer(vocab_size=vocab_size, special_tokens=SPECIALS, min_frequency=1)
    tok.train_from_iterator(texts, trainer=trainer)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok, unk_token="<|unk|>", pad_token="<|pad|>", eos_token="<|eos|>", bos_token=None
    )
    fast.chat_template = CHAT_TEMPLATE
    fast.padding_side = "left"  # generation pads on the left; trainers set their own side
    return fast


def build_model(tokenizer: Any, size: str = "tiny", max_positions: int = 256, seed: int = 0) -> Any:
    """A randomly initialised Llama of ``size`` sized to ``tokenizer``'s vocabulary."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(seed)
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        max_position_embeddings=max_positions,
        num_key_value_heads=MODEL_SIZES[size]["num_attention_heads"],
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id,
        bos_token_id=None,
        tie_word_embeddings=True,
        **MODEL_SIZES[size],
    )
    return LlamaForCausalLM(config)


def pretrain(
    model: Any, tokenizer: Any, conversations: list[list[dict[str, str]]], steps: int, seed: int = 0
) -> list[float]:
    """Plain causal-LM training on rendered conversations; returns the loss curve."""
    import torch

    rng = random.Random(seed)
    texts = [tokenizer.apply_chat_template(c, tokenize=False) for c in conversations]
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3, weight_decay=0.0)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min(1.0, (s + 1) / 20) * max(0.05, 1 - s / steps)
    )
    tokenizer.padding_side = "right"
    losses: list[float] = []
    model.train()
    for _ in range(steps):
        batch = tokenizer(rng.sample(texts, 32), return_tensors="pt", padding=True, add_special_tokens=False)
        labels = batch["input_ids"].masked_fill(batch["attention_mask"] == 0, -100)
        loss = model(**batch, labels=labels).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        opt.zero_grad()
        losses.append(float(loss.detach()))
    tokenizer.padding_side = "left"
    model.eval()
    return losses


def ensure_tiny_base(folder: Path, size: str = "tiny", steps: int = 300, seed: int = 0) -> str:
    """Build (once) and return the path of a tiny pre-trained base model with its tokenizer.

    Written to a temporary folder and renamed, so concurrent callers (Ray workers, tests)
    never see half a model.
    """
    folder = Path(folder)
    if (folder / "hfloop_tiny.json").exists():
        return str(folder)
    import torch

    torch.manual_seed(seed)
    conversations = synthetic.corpus(4000, seed=seed + 1)
    texts = [" ".join(m["content"] for m in c) for c in conversations] + [" ".join(synthetic.vocabulary())]
    tokenizer = build_tokenizer(texts)
    model = build_model(tokenizer, size=size, seed=seed)
    losses = pretrain(model, tokenizer, conversations, steps=steps, seed=seed)
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".tiny-", dir=folder.parent))
    model.save_pretrained(tmp)
    tokenizer.save_pretrained(tmp)
    meta = {"size": size, "steps": steps, "seed": seed, "first_loss": losses[0], "last_loss": losses[-1]}
    (tmp / "hfloop_tiny.json").write_text(json.dumps(meta))
    try:
        os.rename(tmp, folder)
    except OSError:  # another process won the race; its model is as good as ours
        shutil.rmtree(tmp, ignore_errors=True)
    return str(folder)
