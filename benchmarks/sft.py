"""SFT speed: the engine's loop against TRL's SFTTrainer on the same model,
data and settings (batch 8, the default last layers + lm_head, completion-only loss),
the engine's loss fused with the output layer against the plain logits path, and the
prompt prefix every row shares (system prompt, chat template) run once against run per row.

    python benchmarks/sft.py [--steps 8] [--no-trl] [--gsm8k]
"""

from __future__ import annotations

import argparse
import tempfile
import time

import torch

from engine import config
from engine.data.prompts import end_of_turn, prompt_text, trace_answer, training_ids
from engine.data.gsm8k_traces import sample as gsm8k_examples
from engine.data.synthetic import generate as synthesize
from engine.modeling import fast_bf16, autocast, load_model, load_tokenizer, make_optimizer, pick_device
from engine.train.loss import answer_loss, fusable
from engine.train.sft import collate, length_grouped_batches


def ours(cfg, tok, examples, steps: int, variants: dict[str, tuple[bool, bool]]) -> dict[str, float]:
    """tokens/s of each variant (name: (loss fused, prompt prefix shared)) of the engine's SFT step.
    Every batch is run by every variant in turn, the order rotating, on one model: no variant
    gets the warmer heap or the shorter batches of running later."""
    model = load_model(cfg, tok, pick_device())
    head = fusable(model)
    rows = [training_ids(tok, e.question, trace_answer(e.trace), max_len=cfg.data.max_len) for e in examples]
    opt = make_optimizer(model, "adamw", cfg.sft.lr)
    batches = length_grouped_batches([len(r[0]) for r in rows], cfg.sft.batch_size, 0)[: steps + 1]
    names = list(variants)
    seconds, tokens = dict.fromkeys(names, 0.0), 0
    for i, idx in enumerate(batches):
        batch = collate([rows[j] for j in idx], tok.pad_token_id, model.device)
        for name in names[i % len(names):] + names[: i % len(names)]:
            fused, share = variants[name]
            start = time.perf_counter()
            with autocast(model, cfg.model.autocast):
                loss = answer_loss(model, batch, head if fused else None, share)
            loss.backward()
            opt.step()
            opt.zero_grad(set_to_none=True)
            if i >= 1:  # the first batch warms up
                seconds[name] += time.perf_counter() - start
        if i >= 1:
            tokens += int(batch["attention_mask"].sum())
    return {name: tokens / seconds[name] for name in names}


def trl(cfg, tok, examples, steps: int, bf16: bool) -> float:
    from datasets import Dataset
    from transformers import TrainerCallback
    from trl import SFTConfig, SFTTrainer

    model = load_model(cfg, tok, pick_device())
    data = Dataset.from_list([{"prompt": prompt_text(tok, e.question), "completion": trace_answer(e.trace) + end_of_turn(tok)} for e in examples])
    timing = {}

    class Clock(TrainerCallback):
        def on_step_begin(self, args, state, control, **kw):
            if state.global_step == 1:
                timing["start"] = time.perf_counter()

        def on_step_end(self, args, state, control, **kw):
            timing["end"] = time.perf_counter()

    with tempfile.TemporaryDirectory() as out:
        args = SFTConfig(output_dir=out, per_device_train_batch_size=cfg.sft.batch_size, max_steps=steps + 1,
                         learning_rate=cfg.sft.lr, logging_steps=1000, report_to="none", max_length=cfg.data.max_len,
                         completion_only_loss=True, save_strategy="no", use_cpu=not torch.cuda.is_available(),
                         dataloader_num_workers=0, lr_scheduler_type="constant", bf16=bf16,
                         activation_checkpointing=False)  # TRL turns it on by default; the engine does not use it
        trainer = SFTTrainer(model=model, args=args, train_dataset=data, processing_class=tok, callbacks=[Clock()])
        lengths = []
        orig = trainer.compute_loss

        def counting(model, inputs, *a, **kw):
            lengths.append(int(inputs["attention_mask"].sum()))
            return orig(model, inputs, *a, **kw)

        trainer.compute_loss = counting
        trainer.train()
    return sum(lengths[1:]) / (timing["end"] - timing["start"])


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--steps", type=int, default=8)
    p.add_argument("--model", default="smollm2-135m-instruct")
    p.add_argument("--no-trl", action="store_true", help="the engine's loss paths only")
    p.add_argument("--gsm8k", action="store_true", help="half the examples GSM8K gold traces, as in the default run's mix")
    args = p.parse_args()
    cfg = config.load(sets=[f"model.name={args.model}"])
    tok = load_tokenizer(cfg.model.name)
    examples = synthesize(cfg.sft.batch_size * (args.steps + 1), 0)
    if args.gsm8k:  # the default run's mix: GSM8K's longer traces beside the synthetic ones
        examples = [e for pair in zip(examples, gsm8k_examples(len(examples), 0)) for e in pair][: len(examples)]
    bf16 = fast_bf16(pick_device())
    speed = ours(cfg, tok, examples, args.steps, {"fused": (True, True), "logits": (False, True), "whole": (True, False)})
    a = speed["fused"]
    print(f"model {args.model}, batch {cfg.sft.batch_size}, {args.steps} timed steps, last {cfg.model.unfreeze_layers} layers + lm_head, "
          f"bf16 autocast {'on' if bf16 else 'off'}, {'half GSM8K traces' if args.gsm8k else 'synthetic traces'}")
    print(f"engine SFT step (loss fused with the output layer, shared prompt prefix run once): {a:,.0f} tokens/s")
    print(f"  the loss from logits instead:                  {speed['logits']:,.0f} tokens/s (fused {a / speed['logits']:.2f}x)")
    print(f"  every row's prompt prefix run whole instead:   {speed['whole']:,.0f} tokens/s (shared {a / speed['whole']:.2f}x)")
    if not args.no_trl:
        b = trl(cfg, tok, examples, args.steps, bf16)
        print(f"TRL SFTTrainer:                                    {b:,.0f} tokens/s (engine {a / b:.2f}x)")


if __name__ == "__main__":
    main()
