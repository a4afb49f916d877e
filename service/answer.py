"""Answer extraction from a finished chain of thought: last \\boxed{}, else last code block, else text."""

from __future__ import annotations

import re

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
