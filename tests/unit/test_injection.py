from service.catalog import load_catalog
from service.injection import (WrittenStep, chain_of_thought, completion_prompt, injection_text,
                               turn_messages)


def test_chain_of_thought_only_grows():
    c = load_catalog()
    steps: list[WrittenStep] = []
    previous = ""
    for i, sid in enumerate(["decomposition", "verification", "termination"]):
        pending = injection_text(c.get(sid), i)
        prompt = chain_of_thought(steps, "\n\n", pending)
        assert prompt.startswith(previous)  # append-only: the prefix cache covers what came before
        steps.append(WrittenStep(pending, f" step {i} text"))
        previous = chain_of_thought(steps, "\n\n")
        assert prompt + f" step {i} text" == previous


def test_injection_is_the_instruction_in_the_reasoners_voice():
    # no "Step k (Name):" header: instruct models copied it and numbered their own steps out of step with the loop
    c = load_catalog()
    assert injection_text(c.get("decomposition"), 3) == c.get("decomposition").instruction
    assert injection_text(c.get("decomposition"), 0).startswith("Let me break")


def test_modes_render_the_same_chain():
    steps = [WrittenStep("Step 1 (X): do x.", " did x")]
    assert completion_prompt(" Q? ", "cot") == "Question: Q?\n\nAnswer: cot"
    msgs = turn_messages("Q?", steps, "Step 2 (Y): do y.")
    assert [m["role"] for m in msgs] == ["user", "user", "assistant", "user"]
    assert msgs[-1]["content"] == "Step 2 (Y): do y." and msgs[2]["content"] == " did x"
