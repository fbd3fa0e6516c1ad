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
    """What closes the assistant turn, read off the model's own chat template: the text the
    template puts right after an assistant message (`<|im_end|>` for ChatML, `</s>` for
    Zephyr), up to the line end; EOS where there is no template or it adds nothing.
    A new model needs no entry here. Cached: rendering a template once per training example
    would cost the run's start seconds."""
    marker = "\u2063ANSWER\u2063"
    if getattr(tokenizer, "chat_template", None):
        try:
            text = tokenizer.apply_chat_template([{"role": "user", "content": "q"}, {"role": "assistant", "content": marker}],
                                                 tokenize=False)
        except Exception:  # noqa: BLE001 - a template that cannot render this: fall back to EOS
            text = ""
        after = text.split(marker, 1)[1] if marker in text else ""
        closing = after.split("\n", 1)[0].strip()
        if closing:
            return closing
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
