"""TRL's GRPOTrainer under torchrun with the trace session: run by tests/test_trl.py with 2 gloo ranks."""

import sys

import datasets
import trl

from engine.data.synthetic import generate
from engine.integrations.trl import TraceSession
from engine.modeling import load_tokenizer, tiny_model
from engine.parallel import end_process_group

folder, out = sys.argv[1], sys.argv[2]
tok = load_tokenizer("smollm2-135m-instruct")
rows = [{"prompt": e.question, "answer": float(e.answer), "expert": e.expert} for e in generate(8, 0)]
args = trl.GRPOConfig(output_dir=out, max_steps=2, per_device_train_batch_size=2, num_generations=2,
                      max_completion_length=8, logging_steps=1, report_to=[], save_strategy="no",
                      use_cpu=True, bf16=False, learning_rate=1e-4, seed=0)
with TraceSession(folder, max_completion_length=8) as run:
    trainer = trl.GRPOTrainer(model=tiny_model(tok), processing_class=tok, reward_funcs=[run.reward],
                              train_dataset=datasets.Dataset.from_list(rows), args=args, callbacks=[run.callback()])
    trainer.train()
print(f"rank {run.rank} done", flush=True)
# the group accelerate made, ended here as a training script should: what holds it (the
# trainer's wrapped model) freed, a barrier, destroyed; left to interpreter exit, gloo's threads
# can abort the process
del trainer
end_process_group()
