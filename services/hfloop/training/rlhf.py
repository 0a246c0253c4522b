"""RLHF: a reward model (TRL RewardTrainer) and then the policy optimised against it with
TRL's GRPO or RLOO under a KL penalty to the reference, both phases in one Ray Train job.

One job, two phases: the worker group starts once (its start-up is the fixed cost of a
Ray Train run), the reward model is written to the run folder between phases, and each
phase checkpoints. A restarted worker group reads the phase from the checkpoint and skips
a finished reward phase.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from hfloop.config import Settings
from hfloop.training.pipeline import EvalOutput, RunContext, TrainOutput, run_job
from hfloop.training.reward import RewardJobConfig, reward_loop_config, run_fit, train_reward_phase


@dataclass
class RLHFJobConfig(RewardJobConfig):
    algorithm: str = field(default="grpo", metadata={"help": "RL trainer from TRL: grpo | rloo."})
    kl_beta: float = field(
        default=0.2, metadata={"help": "KL coefficient to the reference policy (the constraint)."}
    )
    policy_steps: int = field(default=20, metadata={"help": "Optimizer steps of the policy phase."})
    policy_learning_rate: float = field(default=5e-4, metadata={"help": "Policy learning rate."})
    num_generations: int = field(default=4, metadata={"help": "Completions sampled per prompt (group size)."})
    max_completion_length: int = field(default=40, metadata={"help": "Token limit of a sampled completion."})
    temperature: float = field(default=1.0, metadata={"help": "Sampling temperature of the policy phase."})


def _policy_phase(loop_config: dict[str, Any], ctx: Any, resume: bool) -> dict[str, Any]:
    from datasets import Dataset
    from ray.train.huggingface.transformers import prepare_trainer

    from hfloop.training.common import (
        finish_worker,
        load_tokenizer,
        lora_config,
        report_callback,
        trainer_args,
    )

    cfg = RLHFJobConfig.from_dict(loop_config["job"])
    tokenizer = load_tokenizer(loop_config["base_model"])
    reward_tokenizer = load_tokenizer(loop_config["reward_dir"])
    common = trainer_args(
        cfg,
        output_dir=f"{ctx.output_dir}/policy",
        max_steps=cfg.policy_steps,
        learning_rate=cfg.policy_learning_rate,
        warmup_steps=min(cfg.warmup_steps, 2),
        beta=cfg.kl_beta,
        num_generations=cfg.num_generations,
        max_completion_length=cfg.max_completion_length,
        temperature=cfg.temperature,
    )
    prompts = Dataset.from_list([{"prompt": p} for p in loop_config["prompts"]])
    if cfg.algorithm == "rloo":
        from trl import RLOOConfig, RLOOTrainer

        trainer_cls, args = RLOOTrainer, RLOOConfig(**common)
    elif cfg.algorithm == "grpo":
        from trl import GRPOConfig, GRPOTrainer

        trainer_cls, args = GRPOTrainer, GRPOConfig(**common)  # type: ignore[assignment]
    else:
        raise ValueError(f"unknown RL algorithm {cfg.algorithm!r}; use grpo or rloo")
    trainer = trainer_cls(
        model=loop_config["base_model"],
        reward_funcs=loop_config["reward_dir"],
        args=args,
        train_dataset=prompts,
        processing_class=tokenizer,
        reward_processing_classes=reward_tokenizer,
        peft_config=lora_config(cfg),
        callbacks=[report_callback(loop_config["job"], phase="policy")],
    )
    trainer = prepare_trainer(trainer)  # type: ignore[assignment]
    trainer.train(resume_from_checkpoint=ctx.resume_from if resume else None)
    rewards = [h["reward"] for h in trainer.state.log_history if "reward" in h]
    kls = [h["kl"] for h in trainer.state.log_history if "kl" in h]
    extra = {
        "train_reward_first": rewards[0] if rewards else float("nan"),
        "train_reward_last": rewards[-1] if rewards else float("nan"),
        "train_kl_last": kls[-1] if kls else float("nan"),
    }
    return finish_worker(trainer, ctx, loop_config["artifact_dir"], extra, cleanup=False)


def rlhf_train_loop(loop_config: dict[str, Any]) -> dict[str, Any]:
    """Ray Train worker: reward phase (unless a checkpoint says it is done), then the policy phase."""
    import shutil

    import torch.distributed as dist

    from hfloop.training.common import worker_context

    ctx = worker_context(loop_config)
    out: dict[str, Any] = {}
    if ctx.resumed_phase != "policy":
        reward = train_reward_phase(loop_config, ctx, resume=ctx.resumed_phase == "reward")
        out.update({f"reward_{k}": v for k, v in reward.items()})
        if dist.is_initialized():
            dist.barrier()  # every rank reads the reward model rank 0 just wrote
    policy = _policy_phase(loop_config, ctx, resume=ctx.resumed_phase == "policy")
    out.update({f"policy_{k}": v for k, v in policy.items()})
    shutil.rmtree(ctx.output_dir, ignore_errors=True)
    return out


def train_rlhf(ctx: RunContext) -> TrainOutput:
    loop_config = reward_loop_config(ctx)
    seen: dict[str, Any] = {}
    for p in ctx.gate.train:
        seen.setdefault(repr(p["prompt"]), p["prompt"])
    loop_config["prompts"] = list(seen.values())
    out = run_fit(ctx, rlhf_train_loop, loop_config)
    metrics = {k: v for k, v in out.items() if not isinstance(v, list | dict)}
    return TrainOutput(loop_config["artifact_dir"], metrics, {"reward_dir": loop_config["reward_dir"]})


def evaluate_rlhf(ctx: RunContext, out: TrainOutput) -> EvalOutput:
    """Reward model audits, then the policy: reward gain, label agreement, generation audits."""
    from hfloop.training.evaluate import (
        generation_audits,
        label_agreement_audit,
        load_causal_lm,
        load_reward_model,
        reward_improvement_audit,
        reward_model_audits,
    )

    ecfg = ctx.cfg.eval
    rm, rm_tok = load_reward_model(out.extra["reward_dir"])
    audits, metrics = reward_model_audits(rm, rm_tok, ctx.gate.eval, ecfg)
    policy, tokenizer = load_causal_lm(out.artifact_path)
    reference, _ = load_causal_lm(ctx.base_model)
    gen_audits, gen_metrics, texts = generation_audits(policy, reference, tokenizer, ctx.gate.eval, ecfg)
    seen: dict[str, Any] = {}
    for p in ctx.gate.eval:
        seen.setdefault(repr(p["prompt"]), p["prompt"])
    prompts = list(seen.values())[: ecfg.eval_prompts]
    gain, gain_metrics = reward_improvement_audit(rm, rm_tok, prompts, texts["base"], texts["trained"], ecfg)
    agree, agree_metrics = label_agreement_audit(policy, reference, tokenizer, ctx.gate.eval, ecfg)
    audits += [gain, agree, *gen_audits]
    return EvalOutput(audits, {**metrics, **gen_metrics, **gain_metrics, **agree_metrics})


def main(args: RLHFJobConfig, settings: Settings | None = None) -> dict[str, Any]:
    """Run one RLHF job (reward model, then GRPO/RLOO against it); returns the TrainingRun record."""
    from hfloop.config import get_settings

    return run_job(settings or get_settings(), "RLHF", args, train_rlhf, evaluate_rlhf)
