"""How many logits the code builds at once: the sizes the SFT loss and the RL log-prob pass
allocate by, defined here once so engine/plan's memory model counts the same numbers. No torch
here: the workbench's new-run form imports the plan."""

# the SFT loss's tokens per chunk (train/loss.py): on a CPU 128 x 49,152 fp32 logits = 25 MB, under
# the 32 MB above which glibc maps fresh pages for every allocation; a GPU wants fewer, larger products
LOSS_CHUNK_CPU, LOSS_CHUNK_GPU = 128, 1024

# completion positions per chunk of the RL log-prob pass (rollout.py): a chunk's logits (x vocabulary,
# fp32) are the largest tensor alive; 1,024 x 49,152 = 200 MB, 1,024 x 151,936 (Qwen) = 620 MB
LOGPROB_CHUNK = 1024
# a micro-batch whose fp32 logits stay under this takes them whole: the CPU default's (8 x ~200 x
# 49,152 x 4 = 315 MB) does, so its runs reproduce as before; the GPU preset's 64 x 400 does not
WHOLE_LOGITS_BYTES = 512 << 20
