"""A decoder's shape: read from a model folder's config.json with every size checked, and its
parameter count and its linear layers. Apart from plan/ and models.py so that both ask it and neither asks the other."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


def param_count(shape: tuple) -> int:
    """Parameters of a Llama-style decoder of this shape (hidden, layers, heads, KV heads, intermediate, vocabulary, tied):
    embeddings (twice when the head is not tied), per layer the attention, the gated MLP and two
    norms, and the final norm."""
    return Shape(*shape).params()


@dataclass(frozen=True)
class Shape:
    hidden: int
    layers: int
    heads: int
    kv_heads: int
    intermediate: int
    vocab: int
    tied: bool

    @property
    def head_dim(self) -> int:
        return self.hidden // self.heads

    def linears(self) -> dict[str, tuple[int, int]]:
        """A decoder layer's linear layers by module name, (inputs, outputs): what model.lora_targets
        names, what the parameter count and the plan's LoRA count multiply out."""
        h, kv, i = self.hidden, self.kv_heads * self.head_dim, self.intermediate
        return {"q_proj": (h, h), "k_proj": (h, kv), "v_proj": (h, kv), "o_proj": (h, h),
                "gate_proj": (h, i), "up_proj": (h, i), "down_proj": (i, h)}

    def layer_params(self) -> int:  # its linear layers and two norms
        return sum(a * b for a, b in self.linears().values()) + 2 * self.hidden

    def linear_params(self) -> int:  # what 8-bit loading quantizes: the decoder layers' linear layers
        return self.layers * (self.layer_params() - 2 * self.hidden)

    def params(self) -> int:
        return self.vocab * self.hidden * (1 if self.tied else 2) + self.layers * self.layer_params() + self.hidden


class BadModelConfig(ValueError):
    """A model folder's config.json that gives no shape a model can have; the message names the file and key."""


# The largest size of each kind any released decoder has, with room: a config.json from elsewhere
# with 0 heads, "576", -5 or 400 digits is refused here, not divided by or multiplied out below.
SHAPE_LIMITS = {"hidden_size": 1 << 17, "num_hidden_layers": 4096, "num_attention_heads": 4096,
                "num_key_value_heads": 4096, "intermediate_size": 1 << 20, "vocab_size": 1 << 24}


def shape_of_config(c: dict, where: str = "config.json") -> Shape:
    """From a transformers config.json, every size checked (BadModelConfig names the key)."""
    from .numbers import brief

    text = c.get("text_config") or c if isinstance(c, dict) else None
    if not isinstance(text, dict):
        raise BadModelConfig(f"{where}: not a model's config (a JSON object of sizes such as hidden_size)")

    def size(key: str, default=None) -> int:
        value = text.get(key, default)
        if isinstance(value, bool) or not isinstance(value, int):
            what = "missing" if value is None else f"{brief(value, 40)}, not a whole number"
            raise BadModelConfig(f"{where}: `{key}` is {what}")
        if not 1 <= value <= SHAPE_LIMITS[key]:
            raise BadModelConfig(f"{where}: `{key}` is {brief(value, 40)}; a model's is 1 to {SHAPE_LIMITS[key]:,}")
        return value

    kind = c.get("model_type", "")
    if not isinstance(kind, str) or not kind.isprintable() or len(kind) > 100 or not kind.isascii():
        raise BadModelConfig(f"{where}: `model_type` is {brief(kind, 40)}, not a model type's name")
    hidden, heads = size("hidden_size"), size("num_attention_heads")
    kv_heads = size("num_key_value_heads", text.get("num_key_value_heads") or heads)
    if hidden % heads or heads % kv_heads:
        raise BadModelConfig(f"{where}: `num_attention_heads` {heads} must divide `hidden_size` {hidden}, "
                             f"and `num_key_value_heads` {kv_heads} must divide it")
    return Shape(hidden, size("num_hidden_layers"), heads, kv_heads, size("intermediate_size"), size("vocab_size"),
                 bool(c.get("tie_word_embeddings", text.get("tie_word_embeddings", True))))


def folder_shape(folder: Path) -> Shape | None:
    """The shape a model folder's config.json gives; None when there is none. A config.json that is
    there but gives no model's shape (or is a FIFO, over 1 MiB, not JSON) is a BadModelConfig."""
    import json

    from .numbers import why_not_json
    from .safefile import NotRegular, read_bytes

    path = folder / "config.json"
    try:
        raw = read_bytes(path, 1 << 20)  # a regular file of at most 1 MiB: no FIFO, no /dev/zero
    except NotRegular as exc:
        raise BadModelConfig(f"{path}: {exc.why}") from None
    except OSError:
        return None
    try:
        data = json.loads(raw.decode("utf-8"))
    except (ValueError, RecursionError) as exc:  # bad UTF-8, 5,000 digits, 10,000 brackets
        raise BadModelConfig(f"{path}: not JSON ({why_not_json(exc)})") from None
    return shape_of_config(data, str(path))
