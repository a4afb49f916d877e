"""Memory and time of one planner training step: the label-head loss rsim uses (last hidden state ×
the nine label rows) against the naive one (full-vocabulary logits at every position, then the
labels at the last one), each in a fresh process so peak memory is its own. Prints the ratio.

    python -m loadtests.bench_planner_step --model ~/.cache/rsim/gemma-3-270m --batch 4 --seq 512
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time


def one_step(model_path: str, variant: str, batch: int, seq: int, threads: int) -> dict:
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    from planner_server.backends.hf import label_logits

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_pretrained(model_path, dtype=torch.float32)
    model = get_peft_model(model, LoraConfig(r=16, lora_alpha=32, target_modules=["q_proj", "k_proj", "v_proj",
                                                                                   "o_proj"], task_type="CAUSAL_LM"))
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4)
    vocab = model.config.vocab_size
    ids = torch.randint(10, min(vocab, 30_000), (batch, seq))
    labels = list(range(100, 109))
    loaded_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    t0 = time.perf_counter()
    if variant == "label_head":
        logits = label_logits(model, ids.tolist(), labels, 0)
    else:
        logits = model(input_ids=ids, attention_mask=torch.ones_like(ids)).logits[:, -1, labels]
    loss = -torch.log_softmax(logits.float(), -1)[:, 0].mean()
    loss.backward()
    opt.step()
    seconds = time.perf_counter() - t0
    return {"variant": variant, "seconds": seconds, "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
            / 1024, "rss_after_load_mb": loaded_rss}


def main(argv: list[str] | None = None) -> list[dict]:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", required=True)
    p.add_argument("--batch", type=int, default=4)
    p.add_argument("--seq", type=int, default=512)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--variant", help=argparse.SUPPRESS)
    a = p.parse_args(argv)
    if a.variant:  # child process: one measurement, as JSON on stdout
        print(json.dumps(one_step(a.model, a.variant, a.batch, a.seq, a.threads)))
        return []
    results = []
    for variant in ("label_head", "full_vocab"):
        r = subprocess.run([sys.executable, "-m", "loadtests.bench_planner_step", "--model", a.model, "--batch",
                            str(a.batch), "--seq", str(a.seq), "--threads", str(a.threads), "--variant", variant],
                           capture_output=True, text=True, check=True)
        results.append(json.loads(r.stdout.strip().splitlines()[-1]))
    base = results[1]
    print(f"LoRA step, batch {a.batch}×{a.seq}, model {a.model.rstrip('/').split('/')[-1]}")
    print(f"{'variant':12} {'seconds':>8} {'peak RSS MB':>12} {'RSS after load':>15} {'memory vs full':>15}")
    for r in results:
        print(f"{r['variant']:12} {r['seconds']:>8.2f} {r['peak_rss_mb']:>12.0f} {r['rss_after_load_mb']:>15.0f} "
              f"{r['peak_rss_mb'] / base['peak_rss_mb']:>15.2f}")
    return results


if __name__ == "__main__":
    main()
