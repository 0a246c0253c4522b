"""DPO: TRL's DPOTrainer inside a Ray Train TorchTrainer, on a gated window of pairs.

TRL shape: :class:`DPOJobConfig` (fields with help text), the worker loop
:func:`dpo_train_loop` (what each Ray Train worker runs), and a thin :func:`main` that the
CLI (``hfloop train dpo``), a Ray job entrypoint and the demo all call.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from hfloop.config import Settings
from hfloop.training.common import TrainJobConfig
from hfloop.training.pipeline import EvalOutput, RunContext, TrainOutput, pair_rows, run_job
from hfloop.training.windows import to_ms


@dataclass
class DPOJobConfig(TrainJobConfig):
    beta: float = field(
        default=0.3, metadata={"help": "DPO beta: higher keeps the policy closer to the reference."}
    )
    loss_type: str = field(
        default="sigmoid", metadata={"help": "TRL DPO loss type (sigmoid, ipo, robust, ...)."}
    )


def build_dpo_trainer(
    cfg: DPOJobConfig, base_model: str, train: list[dict[str, Any]], output_dir: str, callbacks: list[Any]
) -> Any:
    """The TRL DPOTrainer of a job (shared by the Ray worker and the in-process benchmark baseline)."""
    from datasets import Dataset
    from trl import DPOConfig, DPOTrainer

    from hfloop.training.common import load_tokenizer, lora_config, trainer_args

    tokenizer = load_tokenizer(base_model)
    args = DPOConfig(
        **trainer_args(
            cfg,
            output_dir=output_dir,
            max_steps=cfg.max_steps,
            learning_rate=cfg.learning_rate,
            beta=cfg.beta,
            loss_type=[cfg.loss_type],
            max_length=cfg.max_length,
            dataloader_num_workers=0,
        )
    )
    # The policy is passed as a path: TRL rebuilds the frozen reference model from it.
    return DPOTrainer(
        model=base_model,
        args=args,
        train_dataset=Dataset.from_list(pair_rows(train)),
        processing_class=tokenizer,
        peft_config=lora_config(cfg),
        callbacks=callbacks,
    )


def dpo_train_loop(loop_config: dict[str, Any]) -> dict[str, Any]:
    """One Ray Train worker: build the DPOTrainer, resume if Ray has a checkpoint, train."""
    import time

    from ray.train.huggingface.transformers import prepare_trainer
    from trl import DPOConfig, DPOTrainer  # noqa: F401  # before the clock: a per-process cost, like the worker's start

    from hfloop.training.common import finish_worker, report_callback, worker_context

    t0 = time.time()

    cfg = DPOJobConfig.from_dict(loop_config["job"])
    ctx = worker_context(loop_config)
    trainer = build_dpo_trainer(
        cfg,
        loop_config["base_model"],
        loop_config["train"],
        ctx.output_dir,
        [report_callback(loop_config["job"])],
    )
    trainer = prepare_trainer(trainer)
    t1 = time.time()
    trainer.train(resume_from_checkpoint=ctx.resume_from)
    timing = {"worker_setup_s": t1 - t0, "worker_loop_s": time.time() - t1}
    return finish_worker(trainer, ctx, loop_config["artifact_dir"], timing)


def train_dpo(ctx: RunContext) -> TrainOutput:
    """Driver side: resample by weight, run the workers, collect the result."""
    from hfloop.training.common import fit
    from hfloop.training.gate import weighted_resample

    artifact = ctx.run_dir / "model"
    loop_config = {
        "job": ctx.cfg.to_dict(),
        "run_id": ctx.run_id,
        "run_dir": str(ctx.run_dir),
        "base_model": ctx.base_model,
        "artifact_dir": str(artifact),
        "train": weighted_resample(ctx.gate.train, ctx.cfg.gate.seed),
    }
    result = fit(dpo_train_loop, loop_config, ctx.cfg, ctx.settings.data_dir / "training" / "ray", ctx.run_id)
    if result.error is not None:
        raise RuntimeError(f"Ray Train run failed: {result.error}")
    out = dict(result.return_value or {})
    out.pop("loss_curve", None)
    return TrainOutput(str(artifact), {f"train_{k}": v for k, v in out.items()})


def evaluate_dpo(ctx: RunContext, out: TrainOutput) -> EvalOutput:
    """Implicit-reward preference accuracy vs the base bar, plus the generation audits."""
    from hfloop.training.evaluate import (
        accuracy_audit,
        generation_audits,
        implicit_reward_accuracy,
        load_causal_lm,
    )

    ecfg = ctx.cfg.eval
    policy, tokenizer = load_causal_lm(out.artifact_path)
    reference, _ = load_causal_lm(ctx.base_model)
    scores = implicit_reward_accuracy(policy, reference, tokenizer, ctx.gate.eval, ecfg.batch_size)
    acc_audit, metrics = accuracy_audit("preference_accuracy", scores["trained"], scores["base"], ecfg)
    gen_audits, gen_metrics, _ = generation_audits(policy, reference, tokenizer, ctx.gate.eval, ecfg)
    return EvalOutput([acc_audit, *gen_audits], {**metrics, **gen_metrics})


def main(args: DPOJobConfig, settings: Settings | None = None) -> dict[str, Any]:
    """Run one DPO job; returns the TrainingRun record."""
    from hfloop.config import get_settings

    return run_job(settings or get_settings(), "DPO", args, train_dpo, evaluate_dpo)


def run_dpo_on_window(
    settings: Settings, window_start: datetime, window_end: datetime, config: DPOJobConfig | None = None
) -> dict[str, Any]:
    """DPO on the pairs of [window_start, window_end) (the demo's entry point); the TrainingRun record."""
    cfg = config or DPOJobConfig()
    cfg.window_start_ms, cfg.window_end_ms = to_ms(window_start), to_ms(window_end)
    return main(cfg, settings)
