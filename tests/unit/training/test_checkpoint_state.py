"""Resume state is read with torch's weights-only unpickler (issue 29): a real trainer state loads, and a
trainer_state.pt whose unpickling would run code is refused without running it."""

from __future__ import annotations

import os
import random

import pytest
import torch

from planner_server.training.checkpoints import UnsafeTrainerState, load_trainer_state


def optimizer():
    model = torch.nn.Linear(3, 2)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    model(torch.ones(1, 3)).sum().backward()
    opt.step()
    return opt


def test_a_real_trainer_state_resumes(tmp_path):
    opt = optimizer()
    random.seed(5)
    torch.save({"optimizer": opt.state_dict(), "python_rng": random.getstate(), "torch_rng": torch.get_rng_state(),
                "data_position": 7, "step": 3}, tmp_path / "trainer_state.pt")
    expected = random.random()
    random.seed(99)
    state = load_trainer_state(tmp_path, optimizer())
    assert state["step"] == 3 and state["data_position"] == 7 and random.random() == expected


class Payload:
    def __reduce__(self):
        return (os.system, (f"touch {MARKER}",))


MARKER = ""


def test_a_state_that_would_run_code_is_refused_and_not_run(tmp_path):
    global MARKER
    MARKER = str(tmp_path / "ran")
    torch.save({"optimizer": Payload(), "step": 1}, tmp_path / "trainer_state.pt")
    with pytest.raises(UnsafeTrainerState, match="refusing"):
        load_trainer_state(tmp_path, optimizer())
    assert not (tmp_path / "ran").exists()
