"""Prompts through the model's own chat template, with labels on the answer only."""

from __future__ import annotations

from functools import lru_cache

from ..trace.language import EXPERT_OPS

# Short on purpose: every training example carries it, and small models learn the format from the examples.
SYSTEM = (
    "Write a YAML trace in a ```yaml block, not the answer. Experts: " + ", ".join(EXPERT_OPS)
    + "; a list of parts when a problem needs several."
)
COT_SYSTEM = "Solve the math word problem step by step. End with the final answer as: #### <number>"
IGNORE = -100


def _messages(question: str, system: str) -> list[dict]:
    return [{"role": "system", "content": system}, {"role": "user", "content": question}]


def prompt_text(tokenizer, question: str, system: str = SYSTEM) -> str:
    """The text a model continues to answer `question`."""
    if getattr(tokenizer, "chat_template", None):
        return tokenizer.apply_chat_template(_messages(question, system), tokenize=False, add_generation_prompt=True)
    return f"{system}\n\n### Question\n{question}\n\n### Answer\n"


@lru_cache(maxsize=8)
def end_of_turn(tokenizer) -> str:
    """What closes the assistant turn: the template's end token, else EOS.
    Cached: `get_vocab()` builds a 49k-entry dict (19 ms), which once per training
    example was 48 s of the default run's start."""
    if getattr(tokenizer, "chat_template", None) and "<|im_end|>" in tokenizer.get_vocab():
        return "<|im_end|>"
    return tokenizer.eos_token or ""


def training_ids(tokenizer, question: str, answer: str, system: str = SYSTEM, max_len: int = 512) -> tuple[list[int], list[int]]:
    """input_ids and labels; labels are IGNORE on the prompt so only the answer is learned."""
    prompt = tokenizer(prompt_text(tokenizer, question, system), add_special_tokens=False)["input_ids"]
    target = tokenizer(answer + end_of_turn(tokenizer), add_special_tokens=False)["input_ids"]
    ids = (prompt + target)[:max_len]
    labels = ([IGNORE] * len(prompt) + target)[:max_len]
    return ids, labels


def trace_answer(trace: str) -> str:
    """The assistant turn for a gold trace: the fenced YAML block."""
    return "```yaml\n" + trace + "```"
