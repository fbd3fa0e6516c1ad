"""Run configuration: plain dataclasses, loaded from YAML, `--set a.b=c` overrides.

Every value is checked on load. A bad one raises `ConfigError` whose message
names the key and what is allowed; the CLI prints it, never a traceback.
"""

from __future__ import annotations

import dataclasses
import math
import re
import typing
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from .numbers import brief, shown, why_not_json
from .trace.reward import RewardWeights
from .algorithms import ALGORITHMS, NAMES


class ConfigError(ValueError):
    pass


def choice(default, *allowed, doc: str = ""):
    return field(default=default, metadata={"choices": allowed, "doc": doc})


def bounded(default, lo=None, hi=None, doc: str = ""):
    return field(default=default, metadata={"min": lo, "max": hi, "doc": doc})


@dataclass
class ModelConfig:
    name: str = field(default="smollm2-135m-instruct", metadata={"doc": "known name (engine models), local folder or hub id"})
    load_8bit: bool = field(default=False, metadata={"doc": "load the frozen weights in 8 bits through bitsandbytes (a CUDA GPU; about a quarter of the memory of fp32)"})
    train: str = choice("last_layers", "last_layers", "lora", "full", doc="what is trained")
    # 16 of SmolLM2-135M's 30: 8 left GSM8K unlearned (2.0% of 300 after SFT, 3.7% with 16) for 15% more time a step
    unfreeze_layers: int = bounded(16, 0, 200, doc="last N decoder layers (+ lm_head) when train=last_layers")
    lora_rank: int = bounded(16, 1, 1024, doc="model.train=lora: the rank of each adapter (more = more trained parameters)")
    lora_alpha: int = bounded(32, 1, 4096, doc="model.train=lora: the adapters' scale, applied as alpha / rank")
    lora_dropout: float = bounded(0.0, 0.0, 0.9, doc="model.train=lora: dropout on the adapters' input while training")
    lora_targets: list = field(default_factory=lambda: ["q_proj", "k_proj", "v_proj", "o_proj"], metadata={"doc": "model.train=lora: the linear layers (by module name) that get adapters"})
    device: str = choice("auto", "auto", "cpu", "cuda", "mps", doc="where the model runs; auto = a CUDA GPU when there is one, else Apple's mps, else the CPU")
    dtype: str = choice("auto", "auto", "float32", "bfloat16", "float16", doc="the weights' precision; auto = bf16 on a CUDA GPU that supports it, else fp32")
    autocast: str = choice("auto", "auto", "on", "off", doc="bf16 autocast for training passes; auto = on where the CPU or GPU does bf16 fast and weights are fp32")
    activation_checkpointing: bool = field(default=False, metadata={"doc": "recompute each decoder layer's activations in backward instead of keeping them: far less memory for ~1/3 more compute (on in the GPU preset; a GPU run with room to spare turns it off unless set: docs/gpu.md)"})
    generate_dtype: str = choice("auto", "auto", "float32", "bfloat16", doc="weights that rollouts and evaluations decode with (a run's own, engine eval, diff, report and self-traces); auto = a bf16 copy on a GPU that does bf16 fast, the fp32 weights on a CPU (the outputs every recorded CPU figure has; bfloat16 decodes 1.46x faster on a CPU with AMX, with other outputs: docs/benchmarks.md)")
    compile: bool = field(default=False, metadata={"doc": "torch.compile the training forward pass (dynamic shapes); setup compiles it on one warm-up step and says how long that took (minutes on a CPU); decoding stays eager"})
    fast_decode: bool = field(default=False, metadata={"doc": "evaluation, RL rollouts and engine data self-traces decode with drafts (text the trace forces, n-grams of the question and the output so far) checked by the model in the same pass: the same greedy tokens (up to near-ties), the same sampled distribution, half the passes; on a 2-core CPU no faster (each pass costs the steps it saves; docs/benchmarks.md), meant for a GPU (engine/speculate.py, benchmarks/decode.py --compare)"})
    init_from: str = field(default="", metadata={"doc": "a checkpoint of an earlier session (its folder, holding state.pt) whose weights this run starts from, as expert iteration's next round does; model.name must be the model that session trained; empty = model.name as it is"})


DEFAULT_MIX = {"arithmetic": 1, "comparison": 1, "percentage": 1, "entity_track": 1, "rate_equation": 1, "composition": 2}


@dataclass
class DataConfig:
    train_size: int = bounded(1200, 1, 10_000_000, doc="synthetic SFT examples")
    # compositions weighted 2:1: beside ~1,000 single-part GSM8K traces the list format is otherwise
    # forgotten (composition 11/34 with an even mix, 34/34 with this one: docs/training.md)
    mix: dict = field(default_factory=lambda: dict(DEFAULT_MIX), metadata={"doc": "expert weights of the synthetic SFT and RL problems (a weight per expert and composition; experts left out get none); empty = even"})
    phrasings: str = choice("one", "one", "all", doc="synthetic problems: one wording per pattern, or every wording the generator has")
    seed: int = bounded(0, 0, 2**32 - 1, doc="the synthetic problems' seed")
    gsm8k: str = field(default="auto", metadata={"doc": "hub id, a folder of train.jsonl and test.jsonl, or one JSONL file with the split it holds (FILE.jsonl:train or FILE.jsonl:test; the other split is then the shipped copy's); auto = the copy shipped with the project"})
    gsm8k_traces: int = bounded(1000, 0, 10_000_000, doc="trace task: GSM8K training problems converted to gold traces, beside the synthetic ones (0 = synthetic only; more than exist = all); RL samples its questions from the same mix")
    gsm8k_variants: int = bounded(0, 0, 64, doc="trace task: up to N number variants of each GSM8K training trace beside it (numbers changed in question and trace together, answers verified by running the trace; engine data variants)")
    self_traces: str = field(default="", metadata={"doc": "trace task: a JSONL of the model's own right, clean traces (engine data self-traces) trained on beside the gold ones; empty = none"})
    max_len: int = bounded(512, 32, 8192, doc="tokens per training example; longer examples are skipped, not cut")
    instruct_train: str = field(default="", metadata={"doc": "instruct task: JSONL of instruction/input/output"})


@dataclass
class SFTConfig:
    epochs: float = bounded(1.0, 0.0, 1000.0, doc="passes over the SFT examples (fractions allowed: 0.5 = half of them)")
    lr: float = bounded(4e-4, 0.0, 1.0, doc="SFT peak learning rate (after warm-up, then sft.schedule)")
    batch_size: int = bounded(8, 1, 4096, doc="SFT examples per forward pass (per GPU under torchrun)")
    grad_accum: int = bounded(1, 1, 1024, doc="SFT batches summed before each optimizer step (the step sees batch_size x grad_accum examples)")
    warmup: float = bounded(0.05, 0.0, 1.0, doc="share of steps spent warming up")
    schedule: str = choice("cosine", "cosine", "linear", "constant", doc="how the SFT learning rate falls after warm-up")
    weight_decay: float = bounded(0.0, 0.0, 1.0, doc="AdamW weight decay of the SFT optimizer")
    optimizer: str = choice("adamw", "adamw", "adamw8bit", doc="the SFT optimizer: AdamW, or bitsandbytes' 8-bit AdamW (a CUDA GPU; less memory)")
    max_grad_norm: float = bounded(1.0, 0.0, 1e6, doc="gradient clipping of each SFT step")


@dataclass
class RLConfig:
    algorithm: str = choice(NAMES[0], *NAMES, doc="; ".join(a.doc for a in ALGORITHMS.values()) + " (engine/algorithms.py)")
    iterations: int = bounded(6, 0, 1_000_000, doc="RL rounds, each: sample outputs for rl.questions questions, score them, update (0 = no RL)")
    questions: int = bounded(4, 1, 4096, doc="questions per iteration")
    group_size: int = bounded(4, 1, 256, doc="samples per question (grpo, gspo); reinforce uses 1 per question")
    lr: float = bounded(1e-5, 0.0, 1.0, doc="RL learning rate")
    temperature: float = bounded(0.8, 0.0, 5.0, doc="sampling temperature of rollouts (the GPU preset: 1.0, TRL's default; on the CPU's short RL phase 1.0 gave more cut-off and query-less outputs, docs/training.md)")
    top_p: float = bounded(1.0, 0.0, 1.0, doc="RL sampling: keep the smallest set of tokens whose probability reaches top_p (1 = all)")
    max_new_tokens: int = bounded(0, 0, 8192, doc="rollout length limit; 0 = eval.max_new_tokens (a right trace longer than RL's limit would score 0 there while evaluation counts it)")
    kl_coef: float = bounded(0.0, 0.0, 100.0, doc="KL penalty to the starting model; 0 = off")
    micro_batch: int = bounded(8, 1, 4096, doc="completions per forward/backward pass in the update (memory, not maths)")
    backend: str = choice("hf", "hf", "vllm", doc="what generates rollouts: transformers (hf), or vLLM in the same process (a GPU, the vllm extra)")
    vllm_memory: float = bounded(0.3, 0.05, 0.95, doc="rl.backend=vllm: the share of the GPU's memory vLLM takes (weights and KV cache); the rest is training's")
    vllm_sleep: bool = field(default=False, metadata={"doc": "rl.backend=vllm: free vLLM's memory during each update (weights to CPU, KV cache dropped), as TRL's vllm_enable_sleep_mode"})
    vllm_is_cap: float = bounded(2.0, 0.0, 1e6, doc="rl.backend=vllm: truncated importance sampling of the sampler/trainer mismatch (TRL's vllm_importance_sampling_cap): each token's policy loss (gspo: each completion's) is weighed by min(exp(log p_trainer - log p_vLLM), cap); 0 = off (no log-probs asked, no extra pass); below 1 is refused")
    max_grad_norm: float = bounded(1.0, 0.0, 1e6, doc="gradient clipping of the RL update")
    baseline_momentum: float = bounded(0.9, 0.0, 1.0, doc="rl.algorithm=reinforce: how much of the running reward baseline each round keeps")
    scale_rewards: str = choice("group", "group", "batch", "none", doc="grpo advantages: (reward - group mean) divided by the group's std (group), the batch's std (batch), or not divided (none: Dr. GRPO); TRL's scale_rewards")
    batch_reuse: int = bounded(1, 1, 16, doc="optimizer steps on each batch of rollouts (TRL's num_iterations); above 1 the update clips the importance ratio to the sampling policy's")
    epsilon: float = bounded(0.2, 0.0, 10.0, doc="grpo, reinforce with rl.batch_reuse > 1: each token's ratio is clipped to [1 - epsilon, 1 + epsilon_high]")
    epsilon_high: float = bounded(0.2, 0.0, 10.0, doc="upper clip of the importance ratio (DAPO raises it to 0.28)")
    # GSPO's ratio is a geometric mean over a completion's tokens, so it strays from 1 far less than one token's:
    # its own keys, at the paper's ranges, so that a switch of rl.algorithm never clips at GRPO's 0.2
    gspo_epsilon: float = bounded(3e-4, 0.0, 10.0, doc="rl.algorithm=gspo with rl.batch_reuse > 1: the sequence ratio is clipped to [1 - gspo_epsilon, 1 + gspo_epsilon_high] (the GSPO paper's 3e-4)")
    gspo_epsilon_high: float = bounded(4e-4, 0.0, 10.0, doc="upper clip of GSPO's sequence ratio (the paper's 4e-4)")
    dynamic_sampling: bool = field(default=False, metadata={"doc": "DAPO: questions whose groups tie carry nothing; keep drawing (up to rl.dynamic_draws more rounds) until the batch has rl.questions groups with a spread, preferring questions the model answers sometimes"})
    dynamic_draws: int = bounded(3, 0, 64, doc="extra rounds of questions rl.dynamic_sampling may draw per iteration")
    optimizer: str = choice("adamw", "adamw", "adamw8bit", doc="the RL optimizer: AdamW, or bitsandbytes' 8-bit AdamW (a CUDA GPU; less memory)")
    screen: int = bounded(0, 0, 64, doc="medium difficulty: before RL, sample each of rl.screen_pool candidate questions N times and ask RL only those answered right sometimes but not always (questions always or never solved carry no GRPO signal); 0 = off")
    screen_pool: int = bounded(64, 1, 100_000, doc="with rl.screen: the candidate questions screened (fixed by data.seed)")


@dataclass
class EvalConfig:
    synthetic: int = bounded(200, 0, 1_000_000, doc="held-out synthetic problems")
    synthetic_unseen: int = bounded(0, 0, 1_000_000, doc="synthetic problems in the wording of each pattern that training never sees (with data.phrasings=one), scored as synthetic-unseen beside synthetic: fit to the templates shows as the gap between them")
    dev: int = bounded(0, 0, 500, doc="GSM8K development problems scored as gsm8k-dev (the first N of 500 carved from the train split, never trained on; engine eval --dev): the set to make choices on; when set, it is the first set (best checkpoint)")
    mix: dict = field(default_factory=dict, metadata={"doc": "expert weights of the held-out set; empty = even over all, whatever data.mix is, so runs that train on other mixes are compared on the same problems"})
    gsm8k: int = bounded(300, 0, 1319, doc="GSM8K test problems (N of them, from eval.gsm8k_from)")
    gsm8k_from: int = bounded(1, 1, 1319, doc="the first GSM8K test problem taken (1-based): 1 = the development set the defaults were chosen on; 301 = the held-out problems 301-1319 no decision looked at (engine eval --heldout), scored as a set named gsm8k-301-1319")
    problems: list = field(default_factory=list, metadata={"doc": "extra eval sets: JSONL files of question/answer (and optional expert), each named after its file"})
    problems_limit: int = bounded(0, 0, 10_000_000, doc="the first N problems of each eval.problems file (read no further); 0 = all")
    batch_size: int = bounded(128, 1, 4096, doc="problems decoded together (128: fastest measured on a 2-core CPU, docs/benchmarks.md)")
    max_new_tokens: int = bounded(320, 8, 8192, doc="the longest output an evaluation decodes; a longer one is cut and scored truncated")
    samples: int = bounded(1, 1, 1024, doc="outputs per problem; above 1 the eval also reports pass@k and majority-vote@k")
    vote: str = choice("majority", "majority", "grounded", doc="with eval.samples > 1: grounded also reports grounded-majority@k, where only outputs whose trace runs clean and reads every input from the question (none invented) vote (trace task)")
    temperature: float = bounded(0.8, 0.0, 5.0, doc="sampling temperature when eval.samples > 1 (the first sample is always greedy)")
    at: list = field(default_factory=lambda: ["sft", "rl"], metadata={"doc": "evaluate before training (start: the weights the run starts from, model.init_from's where set), after sft, after rl; empty with eval in run.phases = once, after the last trained stage (start when nothing trains)"})
    every: int = bounded(0, 0, 1_000_000, doc="also evaluate every N training steps (0 = only at the points in `at`)")
    instruct_sets: list = field(default_factory=list, metadata={"doc": "instruct task: JSONL files to evaluate on"})


@dataclass
class RunConfig:
    task: str = choice("trace", "trace", "cot", "instruct", doc="what the model learns to write: YAML traces, chain-of-thought answers, or instruction outputs")
    phases: list = field(default_factory=lambda: ["sft", "rl", "eval"], metadata={"doc": "the stages this run takes, in order: sft, rl, eval (leave one out to skip it)"})
    seed: int = bounded(0, 0, 2**32 - 1, doc="batch order, sampling and initialisation (numpy and torch take at most 2**32 - 1)")
    checkpoint_every: int = bounded(0, 0, 1_000_000, doc="steps between checkpoints; 0 = at phase ends only")
    sample_every: int = bounded(1, 1, 1_000_000, doc="emit sampled outputs every N RL iterations")
    stop_on_collapse: bool = field(default=False, metadata={"doc": "stop early when outputs collapse (the best checkpoint is kept)"})
    tensorboard: str = field(default="", metadata={"doc": "a folder: mirror every metric, evaluation, alert and a few samples to TensorBoard while the run goes (needs the tensorboard package); empty = off"})
    wandb: str = field(default="", metadata={"doc": "a W&B project: mirror every metric and evaluation to Weights & Biases (needs the wandb package); empty = off"})
    wandb_mode: str = choice("offline", "offline", "online", doc="offline writes ./wandb/ with no network (upload later with `wandb sync`)")
    cpu_threads: int = bounded(0, 0, 4096, doc="CPU threads of a CPU run; 0 = auto: every core, fewer while other processes keep cores busy (measured between steps)")
    parallel: str = choice("ddp", "ddp", "fsdp", doc="under torchrun: ddp = every rank holds the whole model; fsdp = weights, gradients and optimizer state sharded over the ranks (FSDP2), for models that do not fit one GPU under ddp")
    preset: str = choice("auto", "auto", "cpu", "gpu", doc="sizes for the device: auto = gpu sizes where a CUDA device is used, else the CPU defaults; keys you set yourself always win")


@dataclass
class Config:
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    sft: SFTConfig = field(default_factory=SFTConfig)
    rl: RLConfig = field(default_factory=RLConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    reward: RewardWeights = field(default_factory=RewardWeights)  # the trace reward's five values and warning penalty
    run: RunConfig = field(default_factory=RunConfig)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.to_dict(), sort_keys=False)


PHASES = ("sft", "rl", "eval")

# Presets a user names instead of writing numbers: `--model tiny` picks small sizes too.
SMOKE = {
    "data.train_size": 64, "data.gsm8k_traces": 16, "data.max_len": 256, "sft.epochs": 1, "sft.lr": 3e-3, "sft.batch_size": 16,
    "rl.iterations": 3, "rl.questions": 4, "rl.group_size": 2, "rl.max_new_tokens": 48, "rl.lr": 1e-3,
    "eval.synthetic": 8, "eval.gsm8k": 4, "eval.max_new_tokens": 48,
}


# Sizes for a GPU: the CPU defaults take ~40 minutes on a 2-core machine (docs/training.md).
GPU = {
    "data.train_size": 4000, "data.gsm8k_traces": 6000, "sft.batch_size": 32, "sft.epochs": 2,
    "rl.iterations": 100, "rl.questions": 32, "rl.group_size": 8, "rl.micro_batch": 64, "rl.temperature": 1.0, "rl.dynamic_sampling": True,
    "model.activation_checkpointing": True,
    "eval.batch_size": 256, "eval.gsm8k_from": 301, "eval.gsm8k": 1019, "eval.synthetic": 500,  # GSM8K: the held-out problems
}


def preset_for(cfg: "Config", cuda: bool) -> tuple[str, str]:
    """(preset, why) for a configuration about to run."""
    if cfg.run.preset != "auto":
        return cfg.run.preset, "run.preset says so"
    if cfg.model.name == "tiny":
        return "cpu", "the tiny model has its own small sizes"
    if cuda and cfg.model.device in ("auto", "cuda"):
        return "gpu", "a CUDA device will be used"
    return "cpu", "no CUDA device will be used"


def _coerce(key: str, value, kind, meta: dict):
    origin = typing.get_origin(kind) or kind
    try:
        if kind is bool or origin is bool:
            if isinstance(value, str):
                low = value.lower()
                if low not in ("true", "false", "yes", "no", "1", "0", "on", "off"):
                    raise ValueError
                value = low in ("true", "yes", "1", "on")
            elif not isinstance(value, bool):
                raise ValueError
        elif kind is int or origin is int:
            if isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()):
                raise ValueError
            value = int(str(value)) if isinstance(value, str) else int(value)
        elif kind is float or origin is float:
            if isinstance(value, bool):
                raise ValueError
            if isinstance(value, str) and (lost := _float_lost(value)):
                raise ConfigError(f"{key}: {shown(value)} is {lost}")
            value = float(value)
            if not math.isfinite(value):  # NaN slips past every bound (nan < lo is false)
                raise ConfigError(f"{key}: {value!r} is not a finite number")
        elif kind is str or origin is str:
            if isinstance(value, bool):  # YAML 1.1 reads `off`/`on` as booleans; here they are words
                value = "on" if value else "off"
            if not isinstance(value, (str, int, float)):
                raise ValueError
            value = str(value)
        elif origin is list:
            if isinstance(value, str):
                value = _yaml(value, key) if value.strip().startswith("[") else [v.strip() for v in value.split(",") if v.strip()]
            if not isinstance(value, list) or len(value) > 64 or not all(isinstance(v, (str, int, float)) for v in value):
                raise ValueError
        elif origin is dict:
            if isinstance(value, str):
                value = _yaml(value, key) if value.strip() else {}
            if not isinstance(value, dict) or len(value) > 64:
                raise ValueError
    except ConfigError:
        raise
    except (ValueError, TypeError, yaml.YAMLError):
        raise ConfigError(f"{key}: expected {getattr(kind, '__name__', str(kind))}, got {brief(value)}") from None
    allowed = meta.get("choices")
    if allowed and value not in allowed:
        raise ConfigError(f"{key}: {value!r} is not allowed; choose one of {', '.join(map(str, allowed))}")
    lo, hi = meta.get("min"), meta.get("max")
    if lo is not None and value < lo or hi is not None and value > hi:
        raise ConfigError(f"{key}: {brief(value)} is out of range [{lo}, {hi}]")
    return value


MAX_CONFIG_BYTES = 1 << 20
_LONG_NUMBER = re.compile(r"^[-+]?[0-9][0-9_]{40,}(?:\.[0-9_]*)?(?:[eE][-+]?[0-9]+)?$")
_FLOAT_TAG = "tag:yaml.org,2002:float"
_RESOLVER = yaml.resolver.Resolver()


def _float_lost(text: str) -> str | None:
    """Why a number written as text would not survive float(): 1e-400 silently becomes 0 (a
    cap of 0 means off), 1e400 becomes inf; None when it survives or is not a number. float()
    itself decides what is a number (underscores, any script's digits), so nothing slips past."""
    text = text.strip()
    try:
        value = float(text)
    except ValueError:
        return None
    if math.isinf(value) and text.lstrip("+-").lower() not in ("inf", "infinity"):
        return "too large a number (it overflows a float)"
    if value == 0 and any(unicodedata.digit(c, 0) for c in re.split("[eE]", text)[0]):
        return "too small a number (it rounds to 0)"
    return None


def _yaml(text: str, where: str):
    """Safe YAML with the shapes a config has: flat values, no aliases (a self-reference or
    a billion-laughs list is refused, not expanded), nesting a few levels deep."""
    try:
        for event in yaml.parse(text, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader)):
            if isinstance(event, yaml.AliasEvent):
                raise ConfigError(f"{where}: YAML aliases (*name) are not allowed in a config")
            if isinstance(event, yaml.ScalarEvent) and not event.style and _LONG_NUMBER.match(event.value):
                # YAML would hand 5,000 digits to int(), which refuses in words about the interpreter
                raise ConfigError(f"{where} line {event.start_mark.line + 1}: {shown(event.value)} is not a "
                                  f"number a setting takes (more than 40 digits)")
            # only what YAML itself makes a float (1.0e-400 -> 0.0 before any check sees it); text such
            # as 1e-400 stays text for its key's own check, and a text key keeps a value like 1.0e999
            if (isinstance(event, yaml.ScalarEvent) and not event.style and event.implicit[0]
                    and _RESOLVER.resolve(yaml.ScalarNode, event.value, (True, False)) == _FLOAT_TAG
                    and (lost := _float_lost(event.value))):
                raise ConfigError(f"{where} line {event.start_mark.line + 1}: {shown(event.value)} is {lost}")
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{where}: not valid YAML ({str(exc).splitlines()[0]})") from None
    except RecursionError:
        raise ConfigError(f"{where}: nested too deeply") from None
    except ConfigError:
        raise
    except ValueError as exc:  # any other value YAML's own constructors refuse
        raise ConfigError(f"{where}: {why_not_json(exc)}") from None
    if _depth(data) > 6:
        raise ConfigError(f"{where}: nested too deeply")
    return data


def _depth(value, level: int = 0) -> int:
    if level > 6:
        return level
    if isinstance(value, dict):
        return max((_depth(v, level + 1) for v in value.values()), default=level + 1)
    if isinstance(value, list):
        return max((_depth(v, level + 1) for v in value), default=level + 1)
    return level


def _apply(obj, data: dict, prefix: str = "") -> None:
    if not isinstance(data, dict):
        raise ConfigError(f"{prefix.rstrip('.') or 'config'}: expected a mapping, got {data!r}")
    hints = typing.get_type_hints(type(obj))
    fields = {f.name: f for f in dataclasses.fields(obj)}
    for key, value in data.items():
        name = f"{prefix}{key}"
        if key not in fields:
            raise ConfigError(f"{name}: unknown key; known: {', '.join(fields)}")
        current = getattr(obj, key)
        if dataclasses.is_dataclass(current):
            _apply(current, value, name + ".")
        else:
            setattr(obj, key, _coerce(name, value, hints[key], dict(fields[key].metadata)))


# inputs only training reads: a finished session is evaluated, reported and diffed without them
TRAINING_ONLY = ("data.self_traces", "data.instruct_train")


def absolute_paths(cfg: "Config") -> None:
    """Every local path in `cfg` made absolute, in place, so that the session's config.yaml names
    the files the run read wherever `engine eval` or `report` is run from later. A name that is
    no local path (a hub id, `auto`, a known model) is left as it is."""
    def absolute(value: str) -> str:
        if not value:
            return value
        path = Path(value).expanduser()
        return str(path.absolute()) if path.exists() else value

    cfg.data.self_traces = absolute(cfg.data.self_traces)
    cfg.data.instruct_train = absolute(cfg.data.instruct_train)
    cfg.eval.problems = [absolute(f) for f in cfg.eval.problems]
    cfg.model.init_from = absolute(cfg.model.init_from)
    from .models import KNOWN, TINY

    if cfg.model.name != TINY and cfg.model.name not in KNOWN:  # a folder called `tiny` is not the tiny model
        cfg.model.name = absolute(cfg.model.name)
    if cfg.data.gsm8k != "auto":
        from .data.gsm8k import _named

        path, split = _named(cfg.data.gsm8k)
        cfg.data.gsm8k = absolute(path) + (f":{split}" if split else "")


def _placeholder(value) -> bool:
    text = value.strip() if isinstance(value, str) else ""
    return len(text) > 2 and text.startswith("<") and text.endswith(">")


def _placeholders(obj, prefix: str = "") -> list[tuple[str, str]]:
    """(key, value) of every text setting (or item of a list of them) still written `<...>`: a
    recipe's way of naming an input only the user can give (a checkpoint, a file of their own run)."""
    found = []
    for f in dataclasses.fields(obj):
        value, key = getattr(obj, f.name), prefix + f.name
        if dataclasses.is_dataclass(value):
            found += _placeholders(value, key + ".")
        elif isinstance(value, list):
            found += [(f"{key}[{i}]", v) for i, v in enumerate(value) if _placeholder(v)]
        elif _placeholder(value):
            found.append((key, value))
    return found


def _check(cfg: Config, training: bool = True) -> None:
    todo = _placeholders(cfg)
    if todo:  # all of them at once, and before any path check, which would call one a missing file
        keys = dict.fromkeys(k.partition("[")[0] for k, _ in todo)  # a list's two placeholders: one key to give
        raise ConfigError(f"{todo[0][0]}: {brief(todo[0][1], 100)} is a placeholder (<...>), not a value; give "
                          + " ".join(f"--set {k}=..." for k in keys)
                          + " (a path that begins with < is written ./<...>)")
    if ALGORITHMS[cfg.rl.algorithm].grouped and cfg.rl.group_size < 2 and "rl" in cfg.run.phases:
        raise ConfigError(f"rl.group_size: {cfg.rl.group_size} sample per question gives {cfg.rl.algorithm} no signal "
                          "(each advantage is taken against the question's own group); use 2 or more, or rl.algorithm=reinforce")
    for p in cfg.run.phases:
        if p not in PHASES:
            raise ConfigError(f"run.phases: {p!r} is not a phase; choose from {', '.join(PHASES)}")
    for a in cfg.eval.at:
        if a not in ("start", "sft", "rl"):
            raise ConfigError(f"eval.at: {a!r} is not allowed; choose from start, sft, rl")
    for i, f in enumerate(cfg.eval.problems):
        if not isinstance(f, str) or not Path(f).expanduser().is_file():
            raise ConfigError(f"eval.problems[{i}]: {f!r} is not a problem file (JSONL of question/answer)")
    if cfg.run.task == "instruct" and not cfg.data.instruct_train:
        raise ConfigError("data.instruct_train: the instruct task needs a JSONL file of instruction/input/output")
    if cfg.model.init_from and not (Path(cfg.model.init_from).expanduser() / "state.pt").is_file():
        raise ConfigError(f"model.init_from: {cfg.model.init_from} is not a checkpoint folder (one holding state.pt, "
                          f"as a session's checkpoints/best or checkpoints/step-N)")
    if training and cfg.data.self_traces and not Path(cfg.data.self_traces).expanduser().is_file():
        raise ConfigError(f"data.self_traces: {cfg.data.self_traces} is not a file (engine data self-traces writes one)")
    from .data.gsm8k import unnamed_file

    why = unnamed_file(cfg.data.gsm8k if cfg.data.gsm8k != "auto" else None)
    if why:
        raise ConfigError(f"data.gsm8k: {why}")
    for key, value in (("data.gsm8k", cfg.data.gsm8k), ("data.instruct_train", cfg.data.instruct_train)):
        path = Path(value).expanduser()
        if value and value != "auto" and path.exists() and not (path.is_file() or path.is_dir()) and (training or key != "data.instruct_train"):
            raise ConfigError(f"{key}: {value} is not a JSONL file or folder")  # /dev/zero, a FIFO: never read
    if cfg.run.parallel == "fsdp" and cfg.rl.kl_coef > 0 and "rl" in cfg.run.phases:
        raise ConfigError("rl.kl_coef: the KL reference model is not sharded under run.parallel=fsdp yet; use 0 or ddp")
    if cfg.run.parallel == "fsdp" and cfg.model.load_8bit:
        raise ConfigError("run.parallel: fsdp shards full-precision weights; model.load_8bit is for one process (use ddp)")
    if cfg.rl.backend == "vllm" and "rl" in cfg.run.phases and (cfg.model.train == "lora" or cfg.model.load_8bit):
        # said before SFT runs, not when RL starts after it
        raise ConfigError("rl.backend: vllm is pushed full trained weights after each step; with "
                          f"{'model.load_8bit' if cfg.model.load_8bit else 'model.train=lora'} use rl.backend=hf")
    if 0 < cfg.rl.vllm_is_cap < 1:  # it would shrink even a token both agree on: a smaller learning rate, no correction
        raise ConfigError(f"rl.vllm_is_cap: {cfg.rl.vllm_is_cap} would weigh down tokens the sampler and trainer agree on "
                          "(weight 1); use 0 (off) or a cap of at least 1 (TRL: 2 to 3)")
    from .trace.language import COMPOSITION, EXPERTS

    for key, mix in (("data.mix", cfg.data.mix), ("eval.mix", cfg.eval.mix)):
        for e, w in mix.items():
            if e not in (*EXPERTS, COMPOSITION):
                raise ConfigError(f"{key}: {e!r} is not an expert; choose from {', '.join((*EXPERTS, COMPOSITION))}")
            if isinstance(w, bool) or not isinstance(w, (int, float)) or not math.isfinite(w) or w < 0:
                raise ConfigError(f"{key}.{e}: the weight must be a number >= 0, got {w!r}")
        if mix and not any(w > 0 for w in mix.values()):
            raise ConfigError(f"{key}: at least one weight must be above 0 (leave it empty for an even mix)")


def parse_sets(pairs: list[str]) -> dict:
    """`["sft.lr=1e-4", "model.name=tiny"]` -> nested dict of the raw strings.

    Values stay text here; each is converted by its field's type on load, so
    `model.autocast=off` stays the word it is and `sft.lr=1e-4` becomes a float.
    """
    out: dict = {}
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"--set {pair!r}: write it as key=value, e.g. sft.lr=1e-4")
        value = raw.strip()
        node = out
        parts = key.strip().split(".")
        for i, part in enumerate(parts[:-1]):
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ConfigError(f"--set {pair!r}: {'.'.join(parts[:i + 1])} is a value, not a section "
                                  f"(it was set with --set before)")
        if isinstance(node.get(parts[-1]), dict):
            raise ConfigError(f"--set {pair!r}: {key.strip()} is a section of settings, not a value")
        node[parts[-1]] = value
    return out


def _read(path: str | Path) -> dict:
    """A config file's settings as the nested dict its YAML holds; a clear ConfigError otherwise."""
    from .safefile import NotRegular, open_regular

    try:
        with open_regular(path, MAX_CONFIG_BYTES) as f:  # a FIFO or a device is refused, never waited on
            raw = f.read(MAX_CONFIG_BYTES + 1)
    except FileNotFoundError:
        raise ConfigError(f"config file {path}: no such file") from None
    except NotRegular as exc:
        raise ConfigError(f"config file {path}: {exc.why}; a config is a page of YAML") from None
    except OSError as exc:
        raise ConfigError(f"config file {path}: cannot read it ({exc.strerror or exc})") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"config file {path}: not UTF-8 text (byte {exc.start})") from None
    return _yaml(text, f"config file {path}") or {}


def given_keys(path: str | Path | None, sets: list[str]) -> set[str]:
    """The `section.name` keys a user set, in a config file or with --set: what a GPU run's sizing
    (plan.sized) never changes behind their back."""
    keys = {pair.partition("=")[0].strip() for pair in sets}
    data = _read(path) if path else {}
    for section, values in data.items() if isinstance(data, dict) else ():
        keys |= {f"{section}.{name}" for name in values} if isinstance(values, dict) else {section}
    return keys


def load(path: str | Path | None = None, sets: list[str] | None = None, base: dict | None = None,
         training: bool = True) -> Config:
    """`training=False`: a session's config read to evaluate, report or diff it, whose TRAINING_ONLY
    files may be gone since the run."""
    cfg = Config()
    if base:
        _apply(cfg, base)
    if path:
        _apply(cfg, _read(path))
    if sets:
        _apply(cfg, parse_sets(sets))
    _check(cfg, training)
    if not cfg.rl.max_new_tokens:  # resolved here, so the session's config.yaml says the number RL used
        cfg.rl.max_new_tokens = cfg.eval.max_new_tokens
    return cfg


def smoke_overrides() -> dict:
    return parse_sets([f"{k}={v}" for k, v in SMOKE.items()])


LENGTH_KEYS = ("data.max_len", "rl.max_new_tokens", "eval.max_new_tokens")


def smoke_lengths(cfg: "Config") -> bool:
    """The tiny model at the smoke preset's own length limits. They are short on purpose (a random
    3M model writes nothing worth reading in full; short outputs keep the run to half a minute), so
    a run's notes that answers are longer than them tell the user nothing they can act on."""
    def value(key: str):
        section, name = key.split(".")
        return getattr(getattr(cfg, section), name)

    return cfg.model.name == "tiny" and all(value(k) == SMOKE[k] for k in LENGTH_KEYS)


def describe() -> list[tuple[str, object, str]]:
    """(key, default, doc) for every setting: for `engine config show` and the workbench form."""
    rows = []
    cfg = Config()
    for section in dataclasses.fields(cfg):
        for f in dataclasses.fields(getattr(cfg, section.name)):
            meta = dict(f.metadata)
            doc = meta.get("doc", "")
            if meta.get("choices"):
                doc = (doc + "; " if doc else "") + "one of " + ", ".join(map(str, meta["choices"]))
            rows.append((f"{section.name}.{f.name}", getattr(getattr(cfg, section.name), f.name), doc))
    return rows


def bounds(key: str) -> tuple[type, float | None, float | None]:
    """(type, lowest, highest) of a setting, from its declaration: a form checks what the config checks."""
    section, name = key.split(".")
    holder = getattr(Config(), section)
    f = next(f for f in dataclasses.fields(holder) if f.name == name)
    return type(getattr(holder, name)), f.metadata.get("min"), f.metadata.get("max")
