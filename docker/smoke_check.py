"""What docker/smoke.sh checks against the running `cpu` stack, as a user would: a `/solve` with the rsim
client, a streamed chat with the official `openai` SDK, and the planner's admin endpoint (closed without
the token, closed to paths outside the checkpoints volume, open to a checkpoint the trainer wrote there).

    python docker/smoke_check.py solve --service http://127.0.0.1:18000 --api-key KEY
    python docker/smoke_check.py reload --planner http://127.0.0.1:18001 --token TOKEN --checkpoint PATH
Each prints one JSON line of what it saw and exits non-zero on the first check that fails.
"""

from __future__ import annotations

import argparse
import json
import sys
import time

import httpx


def fail(message: str) -> None:
    print(json.dumps({"ok": False, "error": message}))
    sys.exit(1)


def solve(args: argparse.Namespace) -> dict:
    from openai import OpenAI

    from clients import Client

    t0 = time.perf_counter()
    with Client(args.service, api_key=args.api_key, timeout_s=600) as client:
        result = client.solve("What is 17 * 23?")  # the stack's own episode settings
    solve_s = time.perf_counter() - t0
    if "391" not in (result.answer or ""):
        fail(f"/solve answered {result.answer!r} to 17 * 23")
    unauthenticated = httpx.post(f"{args.service}/solve", json={"question": "1+1?"}, timeout=30)
    if unauthenticated.status_code != 401:
        fail(f"/solve without a key: {unauthenticated.status_code}, expected 401")
    sdk = OpenAI(base_url=f"{args.service}/v1", api_key=args.api_key, timeout=600, max_retries=0)
    t0 = time.perf_counter()
    stream = sdk.chat.completions.create(model=f"rsim/{args.model}", stream=True, max_tokens=512,
                                         messages=[{"role": "user", "content": "What is 12 + 30?"}])
    content, reasoning, chunks = "", "", 0
    for chunk in stream:
        chunks += 1
        for choice in chunk.choices:
            content += choice.delta.content or ""
            reasoning += getattr(choice.delta, "reasoning_content", None) or ""
    if "42" not in content:
        fail(f"streamed chat answered {content!r} to 12 + 30")
    return {"solve_answer": result.answer, "solve_steps": [s.strategy for s in result.steps], "solve_s": round(solve_s, 1),
            "chat_chunks": chunks, "chat_answer": content.strip()[-80:], "chat_reasoning_chars": len(reasoning),
            "chat_s": round(time.perf_counter() - t0, 1), "no_key_status": unauthenticated.status_code}


def reload(args: argparse.Namespace) -> dict:
    url = f"{args.planner}/admin/reload"
    body = {"checkpoint": args.checkpoint}
    seen = {}
    for name, headers in (("no_token", {}), ("empty_token", {"Authorization": "Bearer"}),
                          ("wrong_token", {"Authorization": "Bearer x" + args.token})):
        seen[name] = httpx.post(url, json=body, headers=headers, timeout=30).status_code
        if seen[name] != 401:
            fail(f"/admin/reload with {name}: {seen[name]}, expected 401")
    auth = {"Authorization": f"Bearer {args.token}"}
    outside = httpx.post(url, json={"checkpoint": "/etc"}, headers=auth, timeout=30)
    seen["outside_path"] = outside.status_code
    if outside.status_code != 400:
        fail(f"/admin/reload of /etc: {outside.status_code}, expected 400")
    ok = httpx.post(url, json=body, headers=auth, timeout=600)
    if ok.status_code != 200:
        fail(f"/admin/reload of {args.checkpoint}: {ok.status_code} {ok.text}")
    seen["reloaded"] = ok.json()
    ready = httpx.get(f"{args.planner}/ready", timeout=30)
    seen["ready"] = ready.status_code
    if ready.status_code != 200:
        fail(f"planner not ready after the reload: {ready.status_code}")
    return seen


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("solve")
    s.add_argument("--service", required=True)
    s.add_argument("--api-key", required=True)
    s.add_argument("--model", default="qwen2.5-coder-1.5b-instruct")
    r = sub.add_parser("reload")
    r.add_argument("--planner", required=True)
    r.add_argument("--token", required=True)
    r.add_argument("--checkpoint", required=True)
    args = p.parse_args()
    print(json.dumps({"ok": True, **(solve(args) if args.cmd == "solve" else reload(args))}))


if __name__ == "__main__":
    main()
