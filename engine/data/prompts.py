"""Prompts through the model's own chat template, with labels on the answer only."""

from __future__ import annotations

from ..trace.language import EXPERT_OPS

SYSTEM = (
    "You solve math word problems by writing a YAML trace, not the answer. "
    "Pick one expert: " + ", ".join(EXPERT_OPS) + "; or a list of parts for a problem that needs several. "
    "Use init for every number, compute (add, sub, mul, div) or the expert's own ops, "
    "and end with a query of the result. Answer with a ```yaml block only."
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


def end_of_turn(tokenizer) -> str:
    """What closes the assistant turn: the template's end token, else EOS."""
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
