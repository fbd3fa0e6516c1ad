"""Load a model for training: by name, path or hub id; the tiny preset; the
device and dtype; 8-bit loading (bitsandbytes, here and nowhere else); what is
trained (the last N layers + lm_head, LoRA adapters, or everything); the
optimizer."""

from __future__ import annotations

import contextlib
import logging
import os
import warnings
from pathlib import Path

import torch

# bitsandbytes logs a warning about an optional CPU 4-bit kernel package on import; it changes nothing here.
logging.getLogger("bitsandbytes.backends.cpu.ops").setLevel(logging.ERROR)


class _Once(logging.Filter):
    """Lets each distinct message through once. bitsandbytes says "inputs will be cast ... to
    float16" on every 8-bit matmul: ~630 lines for three forward passes of a 135M model."""

    def __init__(self):
        super().__init__()
        self.seen: set[str] = set()

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if message in self.seen:
            return False
        self.seen.add(message)
        return True


logging.getLogger("bitsandbytes.autograd._functions").addFilter(_Once())

from transformers import AutoModelForCausalLM, AutoTokenizer, LlamaConfig, LlamaForCausalLM

from .models import DEFAULT_MODEL, TINY, ModelNotFound, resolve


def pick_device(wanted: str = "auto") -> torch.device:
    """`cuda` (or auto on a GPU machine) is this process's own GPU under torchrun: cuda:LOCAL_RANK."""
    local = int(os.environ.get("LOCAL_RANK", 0))
    if wanted == "cuda" or (wanted == "auto" and torch.cuda.is_available()):
        return torch.device("cuda", local)
    if wanted != "auto":
        return torch.device(wanted)
    if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def pick_dtype(wanted: str, device: torch.device) -> torch.dtype:
    if wanted != "auto":
        return getattr(torch, wanted)
    if device.type == "cuda" and torch.cuda.is_bf16_supported():
        return torch.bfloat16
    return torch.float32  # CPU bf16 matmuls are slower than fp32 on most CPUs


def use_autocast(device: torch.device, mode: str = "auto") -> bool:
    """bf16 autocast wherever the device does bf16 fast (or when asked): trained weights
    stay fp32 masters (see keep_master_weights), the matmuls run in bf16."""
    return mode == "on" or (mode == "auto" and fast_bf16(device))


def autocast(model, mode: str = "auto"):
    """The autocast context for forward passes that train. On a CPU with AMX or
    AVX512-BF16 an SFT step runs ~2.5x faster with the same loss; on a GPU the frozen
    weights are stored in bf16 and the trained ones in fp32, so autocast is required."""
    device = next(model.parameters()).device
    if not use_autocast(device, mode):
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=torch.bfloat16)


def keep_master_weights(model) -> None:
    """Trained parameters in fp32, whatever the storage dtype of the rest. AdamW on bf16
    weights rounds most small updates away (at lr 1e-5, 90% of them); frozen weights
    may stay bf16 and save memory."""
    for p in model.parameters():
        if p.requires_grad and p.dtype in (torch.bfloat16, torch.float16):
            p.data = p.data.float()


def fast_bf16(device: torch.device) -> bool:
    """Whether bf16 matmuls beat fp32 here. On a CPU that takes AMX tiles: AVX512-BF16
    alone runs bf16 slower than fp32 (measured on this project's CI machine: an SFT step
    1.45x slower, decoding 1.6x slower), so those CPUs keep fp32."""
    if device.type == "cuda":
        return torch.cuda.is_available() and torch.cuda.is_bf16_supported()
    if device.type == "cpu":
        return cpu_has_amx()
    return False


def cpu_has_amx() -> bool:
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            for line in f:
                if line.startswith("flags"):
                    return "amx_bf16" in line.split()
    except OSError:
        pass
    init = getattr(getattr(torch._C, "_cpu", None), "_init_amx", None)  # True only where AMX is usable
    return bool(init()) if init else False


def load_tokenizer(name: str):
    path = resolve(DEFAULT_MODEL if name == TINY else name)
    try:
        tok = AutoTokenizer.from_pretrained(path)
    except OSError as exc:
        raise ModelNotFound(_not_found(name, exc)) from None
    except Exception as exc:  # a folder's files the loader chokes on: one line naming the folder, no traceback
        raise ModelNotFound(_unloadable(path, "tokenizer", exc)) from None
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    tok.padding_side = "left"  # generation continues from the right edge
    return tok


def _unloadable(path: str, what: str, exc: Exception) -> str:
    from .numbers import brief

    return f"{path}: its {what} cannot be loaded ({type(exc).__name__}: {brief(str(exc).splitlines()[0] if str(exc) else '', 120)})"


def _not_found(name: str, exc: Exception) -> str:
    return (
        f"The model {name!r} cannot be loaded: it is not a known name (engine models), a local folder, "
        f"or a hub id reachable from here ({type(exc).__name__})."
    )


def tiny_model(tokenizer, seed: int = 0) -> LlamaForCausalLM:
    """A randomly initialised Llama of ~3M parameters with the default tokenizer's vocabulary."""
    torch.manual_seed(seed)
    cfg = LlamaConfig(
        vocab_size=len(tokenizer), hidden_size=64, intermediate_size=192, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=2048, tie_word_embeddings=True,
        bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id,
    )
    return LlamaForCausalLM(cfg)


def setup_notes(cfg, device: torch.device) -> list[str]:
    """What a person should know about the device and loading choices (the run emits them as alerts)."""
    import shutil

    notes = []
    if device.type == "cpu" and shutil.which("nvidia-smi") and not torch.cuda.is_available():
        notes.append("nvidia-smi sees a GPU but this torch cannot use it: training runs on the CPU. "
                     "Install a CUDA build of torch that fits the driver (scripts/setup.sh says how).")
    elif device.type == "cpu" and torch.cuda.is_available():
        notes.append("a GPU is available but model.device=cpu: training runs on the CPU")
    if cfg.model.load_8bit and cfg.model.train != "lora":
        notes.append("8-bit weights cannot take gradients: training LoRA adapters instead of " + cfg.model.train)
    if cfg.model.load_8bit and device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        if free > 8 * 2 * 2e9:  # room for a 2B model in bf16 eight times over
            notes.append(f"8-bit loading on a GPU with {free / 2**30:.0f} GiB free: the model fits in bf16, and 8-bit "
                         "matmuls run slower (dequantised every step); use model.load_8bit=false unless memory is short")
    return notes


def load_model(cfg, tokenizer, device: torch.device):
    """The model as configured, on its device, with only the chosen parameters trainable."""
    mc = cfg.model
    dtype = pick_dtype(mc.dtype, device)
    if mc.name == TINY:
        model = tiny_model(tokenizer, cfg.run.seed).to(device=device, dtype=dtype)
    else:
        kwargs = {"dtype": dtype}
        if mc.load_8bit:
            from transformers import BitsAndBytesConfig

            kwargs["quantization_config"] = BitsAndBytesConfig(load_in_8bit=True)
            kwargs["device_map"] = {"": device.index if device.type == "cuda" else device.type}
        path = resolve(mc.name)
        try:
            model = AutoModelForCausalLM.from_pretrained(path, **kwargs)
        except OSError as exc:
            raise ModelNotFound(_not_found(mc.name, exc)) from None
        except Exception as exc:  # a folder's weights or config the loader chokes on: one line, no traceback
            raise ModelNotFound(_unloadable(path, "model", exc)) from None
        if not mc.load_8bit:
            model.to(device)
    model.config.use_cache = True
    model = select_trainable(model, cfg)
    if mc.init_from:
        start_from(model, Path(mc.init_from).expanduser())
    keep_master_weights(model)
    if mc.activation_checkpointing:
        checkpoint_activations(model, adapters=mc.train == "lora" or mc.load_8bit)
    return model


def fusable(model) -> torch.nn.Linear | None:
    """The plain output layer the fused loss (train/loss.py) and the chunked log-prob
    pass (rollout.py) can use, else None (a bias, a quantized or wrapped head)."""
    get = getattr(model, "get_output_embeddings", None)
    head = get() if get else None
    if type(head) is torch.nn.Linear and head.bias is None and head.weight.dtype in (torch.float32, torch.bfloat16, torch.float16):
        return head
    return None


def checkpoint_activations(model, adapters: bool = False) -> None:
    """Each decoder layer keeps only its input for backward and recomputes the rest
    (non-reentrant: frozen layers and inputs that need no grad are fine). A shared prompt
    prefix is then not continued from in training passes (prefix.checkpointed).

    Enabling it in transformers 5 always makes the embeddings' output require grad
    (enable_input_require_grads, meant for adapters): with the last N layers trained, backward
    and recompute would then run through every frozen layer below them, which freezing them is
    meant to save (and the memory plan assumes). That hook is removed again, except for LoRA
    and 8-bit (`adapters`), where peft expects it."""
    if hasattr(model, "activation_checkpointing_enable"):  # transformers 5
        model.activation_checkpointing_enable(activation_checkpointing_kwargs={"use_reentrant": False})
    else:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    if not adapters and hasattr(model, "disable_input_require_grads"):
        model.disable_input_require_grads()


def decoder_layers(model):
    inner = getattr(model, "model", None)
    layers = getattr(inner, "layers", None)
    if layers is None:
        raise ValueError("cannot find the decoder layers of this model; use model.train=lora or full")
    return layers


def select_trainable(model, cfg):
    mc = cfg.model
    if mc.train == "lora" or (mc.load_8bit and mc.train != "lora"):
        from peft import LoraConfig, get_peft_model, prepare_model_for_kbit_training

        if mc.load_8bit:
            with warnings.catch_warnings():  # peft asks transformers a deprecated question; nothing for a user to do
                warnings.simplefilter("ignore", FutureWarning)
                model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=False)
        lora = LoraConfig(
            r=mc.lora_rank, lora_alpha=mc.lora_alpha, lora_dropout=mc.lora_dropout,
            target_modules=list(mc.lora_targets), task_type="CAUSAL_LM",
        )
        return get_peft_model(model, lora)
    for p in model.parameters():
        p.requires_grad_(mc.train == "full")
    if mc.train == "last_layers":
        layers = decoder_layers(model)
        for layer in list(layers)[max(0, len(layers) - mc.unfreeze_layers):]:
            for p in layer.parameters():
                p.requires_grad_(True)
        if mc.unfreeze_layers < len(layers):  # with every layer trained, backward runs through all of them anyway
            untie_output_embeddings(model)
        for p in model.get_output_embeddings().parameters():
            p.requires_grad_(True)
        norm = getattr(model.model, "norm", None)
        if norm is not None:
            for p in norm.parameters():
                p.requires_grad_(True)
    return model


def untie_output_embeddings(model) -> None:
    """Give `lm_head` its own copy of a weight it shares with the input embeddings.

    Training a tied `lm_head` also trains the input embeddings, and their
    gradient has to flow back through every frozen layer: the "last N layers"
    would cost a full backward pass and keep every layer's activations. Untied,
    the frozen layers stay frozen and backward stops at the first trained layer.
    """
    out, inp = model.get_output_embeddings(), model.get_input_embeddings()
    if out is None or inp is None or out.weight is not inp.weight:
        return
    out.weight = torch.nn.Parameter(inp.weight.detach().clone())
    model.config.tie_word_embeddings = False
    text = getattr(model.config, "get_text_config", None)
    if text is not None:
        text().tie_word_embeddings = False


def param_counts(model) -> tuple[int, int]:
    seen, total, trainable = set(), 0, 0
    for p in model.parameters():
        if id(p) in seen:
            continue
        seen.add(id(p))
        total += p.numel()
        trainable += p.numel() if p.requires_grad else 0
    return total, trainable


def make_optimizer(model, kind: str, lr: float, weight_decay: float = 0.0):
    params = [p for p in model.parameters() if p.requires_grad]
    if kind == "adamw8bit":
        import bitsandbytes as bnb

        return bnb.optim.AdamW8bit(params, lr=lr, weight_decay=weight_decay)
    return torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay, **adamw_options(params))


def adamw_options(params) -> dict:
    """On a GPU, the fused AdamW: the whole update in one kernel launch, where the default
    (foreach) launches several per group of tensors and a small model's step is bound by launches.
    The CPU keeps the default: its runs reproduce as they were measured."""
    on_gpu = bool(params) and all(p.device.type == "cuda" and p.is_floating_point() for p in params)
    return {"fused": True} if on_gpu else {}


def trainable_state(model) -> dict:
    """Only what training changes: a checkpoint of the trained part, not a copy of the base model."""
    names = {n for n, p in model.named_parameters() if p.requires_grad}
    return {k: v.detach().cpu().clone() for k, v in model.state_dict().items() if k in names}


class CheckpointMismatch(ValueError):
    pass


def load_trainable_state(model, state: dict, start: bool = False) -> None:
    """Load a checkpoint's trained parameters; one that trained other parameters than
    this configuration does (another model, another `model.train`, or a tied
    `lm_head` from before it was untied) is refused with the names, not loaded halfway.
    `start` (model.init_from): the weights a new run starts from, so the checkpoint may hold
    parameters this run keeps frozen, or lack some it trains (they start as model.name has them)."""
    fit(model, state, start)
    model.load_state_dict(state, strict=False)


def fit(model, state: dict, start: bool = False) -> None:
    """CheckpointMismatch unless `state` fits `model` as load_trainable_state loads it (names, shapes)."""
    params = {n: p for n, p in model.named_parameters() if start or p.requires_grad}
    foreign = sorted(set(state) - set(params))
    if foreign:
        raise CheckpointMismatch(
            f"the checkpoint does not fit this model and configuration: it holds {', '.join(foreign[:3])}"
            f"{' ...' if len(foreign) > 3 else ''}, which this configuration does not "
            f"{'have (another model, or LoRA adapters: start with the same model.train)' if start else 'train'}")
    missing = sorted(set(params) - set(state))
    if missing and not start:  # loading the rest would score a model that is half the checkpoint, half untrained
        raise CheckpointMismatch(f"the checkpoint lacks {', '.join(missing[:3])}{' ...' if len(missing) > 3 else ''} "
                                 f"({len(missing)} tensor(s) this configuration trains): damaged, or written by another configuration")
    for name, value in state.items():
        if not isinstance(value, torch.Tensor) or tuple(value.shape) != tuple(params[name].shape):
            shape = tuple(value.shape) if isinstance(value, torch.Tensor) else type(value).__name__
            raise CheckpointMismatch(f"the checkpoint's {name} is {shape}, the model's is {tuple(params[name].shape)}")


def check_start(cfg, state: dict) -> None:
    """CheckpointMismatch when `state` (model.init_from's trained parameters) cannot start this
    configuration's model: checked on the model's skeleton (the meta device, no weights read),
    before a session folder is made. Where no skeleton can be built (8-bit layers), the run checks
    as it loads."""
    if cfg.model.load_8bit:
        return
    try:
        with torch.device("meta"):
            if cfg.model.name == TINY:
                model = tiny_model(load_tokenizer(TINY), cfg.run.seed)
            else:
                from transformers import AutoConfig

                model = AutoModelForCausalLM.from_config(AutoConfig.from_pretrained(resolve(cfg.model.name)))
            model = select_trainable(model, cfg)
    except Exception:  # noqa: BLE001 - a skeleton this cannot build is the run's to refuse, with its own message
        return
    fit(model, state, start=True)


def start_from(model, folder: Path) -> None:
    """model.init_from: an earlier session's checkpoint, the weights a new run starts from."""
    from .checkpoints import read

    try:
        load_trainable_state(model, read(folder)["trainable"], start=True)
    except CheckpointMismatch as exc:
        raise CheckpointMismatch(f"model.init_from: {folder}: {exc}") from None


def load_checkpoint(model, folder) -> None:
    """The trained parameters of a session's checkpoint folder, into `model` (weights only: see checkpoints.py)."""
    from .checkpoints import read

    load_trainable_state(model, read(folder)["trainable"])
