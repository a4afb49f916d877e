"""Answer extraction from a finished chain of thought: last \\boxed{}, else last code block, else text;
and the answer step of each answer format (a boxed value, or a code block for code tasks)."""

from __future__ import annotations

import re
from typing import Literal

_CODE_BLOCK = re.compile(r"```[^\n`]*\n(.*?)```", re.DOTALL)


def last_boxed(text: str) -> str | None:
    """Content of the last \\boxed{...} (balanced braces); an unclosed box runs to the end of its line."""
    start = text.rfind("\\boxed{")
    if start < 0:
        return None
    i, depth, out = start + len("\\boxed{"), 1, []
    while i < len(text):
        ch = text[i]
        if ch == "{":
            depth += 1
        elif ch == "}":
            depth -= 1
            if depth == 0:
                return "".join(out).strip()
        out.append(ch)
        i += 1
    return "".join(out).split("\n", 1)[0].strip() or None


def first_boxed(text: str) -> str | None:
    """Content of the first *closed* \\boxed{...} (balanced braces): the reasoner's own final answer."""
    start = text.find("\\boxed{")
    while start >= 0:
        i, depth = start + len("\\boxed{"), 1
        while i < len(text):
            if text[i] == "{":
                depth += 1
            elif text[i] == "}":
                depth -= 1
                if depth == 0:
                    return text[start + len("\\boxed{"):i].strip()
            i += 1
        return None
    return None


def last_code_block(text: str) -> str | None:
    blocks = _CODE_BLOCK.findall(text)
    return blocks[-1].strip("\n") if blocks else None


def extract_answer(text: str, final_step: str | None = None) -> str:
    boxed = last_boxed(text)
    if boxed is not None:
        return boxed
    code = last_code_block(text)
    if code is not None:
        return code
    return (final_step if final_step is not None else text).strip()


AnswerFormat = Literal["boxed", "code"]

# The code task's answer step opens the block itself: a `\\boxed{` there made the reasoner box its code.
CODE_ANSWER = "I can now give the final answer as one complete, self-contained Python code block.\n```python\n"


def answer_instruction(fmt: AnswerFormat, catalog_instruction: str) -> str:
    """The answer step's instruction: the catalog's termination text (`… \\boxed{`), or the code opener."""
    return CODE_ANSWER if fmt == "code" else catalog_instruction


def answer_stop(fmt: AnswerFormat, delimiter: str) -> list[str] | None:
    """A code answer runs to its closing fence or its budget (a blank line inside code is no end)."""
    return None if fmt == "code" else [delimiter]


def final_answer(fmt: AnswerFormat, text: str, final_step: str) -> str:
    """The answer of a finished episode: for code, what the answer step wrote inside the block it was
    given (up to its closing fence); otherwise `extract_answer`."""
    if fmt == "code":
        return final_step.split("```", 1)[0].strip("\n")
    return extract_answer(text, final_step)
