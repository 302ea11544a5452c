"""What keeping llama.cpp off its extra buffer types costs (annotation/llama_cpu.py).

    python bench/llama_cpu.py [--model qwen2.5-coder-0.5b-instruct] [--requests 12] [--threads 2]

Each setting runs in its own child process (a crash is recorded, not fatal), on the same
grading prompts, one after another in this one run, so the ratios compare like with like:

  off            use_extra_bufts = False: the project's setting on AMX CPUs (no AMX buffers, no
                 CPU repack of Q4_K weights)
  repack-no-amx  llama.cpp's default buffers, but AMX refused to the process (a seccomp filter
                 makes arch_prctl(ARCH_REQ_XCOMP_PERM) fail, so ggml registers no AMX buffer
                 type): CPU repack without AMX; this is what an AMD EPYC gets by default. A
                 measuring device only, not something the project ships.
  on             llama.cpp's default (AMX where the CPU has it): crashes on AMX CPUs

A request: the project's grading prompt (annotation/rubric.grading_prompt) for an XQuAD-like
question and passage, a fresh prompt each time (no prefix cache), 4 answer tokens, greedy.
Reported: median seconds per request, prompt tokens per second. The record goes to
bench/results/DATE-llama-cpu-(amx|no-amx)-MODEL.json.
"""
from __future__ import annotations

import argparse
import ctypes
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from datetime import date
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SETTINGS = ("off", "repack-no-amx", "on")


def refuse_amx() -> None:
    """Install a seccomp filter: arch_prctl(ARCH_REQ_XCOMP_PERM, ...) fails with EPERM."""
    sys.path.insert(0, str(REPO / "lib"))
    from gradedrel.annotation.llama_cpu import ARCH_REQ_XCOMP_PERM
    lib = ctypes.CDLL("libseccomp.so.2", use_errno=True)
    lib.seccomp_init.restype = ctypes.c_void_p

    class ArgCmp(ctypes.Structure):
        _fields_ = [("arg", ctypes.c_uint), ("op", ctypes.c_int),
                    ("datum_a", ctypes.c_uint64), ("datum_b", ctypes.c_uint64)]

    ctx = ctypes.c_void_p(lib.seccomp_init(0x7FFF0000))            # SCMP_ACT_ALLOW
    nr = lib.seccomp_syscall_resolve_name(b"arch_prctl")
    rule = ArgCmp(0, 4, ARCH_REQ_XCOMP_PERM, 0)                     # SCMP_CMP_EQ on arg 0
    if lib.seccomp_rule_add_array(ctx, 0x00050000 | 1, nr, 1, ctypes.byref(rule)) != 0:  # ERRNO(EPERM)
        raise OSError("seccomp_rule_add_array failed")
    if lib.seccomp_load(ctx) != 0:
        raise OSError("seccomp_load failed")


def prompts(n: int) -> list[str]:
    sys.path.insert(0, str(REPO / "lib"))
    from gradedrel.annotation.rubric import grading_prompt
    topics = ["Super Bowl 50", "the Rhine", "photosynthesis", "the Normans", "Nikola Tesla",
              "the Amazon rainforest", "the Black Death", "Genghis Khan", "oxygen", "Victoria"]
    return [grading_prompt(f"What is known about {topics[i % len(topics)]} ({i})?",
                           f"{topics[i % len(topics)]} is described in this passage number {i}, which "
                           "gives its history, the people involved, the places and the dates, "
                           "in two or three sentences of encyclopaedic text.") for i in range(n)]


def child(setting: str, model_path: str, n: int, threads: int) -> None:
    if setting == "repack-no-amx":
        refuse_amx()
    sys.path.insert(0, str(REPO / "lib"))
    os.environ["GRADEDREL_LLAMA_EXTRA_BUFFERS"] = "off" if setting == "off" else "on"
    from gradedrel.annotation.llama_cpu import apply
    apply()
    from llama_cpp import Llama
    model = Llama(model_path, n_ctx=1024, n_threads=threads, n_threads_batch=threads, verbose=False)
    seconds, tokens = [], []
    for text in prompts(n + 1):
        model.reset()
        start = time.perf_counter()
        out = model(text, max_tokens=4, temperature=0)
        seconds.append(time.perf_counter() - start)
        tokens.append(out["usage"]["prompt_tokens"])
    seconds, tokens = seconds[1:], tokens[1:]            # the first request warms up
    print(json.dumps({"seconds": seconds, "prompt_tokens": tokens}), flush=True)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default="qwen2.5-coder-0.5b-instruct")
    ap.add_argument("--requests", type=int, default=12)
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--settings", default=",".join(SETTINGS))
    ap.add_argument("--child", help=argparse.SUPPRESS)
    args = ap.parse_args()
    sys.path.insert(0, str(REPO / "lib"))
    from gradedrel.annotation.packaged_llms import packaged_gguf
    path = str(packaged_gguf(args.model))
    if args.child:
        child(args.child, path, args.requests, args.threads)
        return 0
    from gradedrel.annotation.llama_cpu import amx_flags
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor())
    rows = {}
    for setting in args.settings.split(","):
        done = subprocess.run([sys.executable, __file__, "--child", setting, "--model", args.model,
                               "--requests", str(args.requests), "--threads", str(args.threads)],
                              capture_output=True, text=True, timeout=1800)
        if done.returncode != 0:
            rows[setting] = {"status": f"failed (exit {done.returncode})",
                             "stderr_tail": done.stderr.strip().splitlines()[-3:]}
        else:
            m = json.loads(done.stdout.strip().splitlines()[-1])
            rows[setting] = {"status": "ok", "median_s": statistics.median(m["seconds"]),
                             "prompt_tokens_per_s": sum(m["prompt_tokens"]) / sum(m["seconds"]),
                             "median_prompt_tokens": statistics.median(m["prompt_tokens"]), **m}
        print(setting, {k: v for k, v in rows[setting].items() if k not in ("seconds", "prompt_tokens")},
              flush=True)
    base = rows.get("off", {}).get("median_s")
    for r in rows.values():
        if base and r.get("median_s"):
            r["off_vs_this"] = base / r["median_s"]          # >1: "off" is slower by this factor
    record = {"date": date.today().isoformat(), "cpu": cpu, "amx_flags": amx_flags(),
              "model": args.model, "threads": args.threads, "requests": args.requests, "settings": rows}
    out = REPO / "bench" / "results" / f"{record['date']}-llama-cpu-{'amx' if amx_flags() else 'no-amx'}-{args.model}.json"
    out.write_text(json.dumps(record, indent=1) + "\n")
    print(f"record: {out.relative_to(REPO)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
