"""GPU check: plain TRL DPO on a ~0.5B-parameter causal LM built from a config, full fine-tune
and LoRA, bf16, a fixed number of steps; prints and writes tokens/s and peak GPU memory.

Self-contained on purpose (torch, transformers, trl, peft, tokenizers only: no Ray, no
Kafka, no hfloop import), so it runs on a bare GPU machine from a checkout:

    python benchmarks/gpu_dpo.py                 # ~0.5B on the GPU (well under 5 minutes on an H100)
    python benchmarks/gpu_dpo.py --tiny          # a tiny model on CPU: checks the script itself

The JSON goes to $OUT/gpu_dpo.json when $OUT is set, else benchmarks/results/gpu_dpo.json.
The tokenizer is a word-level vocabulary built here from synthetic support-desk text; the
model's embedding matrix is sized to a realistic vocabulary (32k) regardless, because the
log-softmax over the vocabulary is a large part of a DPO step's cost.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

WORDS = [
    "open",
    "settings",
    "select",
    "confirm",
    "the",
    "your",
    "account",
    "password",
    "invoice",
    "refund",
    "card",
    "plan",
    "parcel",
    "label",
    "courier",
    "address",
    "tracking",
    "router",
    "printer",
    "laptop",
    "phone",
    "reset",
    "change",
    "cancel",
    "update",
    "find",
    "fix",
    "replace",
    "check",
    "move",
    "restore",
    "page",
    "menu",
    "panel",
    "button",
    "step",
    "wizard",
    "then",
    "and",
    "press",
    "choose",
    "save",
    "verify",
    "first",
    "use",
    "top",
    "sorry",
    "i",
    "am",
    "not",
    "able",
    "to",
    "help",
    "with",
    "that",
    "maybe",
    "try",
    "again",
    "later",
    "unclear",
    "please",
    "ask",
    "someone",
    "else",
    "cannot",
    "say",
    "much",
    "about",
    "this",
    "topic",
    "perhaps",
    "look",
    "for",
    "it",
    "somewhere",
    "on",
    "site",
    "might",
    "work",
    "or",
    "definitely",
    "guaranteed",
    "hope",
    "helps",
    "thanks",
]

SIZES: dict[str, dict[str, int]] = {
    # ~0.5B: 24 layers of d=1152 with GQA, 32k vocabulary (tied embeddings).
    "0.5b": {
        "hidden_size": 1152,
        "intermediate_size": 4608,
        "num_hidden_layers": 24,
        "num_attention_heads": 16,
        "num_key_value_heads": 4,
        "vocab_size": 32768,
    },  # fmt: skip
    "tiny": {
        "hidden_size": 64,
        "intermediate_size": 128,
        "num_hidden_layers": 2,
        "num_attention_heads": 4,
        "num_key_value_heads": 2,
        "vocab_size": 512,
    },  # fmt: skip
}


def build_tokenizer() -> Any:
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    specials = ["<|pad|>", "<|unk|>", "<|eos|>", "<|user|>", "<|assistant|>"]
    tok = Tokenizer(models.WordLevel(unk_token="<|unk|>"))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tok.train_from_iterator([" ".join(WORDS)], trainer=trainers.WordLevelTrainer(special_tokens=specials))
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok, unk_token="<|unk|>", pad_token="<|pad|>", eos_token="<|eos|>"
    )
    fast.chat_template = (
        "{%- for m in messages -%}{{ '<|' + m['role'] + '|> ' + m['content'] + "
        "(' <|eos|> ' if m['role'] == 'assistant' else ' ') }}{%- endfor -%}"
        "{%- if add_generation_prompt -%}{{ '<|assistant|> ' }}{%- endif -%}"
    )
    return fast


def synthetic_pairs(n: int, prompt_words: int, answer_words: int, seed: int = 0) -> list[dict[str, Any]]:
    rng = random.Random(seed)

    def text(k: int) -> str:
        return " ".join(rng.choice(WORDS) for _ in range(k))

    return [
        {
            "prompt": [{"role": "user", "content": text(prompt_words)}],
            "chosen": [{"role": "assistant", "content": text(answer_words)}],
            "rejected": [{"role": "assistant", "content": text(answer_words)}],
        }
        for _ in range(n)
    ]


def build_model(folder: Path, size: str, tokenizer: Any, device: str, dtype: Any) -> int:
    """Random-init the model straight on the device in ``dtype``, save it; returns the parameter count."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    spec = dict(SIZES[size])
    config = LlamaConfig(
        max_position_embeddings=4096, pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id,
        bos_token_id=None, tie_word_embeddings=True, **spec,
    )  # fmt: skip
    torch.manual_seed(0)
    with torch.device(device):
        model = LlamaForCausalLM(config).to(dtype)
    n_params = sum(p.numel() for p in model.parameters())
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    del model
    if device == "cuda":
        torch.cuda.empty_cache()
    return n_params


def run_dpo(model_path: str, tokenizer: Any, pairs: list[dict[str, Any]], args: argparse.Namespace, lora: bool,
            on_gpu: bool) -> dict[str, Any]:  # fmt: skip
    import torch
    from datasets import Dataset
    from transformers import TrainerCallback
    from trl import DPOConfig, DPOTrainer

    marks: list[tuple[int, float, float]] = []  # (step, time, cumulative tokens)

    class Clock(TrainerCallback):  # type: ignore[misc]
        def on_log(
            self, a: Any, state: Any, control: Any, logs: dict[str, Any] | None = None, **kw: Any
        ) -> None:
            if logs and "num_tokens" in logs:
                if on_gpu:
                    torch.cuda.synchronize()
                marks.append((state.global_step, time.perf_counter(), float(logs["num_tokens"])))

    if on_gpu:
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
    peft_config = None
    if lora:
        from peft import LoraConfig

        peft_config = LoraConfig(
            r=16, lora_alpha=32, lora_dropout=0.0, target_modules="all-linear", task_type="CAUSAL_LM"
        )
    out_dir = tempfile.mkdtemp(prefix="gpu-dpo-")
    config = DPOConfig(
        output_dir=out_dir, max_steps=args.steps, per_device_train_batch_size=args.batch_size,
        learning_rate=5e-6 if not lora else 1e-4, beta=0.1, max_length=args.prompt_words + args.answer_words + 16,
        logging_steps=1, save_strategy="no", report_to=[], disable_tqdm=True, bf16=on_gpu, use_cpu=not on_gpu,
        gradient_checkpointing=False, dataloader_num_workers=0, seed=0,
        model_init_kwargs={"dtype": "bfloat16" if on_gpu else "float32"},
    )  # fmt: skip
    t0 = time.perf_counter()
    trainer = DPOTrainer(
        model=model_path, args=config, train_dataset=Dataset.from_list(pairs), processing_class=tokenizer,
        peft_config=peft_config, callbacks=[Clock()],
    )  # fmt: skip
    setup_s = time.perf_counter() - t0
    t1 = time.perf_counter()
    trainer.train()
    if on_gpu:
        torch.cuda.synchronize()
    train_s = time.perf_counter() - t1
    # Steady state: skip the first steps (allocator warm-up, kernel autotuning).
    warm = [m for m in marks if m[0] > args.warmup]
    first = next((m for m in marks if m[0] == args.warmup), marks[0] if marks else None)
    if warm and first is not None and warm[-1][1] > first[1]:
        tokens_s = (warm[-1][2] - first[2]) / (warm[-1][1] - first[1])
        steps_s = (warm[-1][0] - first[0]) / (warm[-1][1] - first[1])
    else:
        tokens_s = steps_s = float("nan")
    trainable = sum(p.numel() for p in trainer.model.parameters() if p.requires_grad)
    losses = [h["loss"] for h in trainer.state.log_history if "loss" in h]
    result = {
        "mode": "lora" if lora else "full",
        "steps": args.steps,
        "batch_pairs": args.batch_size,
        "tokens_per_s": tokens_s,
        "samples_per_s": steps_s * args.batch_size,
        "peak_gpu_mem_gib": torch.cuda.max_memory_allocated() / 2**30 if on_gpu else None,
        "trainable_params": trainable,
        "setup_s": setup_s,
        "train_s": train_s,
        "loss_first": losses[0] if losses else None,
        "loss_last": losses[-1] if losses else None,
    }
    del trainer
    shutil.rmtree(out_dir, ignore_errors=True)
    return result


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tiny", action="store_true", help="Tiny model on CPU (checks the script).")
    parser.add_argument(
        "--steps", type=int, default=None, help="Optimizer steps per mode (default 30; tiny 4)."
    )
    parser.add_argument(
        "--warmup", type=int, default=None, help="Steps excluded from the rates (default 5; tiny 1)."
    )
    parser.add_argument("--batch-size", type=int, default=None, help="Pairs per step (default 8; tiny 2).")
    parser.add_argument(
        "--prompt-words", type=int, default=None, help="Prompt length in tokens (default 128)."
    )
    parser.add_argument(
        "--answer-words", type=int, default=None, help="Answer length in tokens (default 384)."
    )
    parser.add_argument(
        "--out", default=None, help="JSON path (default $OUT/gpu_dpo.json or benchmarks/results/)."
    )
    args = parser.parse_args(argv)
    tiny = args.tiny
    args.steps = args.steps or (4 if tiny else 30)
    args.warmup = args.warmup if args.warmup is not None else (1 if tiny else 5)
    args.batch_size = args.batch_size or (2 if tiny else 8)
    args.prompt_words = args.prompt_words or (16 if tiny else 128)
    args.answer_words = args.answer_words or (32 if tiny else 384)

    import torch
    import transformers
    import trl

    on_gpu = torch.cuda.is_available() and not tiny
    if not tiny and not on_gpu:
        sys.exit("no CUDA device: run with --tiny for the CPU check")
    t_start = time.perf_counter()
    tokenizer = build_tokenizer()
    pairs = synthetic_pairs(args.steps * args.batch_size, args.prompt_words, args.answer_words)
    folder = Path(tempfile.mkdtemp(prefix="gpu-dpo-model-"))
    t0 = time.perf_counter()
    n_params = build_model(folder, "tiny" if tiny else "0.5b", tokenizer, "cuda" if on_gpu else "cpu",
                           torch.bfloat16 if on_gpu else torch.float32)  # fmt: skip
    build_s = time.perf_counter() - t0
    runs = [run_dpo(str(folder), tokenizer, pairs, args, lora, on_gpu) for lora in (False, True)]
    shutil.rmtree(folder, ignore_errors=True)
    report = {
        "device": torch.cuda.get_device_name(0) if on_gpu else "cpu",
        "torch": torch.__version__, "transformers": transformers.__version__, "trl": trl.__version__,
        "params": n_params, "dtype": "bfloat16" if on_gpu else "float32",
        "seq_tokens_per_answer": args.prompt_words + args.answer_words,
        "model_build_s": build_s, "total_s": time.perf_counter() - t_start, "runs": runs,
    }  # fmt: skip
    out = (
        Path(args.out)
        if args.out
        else (Path(os.environ["OUT"]) if os.environ.get("OUT") else Path(__file__).parent / "results")
        / "gpu_dpo.json"
    )
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2))
    for r in runs:
        mem = f"{r['peak_gpu_mem_gib']:.1f} GiB" if r["peak_gpu_mem_gib"] is not None else "n/a"
        print(f"{r['mode']:>4}: {r['tokens_per_s']:,.0f} tokens/s, {r['samples_per_s']:.2f} pairs/s, peak {mem}, "
              f"trainable {r['trainable_params'] / 1e6:.1f}M, loss {r['loss_first']} -> {r['loss_last']}")  # fmt: skip
    print(f"{n_params / 1e6:.0f}M params on {report['device']}; total {report['total_s']:.0f}s; wrote {out}")
    return report


if __name__ == "__main__":
    main()
