"""A failed episode is a record with its error, counted against its method, and the run goes on: through
the SDK a service's 503 arrives as `PlannerUnavailableError`, which ended `rsim eval --service-url` with a
traceback (the runner caught only the loop's own `RsimError`)."""

from __future__ import annotations

import json
import threading
from dataclasses import replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from clients.eval.report import metrics, read_records
from clients.eval.runner import EvalConfig, PlannerSpec, Runner
from planner_server.training.synthetic import synthetic_problems
from tests.support.procs import free_port


class Unavailable(BaseHTTPRequestHandler):
    def do_POST(self):  # noqa: N802
        self.rfile.read(int(self.headers.get("content-length", 0)))
        body = json.dumps({"error": {"message": "planner answered 504", "type": "service_unavailable",
                                     "param": None, "code": "planner_unavailable"}}).encode()
        self.send_response(503)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


async def test_failed_requests_through_the_service_are_records_and_the_run_goes_on(tmp_path):
    server = ThreadingHTTPServer(("127.0.0.1", 0), Unavailable)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    dead = f"http://127.0.0.1:{free_port()}"
    problems = [replace(p, id=f"s{i}") for i, p in enumerate(synthetic_problems(3, seed=5))]
    try:
        for name, url in (("unavailable", f"http://127.0.0.1:{server.server_port}"), ("unreachable", dead)):
            cfg = EvalConfig(reasoner_url=f"{dead}/v1", reasoner_model="m", out=tmp_path / name,
                             planner=PlannerSpec(service_url=url), concurrency=2)
            async with Runner(cfg) as runner:
                path = await runner.run("synthetic", problems, "rsim")
            recs = [json.loads(line) for line in path.read_text().splitlines()]
            assert len(recs) == 3 and all(r["error"] and not r["correct"] for r in recs)
            if name == "unavailable":
                assert all(r["error"].startswith("503 planner answered 504") for r in recs)
            row = metrics(read_records(tmp_path / name))[0]
            assert row["errors"] == 3 and row["score"] == 0.0
    finally:
        server.shutdown()
