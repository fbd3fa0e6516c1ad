"""FSDP2 on one gloo rank (run by tests/test_backends.py): the folder vLLM starts from keeps the
untied head of a `last_layers` model. Prints what the test checks, one fact a line."""

import json
import sys
from pathlib import Path

import torch.distributed as dist
from safetensors import safe_open
from torch.distributed.fsdp import fully_shard

from engine import config
from engine.backends import is_untied, start_folder
from engine.modeling import decoder_layers, load_tokenizer, select_trainable, tiny_model
from engine.parallel import end_process_group

dist.init_process_group("gloo")
tok = load_tokenizer("smollm2-135m-instruct")
model = select_trainable(tiny_model(tok), config.load(sets=["model.train=last_layers", "model.unfreeze_layers=1"]))
for layer in decoder_layers(model):
    fully_shard(layer)
fully_shard(model, reshard_after_forward=False)
head, emb = model.get_output_embeddings().weight, model.get_input_embeddings().weight
print("dtensor:", type(head).__name__, "data_ptrs equal:", head.data_ptr() == emb.data_ptr())
print("untied:", is_untied(model))
folder = start_folder(model, tok, Path(sys.argv[1]))
with safe_open(str(folder / "model.safetensors"), "pt") as f:
    print("lm_head saved:", "lm_head.weight" in set(f.keys()))
print("config ties:", json.loads((folder / "config.json").read_text())["tie_word_embeddings"])
del model  # the sharded model holds the group: freed before it ends
end_process_group()
