"""`rsim merge`: a LoRA planner checkpoint and its merged full folder make the same decisions (issue 12 §3:
serving stacks that cannot load adapters get one folder); the merged folder is served as a checkpoint."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from planner_server.backends import PlanItem
from planner_server.backends.hf import HFBackend
from planner_server.protocol import PlanStep
from planner_server.settings import PlannerSettings
from service.catalog import load_catalog
from tests.support.procs import REPO
from tests.support.tiny_model import make_lora_checkpoint


async def test_merged_folder_decides_like_the_adapter(tiny_model, tmp_path):
    catalog = load_catalog()
    ckpt = make_lora_checkpoint(tiny_model, tmp_path / "run" / "checkpoints" / "step-3")
    (ckpt.parent / "latest").write_text("step-3")

    out = tmp_path / "merged"
    done = subprocess.run([sys.executable, "-m", "clients.cli", "merge", str(ckpt.parent), "--out", str(out)],
                          capture_output=True, text=True, cwd=REPO, timeout=300)
    assert done.returncode == 0, done.stderr
    assert not (out / "adapter_config.json").exists() and (out / "model.safetensors").is_file()
    assert json.loads((out / "manifest.json").read_text())["merged_from"].endswith("step-3")

    items = [PlanItem("What is 2 + 3?", [PlanStep(strategy="decomposition", text="2 + 3 = 5")])]
    adapter = HFBackend.from_settings(PlannerSettings(checkpoint=ckpt.parent, threads=1), catalog)
    merged = HFBackend.from_settings(PlannerSettings(checkpoint=out, threads=1), catalog)
    base = HFBackend.from_settings(PlannerSettings(model=str(tiny_model), threads=1), catalog)
    a, m, b = (await adapter.label_logits(items))[0], (await merged.label_logits(items))[0], \
        (await base.label_logits(items))[0]
    assert m == pytest.approx(a, abs=1e-4)
    assert max(abs(x - y) for x, y in zip(a, b, strict=True)) > 1e-3  # the adapter does change the decision

    again = subprocess.run([sys.executable, "-m", "clients.cli", "merge", str(ckpt), "--out", str(out)],
                           capture_output=True, text=True, cwd=REPO, timeout=300)
    assert again.returncode == 2 and "not empty" in again.stderr
