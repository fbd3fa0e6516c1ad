"""What to change when a run's peak does not fit its memory, the cheapest change first: the
notes `engine plan` and a GPU run's refusal print under the table."""

from __future__ import annotations

from .memory import GIB, Plan, rollout_rows


def advice(cfg, plan: Plan) -> list[str]:
    """What to change when the peak does not fit, the cheapest first."""
    out, peak = [], plan.peak
    over = peak.total - plan.memory
    acts = sum(p.bytes for p in peak.parts if p.name.startswith("activations"))
    if not cfg.model.activation_checkpointing and acts > over * 0.5:
        out.append("--set model.activation_checkpointing=true (activations are "
                   f"{acts / GIB:.1f} GiB of the {peak.name})")
    if peak.name == "rl update" and cfg.rl.micro_batch > 1:
        out.append(f"--set rl.micro_batch={max(1, cfg.rl.micro_batch // 2)} (fewer completions a pass)")
    if peak.name == "sft step" and cfg.sft.batch_size > 1:
        out.append(f"--set sft.batch_size={max(1, cfg.sft.batch_size // 2)} --set sft.grad_accum={cfg.sft.grad_accum * 2} (the same batch in two passes)")
    if peak.name == "decode" and cfg.eval.batch_size > rollout_rows(cfg):
        out.append(f"--set eval.batch_size={max(1, cfg.eval.batch_size // 2)} (a smaller decoding batch)")
    elif peak.name == "decode":
        out.append(f"--set rl.questions={max(1, cfg.rl.questions // 2)} (hf rollouts decode an iteration's "
                   f"{rollout_rows(cfg)} samples in one batch)")
    if plan.gpus > 1 and cfg.run.parallel != "fsdp":
        out.append(f"--set run.parallel=fsdp (weights, gradients and optimizer state split over the {plan.gpus} GPUs)")
    if cfg.model.train == "full":
        out.append("--set model.train=last_layers or model.train=lora (gradients and optimizer state for fewer weights)")
    if cfg.rl.optimizer == "adamw" or cfg.sft.optimizer == "adamw":
        out.append("--set sft.optimizer=adamw8bit --set rl.optimizer=adamw8bit (2 bytes of optimizer state a weight, not 8)")
    if not cfg.model.load_8bit and cfg.model.train == "lora":
        out.append("--set model.load_8bit=true (frozen linear layers in 1 byte a weight)")
    return out
