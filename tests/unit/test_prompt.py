from planner_server.protocol import PlanStep
from planner_server.prompt import PROMPT_TAIL, encode_planner_prompt, label_token_ids, planner_prompt
from service.catalog import load_catalog


def test_prompt_ends_where_the_label_is_due():
    c = load_catalog()
    text = planner_prompt("What is 2+2?", [PlanStep(strategy="decomposition", text="2+2 is 4.")], c)
    assert text.endswith(PROMPT_TAIL)
    assert "Question: What is 2+2?" in text and "[2. Decomposition] 2+2 is 4." in text
    assert "9. Termination" in text


def test_left_truncation_keeps_question_and_tail(tiny_model):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_model)
    c = load_catalog()
    steps = [PlanStep(strategy="continuation", text=f"step number {i} " * 20) for i in range(30)]
    full = encode_planner_prompt(tok, "Q-unique?", steps, c, cot_budget_tokens=100_000)
    cut = encode_planner_prompt(tok, "Q-unique?", steps, c, cot_budget_tokens=50)
    head = tok.encode(planner_prompt("Q-unique?", [], c).split("Reasoning so far:\n")[0] + "Reasoning so far:\n",
                      add_special_tokens=False)
    tail = tok.encode(PROMPT_TAIL, add_special_tokens=False)
    assert cut[: len(head)] == head and cut[-len(tail):] == tail
    assert len(cut) == len(head) + 50 + len(tail) < len(full)
    assert cut[len(head):-len(tail)] == full[len(full) - len(tail) - 50:-len(tail)]  # the newest reasoning is kept


def test_label_tokens_are_single_and_distinct(tiny_model):
    from transformers import AutoTokenizer

    ids = label_token_ids(AutoTokenizer.from_pretrained(tiny_model), load_catalog())
    assert len(ids) == 9 and len(set(ids)) == 9
