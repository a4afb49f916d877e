"""Settings from the environment exactly as compose renders `docker/.env.example`: `${VAR:-}` arrives
as an empty string, which must mean unset (issue 12: an empty admin token let a request with no
`Authorization` header through `/admin/reload`; an empty `RSIM_PLANNER_WATCH_S` stopped the planner;
an empty checkpoint became the path `.`)."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from planner_server.routes.admin import allowed_checkpoint, check_admin
from planner_server.settings import PlannerSettings
from service.errors import InvalidRequest, NotFound, Unauthorized
from service.settings import ServiceSettings

EXAMPLE = Path(__file__).resolve().parents[2] / "docker" / ".env.example"


def example_env() -> dict[str, str]:
    env = {}
    for line in EXAMPLE.read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#") and "=" in line:
            key, value = line.split("=", 1)
            env[key.strip()] = value.strip()
    return env


@pytest.fixture
def compose_env(monkeypatch):
    env = example_env()
    assert env["RSIM_PLANNER_ADMIN_TOKEN"] == "" and env["RSIM_PLANNER_WATCH_S"] == ""  # as shipped
    for key in [k for k in list(__import__("os").environ) if k.startswith("RSIM_")]:
        monkeypatch.delenv(key)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    return env


def test_empty_variables_are_unset(compose_env, monkeypatch):
    s = PlannerSettings()
    assert s.admin_token is None and s.watch_s is None and s.checkpoint is None and s.checkpoint_root is None
    with pytest.raises(NotFound):  # admin off: no header, an empty one and a bare "Bearer" all refused
        check_admin(type("S", (), {"settings": s})(), None)
    monkeypatch.setenv("RSIM_REASONER_URL", "http://127.0.0.1:9/v1")
    svc = ServiceSettings()
    assert svc.reasoner_api_key is None and svc.api_keys is None and svc.api_key_hashes() == frozenset()


@pytest.mark.parametrize("token", ["x", "s3cret-admin", "0123456789abcde"])
def test_a_short_admin_token_is_refused_at_start_up(compose_env, monkeypatch, token):
    monkeypatch.setenv("RSIM_PLANNER_ADMIN_TOKEN", token)
    with pytest.raises(ValidationError, match="at least 16 characters"):
        PlannerSettings()


def test_admin_refuses_missing_empty_and_wrong_tokens(compose_env, monkeypatch):
    monkeypatch.setenv("RSIM_PLANNER_ADMIN_TOKEN", "a-long-enough-admin-token")
    state = type("S", (), {"settings": PlannerSettings()})()
    for header in (None, "", "Bearer", "Bearer ", "Bearer a-long-enough-admin-toke", "a-long-enough-admin-token-x"):
        with pytest.raises(Unauthorized):
            check_admin(state, header)
    check_admin(state, "Bearer a-long-enough-admin-token")


def test_reload_paths_stay_under_the_checkpoint_folder(compose_env, monkeypatch, tmp_path):
    root = tmp_path / "checkpoints"
    (root / "step-000002").mkdir(parents=True)
    (tmp_path / "elsewhere").mkdir()
    (root / "link").symlink_to(tmp_path / "elsewhere")
    monkeypatch.setenv("RSIM_PLANNER_CHECKPOINT", str(root))
    state = type("S", (), {"settings": PlannerSettings()})()
    assert allowed_checkpoint(state, str(root / "step-000002")) == (root / "step-000002").resolve()
    for bad in ("/etc", str(tmp_path), str(root / ".."), str(root / "link"), "relative/path"):
        with pytest.raises(InvalidRequest) as e:
            allowed_checkpoint(state, bad)
        assert e.value.code == "checkpoint_outside"
    monkeypatch.delenv("RSIM_PLANNER_CHECKPOINT")
    with pytest.raises(InvalidRequest):  # nothing configured: no path is acceptable
        allowed_checkpoint(type("S", (), {"settings": PlannerSettings()})(), str(root))


@pytest.mark.parametrize("value", ["thinking", "reasoning,", "content", "reasoning, reasoning_content"])
def test_reasoning_fields_are_checked_at_start_up(compose_env, monkeypatch, value):
    monkeypatch.setenv("RSIM_REASONER_URL", "http://127.0.0.1:9/v1")
    monkeypatch.setenv("RSIM_REASONING_FIELDS", value)
    with pytest.raises(ValidationError):
        ServiceSettings()
