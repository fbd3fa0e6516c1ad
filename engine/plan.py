"""How much memory a run needs per GPU, worked out from the model's shape and the config,
before anything is loaded (`engine plan`, and a GPU run's check before it loads).

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
  512 MB, chunks above;
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

import os
from dataclasses import dataclass
from pathlib import Path

from .modelshape import SHAPE_LIMITS, BadModelConfig, Shape, folder_shape, shape_of_config  # noqa: F401 (plan.Shape ...: the names callers know)
from .algorithms import for_config

GIB = 1 << 30
PROMPT_TOKENS = 192  # the longest default prompt (system prompt + a GSM8K question): 118 on average
RUNTIME_GPU = 0.75 * GIB  # the CUDA context and PyTorch's own buffers
RUNTIME_CPU = 0.55 * GIB  # Python with torch and transformers imported (measured here)
# engine/rollout.py's threshold, repeated: this module stays free of torch (the workbench's form imports it)
WHOLE_LOGITS_BYTES = 512 << 20  # RL log-probs keep logits whole below this


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
    if mc.train == "lora" or mc.load_8bit:
        per = {"q_proj": (s.hidden, s.hidden), "k_proj": (s.hidden, s.kv_heads * s.head_dim),
               "v_proj": (s.hidden, s.kv_heads * s.head_dim), "o_proj": (s.hidden, s.hidden),
               "gate_proj": (s.hidden, s.intermediate), "up_proj": (s.hidden, s.intermediate),
               "down_proj": (s.intermediate, s.hidden)}
        return s.layers * sum(mc.lora_rank * (a + b) for t in mc.lora_targets for a, b in [per.get(t, (0, 0))])
    n = min(mc.unfreeze_layers, s.layers)
    return n * s.layer_params() + s.vocab * s.hidden + s.hidden  # + lm_head (its own copy) + final norm


def estimate(cfg, shape: Shape, model: str, gpus: int = 1, memory: float | None = None, device: str = "cuda") -> Plan:
    mc, rc, ec = cfg.model, cfg.rl, cfg.eval
    gpu = device == "cuda"
    store = 2 if gpu or mc.dtype in ("bfloat16", "float16") else 4  # bytes a frozen value
    act = 2.5 if gpu else 4  # bytes an activation value: bf16 matmul inputs, fp32 norms
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
        chunk = 1024 if gpu else 128
        moments.append(Moment("sft step", [runtime, *parts_static, grads,
                                           Part("optimizer state", trained * (2 if cfg.sft.optimizer == "adamw8bit" else 8) / shards),
                                           Part("activations" + (" (checkpointed)" if ckpt else ""), activations(sft_tokens, ckpt)),
                                           Part("loss chunk logits", 3 * chunk * s.vocab * 4)]))
    if "rl" in cfg.run.phases:
        # five live copies at the peak: logits, the tempered copy, the entropy's softmax, and backward's
        # softmax and gradient (measured: the 135M model's RL update, docs/benchmarks.md)
        whole = rc.micro_batch * rc.max_new_tokens * s.vocab * 4
        logits = 5 * whole if whole <= WHOLE_LOGITS_BYTES else 5 * 1024 * s.vocab * 4
        parts = [runtime, *parts_static, grads, Part("optimizer state", trained * (2 if rc.optimizer == "adamw8bit" else 8) / shards),
                 Part("activations" + (" (checkpointed)" if ckpt else ""), activations(rl_tokens, ckpt)),
                 Part("log-prob logits", logits)]
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
    plan = Plan(model, s, gpus, device, memory, moments, trained, notes)
    if plan.fits is False:
        plan.notes += advice(cfg, plan)
    return plan


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


def fit(cfg, shape: Shape, model: str, gpus: int, memory: float) -> tuple[list[str], Plan]:
    """Micro-batches sized to the model: the `--set` changes (RL micro-batch halved, SFT batch
    halved with its accumulation doubled, the same batch in more passes) that make the run fit
    `memory`, and the plan with them. No changes when it fits as it is; the last plan when
    halving down to one still does not fit."""
    import copy

    cfg = copy.deepcopy(cfg)
    changes: dict[str, str] = {}
    plan = estimate(cfg, shape, model, gpus, memory)
    while not plan.fits:
        peak = plan.peak.name
        if peak == "rl update" and cfg.rl.micro_batch > 1:
            cfg.rl.micro_batch //= 2
            changes["rl.micro_batch"] = str(cfg.rl.micro_batch)
        elif peak == "sft step" and cfg.sft.batch_size > 1:
            cfg.sft.batch_size //= 2
            cfg.sft.grad_accum *= 2
            changes["sft.batch_size"], changes["sft.grad_accum"] = str(cfg.sft.batch_size), str(cfg.sft.grad_accum)
        elif peak == "decode" and cfg.eval.batch_size > max(1, rollout_rows(cfg)):  # else hf rollouts set the batch
            cfg.eval.batch_size //= 2
            changes["eval.batch_size"] = str(cfg.eval.batch_size)
        else:
            break
        plan = estimate(cfg, shape, model, gpus, memory)
    return [f"{k}={v}" for k, v in changes.items()], plan


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


def known_shape(name: str) -> Shape | None:
    """The shape of a model `engine models` lists, or of a local folder's config.json; None when
    neither is there. A config.json that is there but gives no model's shape is a BadModelConfig."""
    from .models import KNOWN

    known = KNOWN.get(name)
    if known and known.shape:
        return Shape(*known.shape)
    return folder_shape(Path(name).expanduser())


def render(plan: Plan) -> list[str]:
    s = plan.shape
    where = f"{plan.gpus} GPU{'s' if plan.gpus > 1 else ''}" if plan.device == "cuda" else "the CPU"
    mem = f" of {plan.memory / GIB:.0f} GiB" if plan.memory else ""
    lines = [f"{plan.model}: {s.params() / 1e9:.2f}B parameters ({s.layers} layers, hidden {s.hidden}, vocabulary {s.vocab:,}), "
             f"{plan.trained / 1e6:,.1f}M trained; per {'GPU' if plan.device == 'cuda' else 'process'} on {where}{mem}:"]
    for m in plan.moments:
        lines.append(f"  {m.name:10} {m.total / GIB:7.2f} GiB  " + ", ".join(f"{p.name} {p.bytes / GIB:.2f}" for p in m.parts if p.bytes >= 0.005 * GIB))
    peak = plan.peak
    if plan.fits is None:
        lines.append(f"peak: {peak.name}, {peak.total / GIB:.2f} GiB")
    elif plan.fits:
        lines.append(f"fits: the peak ({peak.name}) is {peak.total / GIB:.2f} GiB of {plan.memory / GIB:.0f} GiB")
    else:
        lines.append(f"does not fit: the {peak.name} needs {peak.total / GIB:.2f} GiB, {(peak.total - plan.memory) / GIB:.2f} GiB more "
                     f"than the {plan.memory / GIB:.0f} GiB there are")
    lines += [f"  - {n}" for n in plan.notes]
    return lines


# Measured on this project's 2-core CPU with the 135M model (docs/training.md, session 8's default
# run): SFT 25 min for 2,182 examples, two evaluations of 500 problems 10 min, RL 6 x 16 samples 4 min
CPU_SFT_S_PER_EXAMPLE = 0.69
CPU_EVAL_S_PER_PROBLEM = 0.54
CPU_RL_S_PER_SAMPLE = 2.5
LOAD_S = 20
VARIANTS_PER_TRACE = 0.63  # verified number variants made per GSM8K trace and per k asked (measured, k = 1-4)
GOLD_TRACES = 6404  # GSM8K training problems that convert to a gold trace: asking for more gives these


def sft_examples(cfg) -> int:
    """About how many examples SFT trains on: synthetic, GSM8K gold traces, their number variants
    and the model's own traces (the variants are counted from their measured yield, not made)."""
    if cfg.run.task != "trace":
        return cfg.data.train_size
    gold = min(cfg.data.gsm8k_traces, GOLD_TRACES)
    examples = cfg.data.train_size + gold + round(gold * cfg.data.gsm8k_variants * VARIANTS_PER_TRACE)
    if cfg.data.self_traces:
        examples += count_lines(Path(cfg.data.self_traces).expanduser())
    return examples


COUNT_BYTES = 4 << 20  # lines counted exactly up to here; beyond, the rest is estimated from the file's size


def count_lines(path: Path) -> int:
    """About how many non-empty lines a JSONL file holds, reading at most COUNT_BYTES of it (the
    new-run form asks on its UI thread: a 10 GB file costs no more than a small one); a FIFO, a
    device or a missing file counts 0 (the config check says what is wrong with it)."""
    from .safefile import open_regular

    try:
        with open_regular(path) as f:
            head = f.read(COUNT_BYTES)
            size = os.fstat(f.fileno()).st_size
    except OSError:
        return 0
    lines = sum(1 for line in head.split(b"\n") if line.strip())
    if size <= len(head) or not head:
        return lines
    return round(lines * size / len(head))


def stage_seconds(cfg, shape: Shape) -> dict[str, float]:
    """About how long each kind of stage takes on a CPU like this project's ("sft", "rl", and
    "eval" for one evaluation), from the measured rates of the default model scaled by the
    model's size: the form's estimate, and the run screen's for stages not started yet."""
    scale = shape.params() / 134.5e6
    out = {}
    if "sft" in cfg.run.phases:
        out["sft"] = sft_examples(cfg) * cfg.sft.epochs * CPU_SFT_S_PER_EXAMPLE * scale
    if "rl" in cfg.run.phases:
        algo = for_config(cfg)
        group = algo.group_size
        draws = 1.4 if cfg.rl.dynamic_sampling and algo.grouped else 1.0  # measured: 5.5 questions drawn per 4
        out["rl"] = cfg.rl.iterations * cfg.rl.questions * group * CPU_RL_S_PER_SAMPLE * scale * draws
    if "eval" in cfg.run.phases:
        out["eval"] = (cfg.eval.synthetic + cfg.eval.gsm8k) * CPU_EVAL_S_PER_PROBLEM * scale
    return out


def cpu_minutes(cfg, shape: Shape) -> float:
    """About how long a run takes on a CPU like this project's: for the new-run form's "about N minutes"."""
    parts = stage_seconds(cfg, shape)
    return (LOAD_S + parts.get("sft", 0.0) + parts.get("rl", 0.0) + len(cfg.eval.at) * parts.get("eval", 0.0)) / 60


def checkpoint_bytes(cfg, shape: Shape) -> float:
    """A step checkpoint: the trained weights and AdamW's two moments, fp32."""
    return trained_params(shape, cfg) * 4 * 3


def sized(cfg, gpus: int, memory: float, chosen: set[str]) -> tuple[list[str], str | None]:
    """For a GPU run about to load: micro-batches sized to the model and this GPU (`--set`s to
    apply; none that the user chose), or why it will not fit even so, with what to change."""
    try:
        shape = known_shape(cfg.model.name)
    except BadModelConfig as exc:
        return [], str(exc)
    if shape is None:
        return [], None
    changes, plan = fit(cfg, shape, cfg.model.name, gpus, memory)
    if any(c.split("=")[0] in chosen for c in changes):  # the user's own sizes are not changed behind their back
        changes, plan = [], estimate(cfg, shape, cfg.model.name, gpus, memory)
    return changes, None if plan.fits else "\n".join(render(plan))
