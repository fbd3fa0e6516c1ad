"""The memory model: how much memory a run needs per GPU, worked out from the model's shape and
the config, before anything is loaded (`engine plan`, and a GPU run's check before it loads).

Counted per rank, for the three moments that peak: an SFT step, an RL update, and
decoding (evaluations and hf rollouts). Each is the sum of
- weights: frozen ones in the storage dtype (bf16 on a GPU, fp32 on a CPU; int8 linear
  layers with model.load_8bit), trained ones as fp32 masters, plus the untied head's
  own copy (last_layers) and the sampler's bf16 copy (GPU) and the KL reference;
- gradients (fp32, one per trained value; DDP keeps them in its buckets) and the
  optimizer's state (AdamW: 8 bytes a trained value; 8-bit AdamW: 2);
- activations saved for backward in the layers that train (or whose inputs carry
  gradient): ~(6H + 2 KV + 4I) values a token per layer, fp32 on a CPU, mostly bf16
  under a GPU's autocast; with activation checkpointing one layer input a token per
  layer plus one layer's full set while it recomputes;
- logits: SFT's fused loss holds a chunk; RL's log-probs hold the micro-batch's logits
  whole (x5: logits, tempered copy, entropy, softmax and gradient in backward) up to
  512 MB, chunks above (engine/chunks.py holds both sizes, for the code and for this count);
  with rl.kl_coef > 0 the reference model's pass beside them (its logits, or every layer's
  hidden states where the logits are chunked);
- under FSDP (run.parallel=fsdp, several GPUs): weights, gradients and optimizer state
  divided over the ranks, plus the whole bf16 copy decoding uses, one decoder layer
  gathered at a time and the root (embeddings, head) gathered from forward to backward;
- the KV cache of a decoding batch; vLLM's share of the GPU (rl.vllm_memory) when
  rl.backend=vllm; the runtime (torch and the CUDA context, or the Python process);
- decoding also counts what training still holds while evaluations and hf rollouts run
  (held_while_decoding): the phase's optimizer state, DDP's gradient buckets, a resident vLLM.

Validated against measured peaks on this project's CPU for the 135M model
(benchmarks/plan.py; docs/benchmarks.md gives the error). GPU figures await a GPU
(scripts/gpu-check.sh measures one RL update against this estimate).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..chunks import LOGPROB_CHUNK, LOSS_CHUNK_CPU, LOSS_CHUNK_GPU, WHOLE_LOGITS_BYTES
from ..modelshape import Shape, folder_shape
from ..algorithms import for_config

GIB = 1 << 30
PROMPT_TOKENS = 192  # the longest default prompt (system prompt + a GSM8K question): 118 on average
RUNTIME_GPU = 0.75 * GIB  # the CUDA context and PyTorch's own buffers
RUNTIME_CPU = 0.55 * GIB  # Python with torch and transformers imported (measured here)


@dataclass
class Part:
    name: str
    bytes: float


@dataclass
class Moment:
    name: str  # sft step, rl update, decode
    parts: list[Part]

    @property
    def total(self) -> float:
        return sum(p.bytes for p in self.parts)


@dataclass
class Plan:
    model: str
    shape: Shape
    gpus: int
    device: str  # cuda or cpu
    memory: float | None  # bytes per GPU (or of the machine), None = not asked
    moments: list[Moment]
    trained: int
    notes: list[str]

    @property
    def peak(self) -> Moment:
        return max(self.moments, key=lambda m: m.total)

    @property
    def fits(self) -> bool | None:
        return None if self.memory is None else self.peak.total <= self.memory


def trained_params(s: Shape, cfg) -> int:
    mc = cfg.model
    if mc.train == "full" and not mc.load_8bit:
        return s.params()
    if mc.train == "lora" or mc.load_8bit:  # rank x (in + out) for each adapted linear layer of each layer
        linears = s.linears()
        return s.layers * sum(mc.lora_rank * (a + b) for t in mc.lora_targets for a, b in [linears.get(t, (0, 0))])
    n = min(mc.unfreeze_layers, s.layers)
    return n * s.layer_params() + s.vocab * s.hidden + s.hidden  # + lm_head (its own copy) + final norm


# The most an activation value can take: fp32 (a GPU's autocast keeps matmul inputs in bf16, norms
# and a fully trained model's residual stream in fp32; the 2.5 bytes a value counted for a GPU is
# unmeasured). `plan.grow` spends room only where the run fits even at this.
WORST_ACT = 4.0


def peaks(cfg, shape: Shape, model: str, gpus: int = 1, memory: float | None = None, device: str = "cuda",
          act: float | None = None) -> Plan:
    """The three moments that peak, each part by part (the module's docstring says what is counted);
    no advice yet (plan.fit.estimate adds it where the peak does not fit). `act`: bytes an
    activation value, instead of the device's own figure."""
    mc, rc, ec = cfg.model, cfg.rl, cfg.eval
    gpu = device == "cuda"
    store = 2 if gpu or mc.dtype in ("bfloat16", "float16") else 4  # bytes a frozen value
    act = act or (2.5 if gpu else 4)  # bytes an activation value: bf16 matmul inputs, fp32 norms
    s, notes = shape, []
    total, trained = s.params(), trained_params(s, cfg)
    lora = mc.train == "lora" or mc.load_8bit
    # trained values that are part of `total` (a tied model's head is a copy beside its embeddings)
    inside = 0 if lora else trained - (s.vocab * s.hidden if mc.train == "last_layers" and s.tied else 0)
    weights = (total - inside) * store + trained * 4
    if mc.load_8bit:
        weights = (total - s.linear_params()) * store + s.linear_params() * 1 + trained * 4
    shards = gpus if cfg.run.parallel == "fsdp" and gpus > 1 else 1
    if shards > 1:  # every weight sharded in fp32 (engine/parallel.py), gathered in bf16
        root = s.vocab * s.hidden * (1 if s.tied else 2)
        parts_static = [Part(f"weights (1/{shards})", total * 4 / shards),
                        Part("gathered layer + root", (2 * s.layer_params() + root) * 2),
                        Part("whole copy for decoding", total * (2 if gpu else 4))]
    else:
        parts_static = [Part("weights", weights)]
    if gpu and mc.generate_dtype != "float32" and shards == 1:
        parts_static.append(Part("sampler's bf16 copy", total * 2))
    if rc.kl_coef > 0:
        parts_static.append(Part("KL reference model", weights))
    grads = Part("gradients" + (f" (1/{shards})" if shards > 1 else ""), trained * 4 / shards)
    runtime = Part("runtime", RUNTIME_GPU if gpu else RUNTIME_CPU)

    # layers whose activations are kept: the trained ones (LoRA and full: all of them)
    deep = s.layers if (lora or mc.train == "full") else min(mc.unfreeze_layers, s.layers)
    per_token = 6 * s.hidden + 2 * s.kv_heads * s.head_dim + 4 * s.intermediate

    def activations(tokens: int, checkpointing: bool) -> float:
        if checkpointing:
            return tokens * (deep * s.hidden + per_token) * act
        return tokens * deep * per_token * act

    ckpt = mc.activation_checkpointing
    sft_tokens = cfg.sft.batch_size * cfg.data.max_len
    rl_len = PROMPT_TOKENS + rc.max_new_tokens
    rl_tokens = rc.micro_batch * rl_len
    moments = []
    if "sft" in cfg.run.phases:
        chunk = LOSS_CHUNK_GPU if gpu else LOSS_CHUNK_CPU
        moments.append(Moment("sft step", [runtime, *parts_static, grads,
                                           Part("optimizer state", trained * (2 if cfg.sft.optimizer == "adamw8bit" else 8) / shards),
                                           Part("activations" + (" (checkpointed)" if ckpt else ""), activations(sft_tokens, ckpt)),
                                           Part("loss chunk logits", 3 * chunk * s.vocab * 4)]))
    if "rl" in cfg.run.phases:
        # five live copies at the peak: logits, the tempered copy, the entropy's softmax, and backward's
        # softmax and gradient (measured: the 135M model's RL update, docs/benchmarks.md)
        whole = rc.micro_batch * rc.max_new_tokens * s.vocab * 4
        logits = 5 * whole if whole <= WHOLE_LOGITS_BYTES else 5 * LOGPROB_CHUNK * s.vocab * 4
        parts = [runtime, *parts_static, grads, Part("optimizer state", trained * (2 if rc.optimizer == "adamw8bit" else 8) / shards),
                 Part("activations" + (" (checkpointed)" if ckpt else ""), activations(rl_tokens, ckpt)),
                 Part("log-prob logits", logits)]
        if rc.kl_coef > 0:  # the reference model's pass, without gradients, while the policy's activations wait for backward:
            # its logits, or, where they are chunked, every layer's hidden states (output_hidden_states;
            # fp32 when the whole model trains: its embeddings are fp32 masters, and so is the stream)
            parts.append(Part("KL reference pass", 2 * whole if whole <= WHOLE_LOGITS_BYTES
                              else (s.layers + 1) * rl_tokens * s.hidden * (WORST_ACT if mc.train == "full" and not lora else act)))
        if rc.backend == "vllm" and gpu and memory:
            parts.append(Part("vLLM (rl.vllm_memory)", rc.vllm_memory * memory))
        moments.append(Moment("rl update", parts))
    decode_batch = max(ec.batch_size, rollout_rows(cfg))
    decode_len = PROMPT_TOKENS + max(ec.max_new_tokens, rc.max_new_tokens)
    kv = 2 * s.layers * s.kv_heads * s.head_dim * decode_len * decode_batch * (2 if gpu else 4)
    moments.append(Moment("decode", [runtime, *parts_static, *held_while_decoding(cfg, trained, shards, gpus, gpu, memory),
                                     Part(f"KV cache ({decode_batch} x {decode_len} tokens)", kv),
                                     Part("logits", decode_batch * s.vocab * 4 * 2)]))
    if gpus > 1 and shards == 1:
        notes.append(f"DDP: every one of the {gpus} GPUs holds all of the above; more GPUs add speed, not room "
                     "(--set run.parallel=fsdp shards weights, gradients and optimizer state)")
    return Plan(model, s, gpus, device, memory, moments, trained, notes)


def rollout_rows(cfg) -> int:
    """The rows hf rollouts decode in one batch: an iteration's every sample (0 without them)."""
    rc = cfg.rl
    return rc.questions * for_config(cfg).group_size if "rl" in cfg.run.phases and rc.backend == "hf" else 0


def held_while_decoding(cfg, trained: int, shards: int, gpus: int, gpu: bool, memory: float | None) -> list[Part]:
    """What is still allocated when decoding runs: evaluations and hf rollouts come between the
    optimizer steps of a phase (and right after its last), so Adam's state of that phase is there
    (the larger phase's); DDP's gradient buckets are never freed (gradient_as_bucket_view); a
    vLLM engine stays resident from RL's start unless rl.vllm_sleep frees it after each rollout.
    (Gradients themselves are freed after each step: zero_grad(set_to_none=True).)"""
    rc, phases = cfg.rl, cfg.run.phases
    states = [trained * (2 if opt == "adamw8bit" else 8) / shards
              for phase, opt in (("sft", cfg.sft.optimizer), ("rl", rc.optimizer)) if phase in phases]
    held = [Part("optimizer state", max(states))] if states else []
    if gpus > 1 and shards == 1:
        held.append(Part("gradients (DDP's buckets)", trained * 4))
    if "rl" in phases and rc.backend == "vllm" and not rc.vllm_sleep and gpu and memory:
        held.append(Part("vLLM (rl.vllm_memory)", rc.vllm_memory * memory))
    return held


def known_shape(name: str) -> Shape | None:
    """The shape of a model `engine models` lists, or of a local folder's config.json; None when
    neither is there. A config.json that is there but gives no model's shape is a BadModelConfig."""
    from ..models import KNOWN

    known = KNOWN.get(name)
    if known and known.shape:
        return Shape(*known.shape)
    return folder_shape(Path(name).expanduser())


def checkpoint_bytes(cfg, shape: Shape) -> float:
    """A step checkpoint: the trained weights and AdamW's two moments, fp32."""
    return trained_params(shape, cfg) * 4 * 3
