"""Benchmarks run in CI in a short mode so they cannot rot (no speed is asserted here)."""

import pytest

from loadtests import bench_http_client

pytestmark = pytest.mark.slow


def test_http_client_benchmark_short_mode(tmp_path, capsys):
    out = tmp_path / "bench.json"
    results = bench_http_client.main(["--seconds", "0.3", "--concurrency", "1,4", "--rounds", "1",
                                      "--out", str(out)])
    assert set(results) == {"direct", "httpx", "aiohttp", "rsim"}
    for per in results.values():
        for r in per.values():
            assert r["requests"] > 0 and r["errors"] == 0 and r["p50_ms"] >= 50  # the simulator's 50 ms
    assert out.is_file() and "req/s vs httpx" in capsys.readouterr().out


def test_planner_step_benchmark_short_mode(tiny_model, capsys):
    from loadtests import bench_planner_step

    results = bench_planner_step.main(["--model", str(tiny_model), "--batch", "2", "--seq", "32", "--threads", "1"])
    assert [r["variant"] for r in results] == ["label_head", "full_vocab"]
    assert all(r["peak_rss_mb"] > 0 and r["seconds"] > 0 for r in results)
    assert "memory vs full" in capsys.readouterr().out


def test_gpu_smoke_script_short_mode_on_cpu(capsys):
    import importlib.util

    from tests.support.procs import REPO

    spec = importlib.util.spec_from_file_location("gpu_smoke", REPO / "scripts" / "gpu_smoke.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    table = module.main(["--device", "cpu", "--dtype", "float32", "--tiny", "--seconds", "0.3", "--contexts", "64",
                         "--concurrency", "1,2", "--latency-n", "3"])
    assert "| on | 64 |" in table and "| off | 64 |" in table and "batching on/off" in table


def test_planner_prefix_cache_benchmark_short_mode(tiny_model, capsys, monkeypatch, work_dir):
    from loadtests import bench_planner_prefix_cache

    monkeypatch.setenv("VLLM_CPU_KVCACHE_SPACE", "1")
    monkeypatch.setenv("VLLM_CACHE_ROOT", str(work_dir / "vllm-prefix-bench"))
    result = bench_planner_prefix_cache.main(["--model", str(tiny_model), "--episodes", "2", "--steps", "3",
                                              "--step-words", "20"])
    assert set(result["by_position"]) == {"on", "off"} and result["ratio"] > 0
    assert "caching on" in capsys.readouterr().out


def test_soak_60_seconds_loses_nothing(tiny_model, work_dir):
    """The CI version of the soak: 60 s, 64 clients, 5% injected reasoner faults."""
    from loadtests import soak

    report = soak.main(["--minutes", "1", "--concurrency", "64", "--fault-rate", "0.05", "--planner-model",
                        str(tiny_model), "--logs", str(work_dir / "logs" / "soak")])
    assert report["lost"] == 0 and report["duplicated"] == 0
    assert report["answered"] > 0 and report["sent"] == report["answered"] + report["failed"]
    assert set(report["failed_by_cause"]) <= {"502 upstream_error", "504 upstream_timeout"}
