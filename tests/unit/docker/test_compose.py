"""docker/compose.yaml: rendered by a real Compose v2 (tests/support/compose.py) and valid against the
compose spec, every service health-checked, every variable documented, images pinned."""

from __future__ import annotations

import re

import pytest
import yaml

from clients.eval.suite import expand
from tests.support.compose import render
from tests.support.procs import REPO

DOCKER = REPO / "docker"
COMPOSE = DOCKER / "compose.yaml"
VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::?([-?])([^}]*))?\}")


def env_example() -> dict[str, str]:
    out = {}
    for line in (DOCKER / ".env.example").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            key, _, value = line.partition("=")
            out[key.strip()] = value.strip()
    return out


def referenced() -> dict[str, str | None]:
    """Every ${VAR} of the compose file, with its operator ('-' default, '?' required, None plain)."""
    return {m.group(1): m.group(2) for m in VAR.finditer(COMPOSE.read_text())}


def test_every_variable_is_documented_and_required_ones_fail_fast():
    documented = env_example()
    refs = referenced()
    assert set(refs) <= set(documented), sorted(set(refs) - set(documented))
    example = (DOCKER / ".env.example").read_text()
    required = [name for name, op in refs.items() if op == "?"]
    assert required == ["GRAFANA_ADMIN_PASSWORD"]
    for name in required:
        assert re.search(rf"REQUIRED.*\n{name}=", example), name
        with pytest.raises(RuntimeError, match=name):  # the real compose refuses .env.example as shipped
            render(GRAFANA_ADMIN_PASSWORD="")


def test_compose_file_is_valid():
    """Rendered by a real Compose v2 (issue 12: the file had only been checked by our own interpolation)."""
    from compose_spec import ComposeSpecification

    data = render()
    assert data["name"] == "rsim"
    spec = ComposeSpecification.model_validate(yaml.safe_load(COMPOSE.read_text()))
    assert set(spec.services) == set(data["services"]) == {
        "reasoner", "planner", "service", "trainer", "prometheus", "grafana", "reasoner-cpu", "planner-cpu",
        "service-cpu"}


def test_every_service_has_a_healthcheck_and_pinned_image():
    services = render()["services"]
    for name, svc in services.items():
        assert svc.get("healthcheck", {}).get("test"), f"{name} has no healthcheck"
        image = svc.get("image", "")
        assert image and ":" in image and not image.endswith(":latest"), f"{name}: image {image!r} is not pinned"
    assert {k: v["condition"] for k, v in services["service"]["depends_on"].items()} == {
        "reasoner": "service_healthy", "planner": "service_healthy"}
    assert "--enable-prefix-caching" in services["reasoner"]["command"]
    for name in ("reasoner", "reasoner-cpu"):  # vLLM needs more than Docker's 64 MiB of /dev/shm (seen in docker/smoke.sh)
        svc = services[name]
        assert svc.get("ipc") == "host" or int(svc.get("shm_size", 0)) >= 512 * 2**20, name
    assert {s for s, svc in services.items() if svc.get("profiles") == ["cpu"]} == {
        "reasoner-cpu", "planner-cpu", "service-cpu"}
    assert services["trainer"]["profiles"] == ["train"]


def test_monitoring_config_scrapes_every_metrics_endpoint():
    prom = yaml.safe_load((DOCKER / "prometheus" / "prometheus.yml").read_text())
    targets = {t for job in prom["scrape_configs"] for cfg in job["static_configs"] for t in cfg["targets"]}
    assert {"service:9464", "planner:8001", "reasoner:8002"} <= targets  # the service's RSIM_METRICS_PORT
    service_env = render()["services"]["service"]["environment"]
    assert str(service_env["RSIM_METRICS_PORT"]) == "9464" and str(service_env["RSIM_DOCS"]).lower() == "false"
    assert not any("9464" in str(p) for p in render()["services"]["service"].get("ports", []))  # never published
    import json

    dash = json.loads((DOCKER / "grafana" / "dashboards" / "rsim.json").read_text())
    exprs = " ".join(t["expr"] for p in dash["panels"] for t in p["targets"])
    for metric in ("rsim_requests_total", "rsim_planner_seconds", "rsim_reasoner_seconds", "rsim_overhead_seconds",
                   "rsim_steps_per_request", "rsim_steps_total", "rsim_tokens_total", "vllm:prefix_cache_hits_total",
                   "rsim_planner_batch_size", "rsim_planner_queue_depth"):
        assert metric in exprs, metric


def test_suite_expansion_helper_is_the_same_idea():
    assert expand("${NOPE_NOT_SET:-x}") == "x"


def test_every_setting_reaches_its_containers():
    """Only five service settings reached the container: the rest of the README's tables did nothing in
    docker/.env (issue 12). Every service setting reaches both service containers and every planner setting
    both planner containers, rendered from .env.example — empty there, so the built-in default holds (the
    settings read an empty variable as unset)."""
    from planner_server.settings import PlannerSettings
    from service.settings import ServiceSettings

    services = render()["services"]
    service_vars = {f"RSIM_{n.upper()}" for n in ServiceSettings.model_fields}
    planner_vars = {f"RSIM_PLANNER_{n.upper()}" for n in PlannerSettings.model_fields}
    for name in ("service", "service-cpu"):
        assert service_vars <= set(services[name]["environment"]), (name, service_vars - set(services[name]["environment"]))
    for name in ("planner", "planner-cpu"):
        missing = planner_vars - set(services[name]["environment"]) - {"RSIM_PLANNER_MODEL"}  # cpu: the embedded one
        assert not missing or name == "planner-cpu" and missing <= {"RSIM_PLANNER_GPU_MEMORY_UTILIZATION"}, (name, missing)
    documented = env_example()
    assert {v for v in service_vars | planner_vars
            if v not in ("RSIM_REASONER_URL", "RSIM_PLANNER_URL", "RSIM_TRACE_STORE")} <= set(documented) | {
        "RSIM_PLANNER_GPU_MEMORY_UTILIZATION"}  # set from RSIM_PLANNER_GPU_SHARE


def test_cpu_profile_serves_the_loop_rsim_up_serves():
    """The cpu profile serves the embedded instruct reasoner: with the serving defaults (the planner's first
    step, delimiter-cut steps) it answered 17 × 23 = 340 in docker/smoke.sh; `rsim up` runs the loop that
    matched plain chat on this model. A value set in .env wins (RSIM_MAX_STEPS=8 in the example)."""
    from clients.up import EMBEDDED_EPISODE

    env = render()["services"]["service-cpu"]["environment"]
    example = env_example()
    for key, value in EMBEDDED_EPISODE.items():
        assert str(env[key]).lower() == (example.get(key) or value).lower(), key


@pytest.mark.parametrize("name", ["service", "service-cpu"])
def test_the_example_configuration_refuses_to_serve_without_a_key(name, monkeypatch):
    """Issue 29, closed by default: the service container listens on 0.0.0.0, so `.env.example` as shipped
    (no key) makes it refuse to start, saying why; a key, or RSIM_ALLOW_ANONYMOUS=true, lets it start."""
    from service.settings import ServiceSettings
    from tests.support.compose import container_env

    assert '--host "${RSIM_HOST:-0.0.0.0}"' in (DOCKER / "entrypoints" / "service.sh").read_text()

    def settings(**extra: str) -> ServiceSettings:
        for key in [k for k in __import__("os").environ if k.startswith("RSIM_")]:
            monkeypatch.delenv(key)
        for key, value in container_env(name, **extra).items():
            monkeypatch.setenv(key, value)
        return ServiceSettings()

    shipped = settings()
    assert shipped.api_keys is None and shipped.allow_anonymous is False
    with pytest.raises(ValueError, match="refusing to serve on 0.0.0.0 without client API keys"):
        shipped.check_exposure("0.0.0.0")
    settings(RSIM_API_KEYS="a-generated-key").check_exposure("0.0.0.0")
    settings(RSIM_ALLOW_ANONYMOUS="true").check_exposure("0.0.0.0")
