"""What every slow-loop job shares: the base job config, Ray start-up, the Ray Train
driver call, and the worker-side plumbing (resume, checkpoint reporting, pid files).

Workers receive plain dicts (the job config as ``asdict`` and the gated pairs) so the same
training function runs under a local Ray, a cluster (``--address``) or a KubeRay RayJob.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, TypeVar

from hfloop.training.evaluate import EvalConfig
from hfloop.training.gate import GateConfig

C = TypeVar("C", bound="TrainJobConfig")


@dataclass
class TrainJobConfig:
    """Fields every job (DPO, reward, RLHF) has. Defaults suit the tiny CPU model."""

    model: str = field(
        default="",
        metadata={
            "help": "Base model: any Hugging Face causal LM path or name. Empty: the tiny local base model."
        },
    )
    window: str = field(
        default="7d", metadata={"help": "Length of the preference window ending at window_end."}
    )
    window_end_ms: int | None = field(
        default=None, metadata={"help": "Window end (epoch ms, exclusive); None = now."}
    )
    window_start_ms: int | None = field(
        default=None, metadata={"help": "Explicit window start (epoch ms); overrides window."}
    )
    offsets: list[dict[str, Any]] | None = field(
        default=None,
        metadata={"help": "Replay exactly these PartitionRange offsets (from a TrainingRun record)."},
    )
    tenant_id: str | None = field(default=None, metadata={"help": "Only this tenant's pairs (None: all)."})
    run_id: str | None = field(
        default=None, metadata={"help": "Run id; reuse one to resume its checkpoints."}
    )
    ray_address: str | None = field(
        default=None, metadata={"help": "Ray cluster address; None starts a local Ray."}
    )
    num_workers: int = field(default=2, metadata={"help": "Ray Train workers (data-parallel ranks)."})
    use_gpu: bool = field(default=False, metadata={"help": "One GPU per worker."})
    cpus_per_worker: int = field(default=1, metadata={"help": "CPUs (and torch threads) per worker."})
    max_failures: int = field(
        default=2, metadata={"help": "Worker-group restarts from the last checkpoint (FailureConfig)."}
    )
    max_steps: int = field(default=30, metadata={"help": "Optimizer steps."})
    per_device_batch_size: int = field(default=8, metadata={"help": "Pairs per worker per step."})
    gradient_accumulation_steps: int = field(
        default=1, metadata={"help": "Micro-batches per optimizer step."}
    )
    learning_rate: float = field(default=1e-4, metadata={"help": "Peak AdamW learning rate."})
    warmup_steps: int = field(default=3, metadata={"help": "Linear warm-up steps."})
    max_length: int = field(default=256, metadata={"help": "Token limit of prompt + answer."})
    save_steps: int = field(
        default=10, metadata={"help": "Checkpoint (step, optimizer, scheduler, config) every N steps."}
    )
    logging_steps: int = field(default=5, metadata={"help": "Log the loss every N steps."})
    bf16: bool = field(default=False, metadata={"help": "bf16 mixed precision (GPU)."})
    lora: bool = field(
        default=False, metadata={"help": "Train a LoRA adapter (peft) instead of all weights."}
    )
    lora_r: int = field(default=16, metadata={"help": "LoRA rank."})
    lora_alpha: int = field(default=32, metadata={"help": "LoRA alpha."})
    seed: int = field(default=0, metadata={"help": "Seed of data order, init and sampling."})
    promote: bool = field(default=True, metadata={"help": "Promote when every evaluation audit passes."})
    publish: bool = field(default=True, metadata={"help": "Send the TrainingRun record to hfloop.training."})
    gate: GateConfig = field(default_factory=GateConfig, metadata={"help": "Data-quality gate settings."})
    eval: EvalConfig = field(default_factory=EvalConfig, metadata={"help": "Evaluation gate settings."})

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls: type[C], data: dict[str, Any]) -> C:
        known = {f.name for f in fields(cls)}
        kwargs = {k: v for k, v in data.items() if k in known}
        if isinstance(kwargs.get("gate"), dict):
            kwargs["gate"] = GateConfig(**kwargs["gate"])
        if isinstance(kwargs.get("eval"), dict):
            kwargs["eval"] = EvalConfig(**kwargs["eval"])
        return cls(**kwargs)


def help_of(cls: type, name: str) -> str:
    """The help text of a config field (for the CLI)."""
    for f in fields(cls):
        if f.name == name:
            return str(f.metadata.get("help", ""))
    raise KeyError(name)


# --- driver side ---------------------------------------------------------------------------


def ensure_ray(address: str | None, num_cpus: int | None = None, object_store_mb: int = 256) -> bool:
    """Connect to ``address`` or start a small local Ray; True when this call started it."""
    import ray

    if ray.is_initialized():
        return False
    if address:
        ray.init(address=address, ignore_reinit_error=True, log_to_driver=False)
    else:
        ray.init(
            num_cpus=num_cpus or max(2, (os.cpu_count() or 2)),
            object_store_memory=object_store_mb * 2**20,
            include_dashboard=False,
            log_to_driver=False,
            ignore_reinit_error=True,
        )
    return True


def fit(train_fn: Any, loop_config: dict[str, Any], cfg: TrainJobConfig, storage: Path, name: str) -> Any:
    """Run ``train_fn`` on ``cfg.num_workers`` Ray Train workers; returns the Ray Train Result.

    Re-running with the same ``storage``/``name`` resumes from the run's last checkpoint;
    within a run, ``FailureConfig(max_failures)`` restarts a failed worker group from it.
    """
    from ray.train import CheckpointConfig, FailureConfig, RunConfig, ScalingConfig
    from ray.train.torch import TorchTrainer

    storage.mkdir(parents=True, exist_ok=True)
    resources = {"CPU": cfg.cpus_per_worker}
    if cfg.use_gpu:
        resources["GPU"] = 1
    trainer = TorchTrainer(
        train_fn,
        train_loop_config=loop_config,
        scaling_config=ScalingConfig(
            num_workers=cfg.num_workers, use_gpu=cfg.use_gpu, resources_per_worker=resources
        ),
        run_config=RunConfig(
            name=name,
            storage_path=str(storage.resolve()),
            failure_config=FailureConfig(max_failures=cfg.max_failures),
            checkpoint_config=CheckpointConfig(num_to_keep=2),
        ),
    )
    return trainer.fit()


# --- worker side ---------------------------------------------------------------------------


@dataclass
class WorkerContext:
    rank: int
    world_size: int
    output_dir: str
    resume_from: str | None
    resumed_step: int
    resumed_phase: str | None = None  # multi-phase jobs (RLHF: reward, then policy)


def worker_context(loop_config: dict[str, Any]) -> WorkerContext:
    """Rank, a local output folder, and the checkpoint to resume from (if Ray Train has one).

    Each worker also drops ``pids/rank<r>-<pid>`` in the run folder: it is how an operator
    (or the chaos test) finds and kills a worker, and how a restart shows up afterwards.
    """
    import ray.train
    import torch

    ctx = ray.train.get_context()
    rank, world = ctx.get_world_rank(), ctx.get_world_size()
    torch.set_num_threads(max(1, int(loop_config["job"].get("cpus_per_worker", 1))))
    run_dir = Path(loop_config["run_dir"])
    (run_dir / "pids").mkdir(parents=True, exist_ok=True)
    (run_dir / "pids" / f"rank{rank}-{os.getpid()}").write_text(str(os.getpid()))
    output_dir = tempfile.mkdtemp(prefix=f"hfloop-{loop_config['run_id']}-rank{rank}-")
    resume_from, step, phase = None, 0, None
    checkpoint = ray.train.get_checkpoint()
    if checkpoint is not None:
        local = Path(output_dir) / "resume"
        checkpoint.to_directory(str(local))
        resume_from = str(local / "checkpoint")
        state = json.loads((Path(resume_from) / "trainer_state.json").read_text())
        step = int(state.get("global_step", 0))
        job_file = Path(resume_from) / "hfloop_job.json"
        if job_file.exists():
            phase = json.loads(job_file.read_text()).get("phase")
    return WorkerContext(rank, world, output_dir, resume_from, step, phase)


def report_callback(job_config: dict[str, Any], phase: str | None = None) -> Any:
    """RayTrainReportCallback that also stores the job config inside each checkpoint.

    The Hugging Face checkpoint already holds the step (trainer_state.json), optimizer,
    scheduler and RNG states; with the config beside them a checkpoint is a complete,
    resumable description of the run.
    """
    from ray.train.huggingface.transformers import RayTrainReportCallback

    class _Callback(RayTrainReportCallback):  # type: ignore[misc]
        def on_save(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            import transformers.trainer

            last = transformers.trainer.get_last_checkpoint(args.output_dir)
            if last is not None and state.is_world_process_zero:
                Path(last, "hfloop_job.json").write_text(
                    json.dumps({**job_config, "phase": phase}, default=str)
                )
            super().on_save(args, state, control, **kwargs)

    return _Callback()


def loss_curve(log_history: list[dict[str, Any]]) -> list[float]:
    return [float(h["loss"]) for h in log_history if "loss" in h]


def finish_worker(
    trainer: Any,
    ctx: WorkerContext,
    artifact_dir: str,
    extra: dict[str, Any] | None = None,
    cleanup: bool = True,
) -> dict[str, Any]:
    """Save the final model (rank 0 writes), clean the scratch folder; returns train metrics."""
    curve = loss_curve(trainer.state.log_history)
    metrics = {
        "global_step": int(trainer.state.global_step),
        "loss_first": curve[0] if curve else float("nan"),
        "loss_last": curve[-1] if curve else float("nan"),
        "loss_curve": curve,
        "resumed_from_step": ctx.resumed_step,
        "world_size": ctx.world_size,
        **(extra or {}),
    }
    trainer.save_model(artifact_dir)  # every rank calls it; only the main process writes
    if ctx.rank == 0:
        trainer.processing_class.save_pretrained(artifact_dir)
        Path(artifact_dir, "train_metrics.json").write_text(json.dumps(metrics))
    if cleanup:
        shutil.rmtree(ctx.output_dir, ignore_errors=True)
    return metrics


def lora_config(cfg: TrainJobConfig, task_type: str = "CAUSAL_LM") -> Any:
    if not cfg.lora:
        return None
    from peft import LoraConfig

    return LoraConfig(
        r=cfg.lora_r,
        lora_alpha=cfg.lora_alpha,
        lora_dropout=0.0,
        target_modules="all-linear",
        task_type=task_type,
    )


def load_tokenizer(path: str) -> Any:
    """The tokenizer of a model path, with a pad token (TRL batches need one)."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(path)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def trainer_args(
    cfg: Any, *, output_dir: str, max_steps: int, learning_rate: float, **extra: Any
) -> dict[str, Any]:
    """Keyword arguments every TRL config of the slow loop shares (DPO, reward, RLOO/GRPO):
    constant LR after warmup, checkpoints every ``save_steps`` (resume), no external reporting,
    CPU unless ``use_gpu``, and bf16 only on a GPU."""
    return {
        "output_dir": output_dir,
        "max_steps": max_steps,
        "per_device_train_batch_size": cfg.per_device_batch_size,
        "gradient_accumulation_steps": cfg.gradient_accumulation_steps,
        "learning_rate": learning_rate,
        "lr_scheduler_type": "constant_with_warmup",
        "warmup_steps": cfg.warmup_steps,
        "save_strategy": "steps",
        "save_steps": cfg.save_steps,
        "logging_steps": cfg.logging_steps,
        "report_to": [],
        "disable_tqdm": True,
        "use_cpu": not cfg.use_gpu,
        "bf16": cfg.bf16 and cfg.use_gpu,
        "gradient_checkpointing": False,
        "seed": cfg.seed,
        "ddp_find_unused_parameters": False,
        **extra,
    }
