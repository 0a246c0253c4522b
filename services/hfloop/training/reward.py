"""Reward model: TRL's RewardTrainer inside Ray Train on the gated pairs.

``hfloop train reward`` runs it alone (a REWARD TrainingRun; the promoted reward model is
what an RLHF run or an online scorer can use); :mod:`hfloop.training.rlhf` runs it as the
first phase of the same Ray Train job before the policy phase.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from hfloop.config import Settings
from hfloop.training.common import TrainJobConfig, WorkerContext
from hfloop.training.pipeline import EvalOutput, RunContext, TrainOutput, pair_rows, run_job


@dataclass
class RewardJobConfig(TrainJobConfig):
    reward_steps: int = field(default=40, metadata={"help": "Optimizer steps of the reward model."})
    reward_learning_rate: float = field(
        default=1e-3, metadata={"help": "Reward model learning rate (new scalar head)."}
    )
    center_rewards_coefficient: float | None = field(
        default=0.01, metadata={"help": "Pulls mean reward towards 0 so scores stay comparable across runs."}
    )


def train_reward_phase(loop_config: dict[str, Any], ctx: WorkerContext, resume: bool) -> dict[str, Any]:
    """Train and save the reward model (at ``loop_config['reward_dir']``); returns its train metrics."""
    from datasets import Dataset
    from ray.train.huggingface.transformers import prepare_trainer
    from trl import RewardConfig, RewardTrainer

    from hfloop.training.common import (
        finish_worker,
        load_tokenizer,
        lora_config,
        report_callback,
        trainer_args,
    )

    cfg = RewardJobConfig.from_dict(loop_config["job"])
    tokenizer = load_tokenizer(loop_config["base_model"])
    args = RewardConfig(
        **trainer_args(
            cfg,
            output_dir=f"{ctx.output_dir}/reward",
            max_steps=cfg.reward_steps,
            learning_rate=cfg.reward_learning_rate,
            max_length=cfg.max_length,
            center_rewards_coefficient=cfg.center_rewards_coefficient,
        )
    )
    trainer = RewardTrainer(
        model=loop_config["base_model"],
        args=args,
        train_dataset=Dataset.from_list(pair_rows(loop_config["train"])),
        processing_class=tokenizer,
        peft_config=lora_config(cfg, task_type="SEQ_CLS"),
        callbacks=[report_callback(loop_config["job"], phase="reward")],
    )
    trainer = prepare_trainer(trainer)  # type: ignore[assignment]
    trainer.train(resume_from_checkpoint=ctx.resume_from if resume else None)
    return finish_worker(trainer, ctx, loop_config["reward_dir"], cleanup=False)


def reward_train_loop(loop_config: dict[str, Any]) -> dict[str, Any]:
    """Ray Train worker of a reward-only job."""
    import shutil

    from hfloop.training.common import worker_context

    ctx = worker_context(loop_config)
    metrics = train_reward_phase(loop_config, ctx, resume=ctx.resume_from is not None)
    shutil.rmtree(ctx.output_dir, ignore_errors=True)
    return metrics


def reward_loop_config(ctx: RunContext) -> dict[str, Any]:
    from hfloop.training.gate import weighted_resample

    return {
        "job": ctx.cfg.to_dict(),
        "run_id": ctx.run_id,
        "run_dir": str(ctx.run_dir),
        "base_model": ctx.base_model,
        "reward_dir": str(ctx.run_dir / "reward_model"),
        "artifact_dir": str(ctx.run_dir / "model"),
        "train": weighted_resample(ctx.gate.train, ctx.cfg.gate.seed),
    }


def run_fit(ctx: RunContext, train_fn: Any, loop_config: dict[str, Any]) -> dict[str, Any]:
    from hfloop.training.common import fit

    result = fit(train_fn, loop_config, ctx.cfg, ctx.settings.data_dir / "training" / "ray", ctx.run_id)
    if result.error is not None:
        raise RuntimeError(f"Ray Train run failed: {result.error}")
    out = dict(result.return_value or {})
    out.pop("loss_curve", None)
    return out


def train_reward(ctx: RunContext) -> TrainOutput:
    loop_config = reward_loop_config(ctx)
    out = run_fit(ctx, reward_train_loop, loop_config)
    return TrainOutput(
        loop_config["reward_dir"], {f"reward_{k}": v for k, v in out.items() if not isinstance(v, dict)}
    )


def evaluate_reward(ctx: RunContext, out: TrainOutput) -> EvalOutput:
    from hfloop.training.evaluate import load_reward_model, reward_model_audits

    model, tokenizer = load_reward_model(out.artifact_path)
    audits, metrics = reward_model_audits(model, tokenizer, ctx.gate.eval, ctx.cfg.eval)
    return EvalOutput(audits, metrics)


def main(args: RewardJobConfig, settings: Settings | None = None) -> dict[str, Any]:
    """Run one reward-model job; returns the TrainingRun record."""
    from hfloop.config import get_settings

    return run_job(settings or get_settings(), "REWARD", args, train_reward, evaluate_reward)
