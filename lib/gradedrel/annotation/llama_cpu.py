"""llama.cpp on any x86-64 CPU: no AMX path where it crashes, and a one-token self-check.

llama-cpp-python 0.3.36, built from source with GGML_NATIVE, segfaults in the first
inference on Intel Xeons with AMX (Sapphire Rapids and later: flags `amx_int8 amx_tile`):
the weights are repacked into AMX buffers at load (`ggml_backend_amx_buffer_set_tensor:
amx repack`) and `ggml_backend_amx_mul_mat` crashes (upstream: ggml-org/llama.cpp#20824,
ollama/ollama#17205). Build flags do not remove it: with GGML_NATIVE on, `-DGGML_AMX_*=OFF`
still gives `AMX_INT8 = 1`. The model parameter `use_extra_bufts = False` does: llama.cpp then
keeps the weights in ordinary CPU buffers (no AMX and no CPU-repack buffer types), and the
same completion succeeds.

The mechanism (`apply`): `llama_cpp.llama_model_default_params`, which `Llama(...)` and so
llama_cpp.server call for every model they load, returns parameters with `use_extra_bufts`
off whenever the setting says so. The setting, $GRADEDREL_LLAMA_EXTRA_BUFFERS:
  auto (default)  off on a CPU with AMX (`/proc/cpuinfo` flags), llama.cpp's default elsewhere
  off / on        always off / always llama.cpp's default (on: to measure, or once upstream
                  is fixed)
The cost of "off" is the CPU-repack path for Q4_K weights (bench/llama_cpu.py measures it
where both settings run).

`self_check(model)` loads the model in a child process and generates one token with the same
setting, so that a crash there (a signal, not a Python error) becomes a LlamaSelfCheckError
naming the signal, the CPU's AMX flags, the setting and what to do, instead of killing the
caller. `load_llama` = apply + self_check + `Llama(...)`; the local server
(local_llm.LlamaCppServer) asks its own process for one token after it starts.

    python -m gradedrel.annotation.llama_cpu check MODEL.gguf   # the self-check, printed
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

SETTING_VAR = "GRADEDREL_LLAMA_EXTRA_BUFFERS"
SETTINGS = ("auto", "off", "on")
AMX_FLAGS = ("amx_tile", "amx_int8", "amx_bf16")
UPSTREAM = "ggml-org/llama.cpp#20824"


class LlamaSelfCheckError(RuntimeError):
    pass


def cpu_flags(cpuinfo: str | None = None) -> set[str]:
    """The CPU's feature flags (the first `flags` line of /proc/cpuinfo); empty where there
    is no /proc/cpuinfo."""
    if cpuinfo is None:
        try:
            cpuinfo = Path("/proc/cpuinfo").read_text(errors="replace")
        except OSError:
            return set()
    for line in cpuinfo.splitlines():
        if line.startswith("flags") and ":" in line:
            return set(line.split(":", 1)[1].split())
    return set()


def amx_flags(cpuinfo: str | None = None) -> list[str]:
    flags = cpu_flags(cpuinfo)
    return [f for f in AMX_FLAGS if f in flags]


SYS_ARCH_PRCTL, ARCH_REQ_XCOMP_PERM, XFEATURE_XTILEDATA = 158, 0x1023, 18    # x86-64 Linux


def amx_usable() -> bool:
    """Whether this process may use AMX tiles: the CPU has them and the kernel grants the
    permission ggml asks for (arch_prctl ARCH_REQ_XCOMP_PERM). Where it is refused, ggml
    registers no AMX buffer type and its AMX path cannot run (or crash)."""
    if not amx_flags():
        return False
    try:
        import ctypes
        return ctypes.CDLL(None, use_errno=True).syscall(
            SYS_ARCH_PRCTL, ARCH_REQ_XCOMP_PERM, XFEATURE_XTILEDATA) == 0
    except (OSError, AttributeError):
        return False


def setting() -> str:
    value = os.environ.get(SETTING_VAR, "auto").strip().lower() or "auto"
    if value not in SETTINGS:
        raise ValueError(f"${SETTING_VAR}={value!r}: one of {', '.join(SETTINGS)}")
    return value


def extra_buffers_allowed(value: str | None = None, cpuinfo: str | None = None) -> bool:
    """Whether llama.cpp may use its extra buffer types (AMX, CPU repack) under `value`
    (default: the environment's setting) on this CPU (or on the CPU `cpuinfo` describes)."""
    value = value or setting()
    if value == "auto":
        return not amx_flags(cpuinfo)
    return value == "on"


def apply() -> bool:
    """Make every model llama_cpp loads in this process follow the setting; idempotent, and
    re-read on each load (a changed environment takes effect on the next model). Returns
    whether extra buffers are allowed now."""
    import llama_cpp.llama_cpp as lib

    if not getattr(lib, "_gradedrel_extra_buffers", False):
        original = lib.llama_model_default_params

        def llama_model_default_params():
            params = original()
            if not extra_buffers_allowed():
                params.use_extra_bufts = False
            return params

        llama_model_default_params.original = original
        lib.llama_model_default_params = llama_model_default_params
        lib._gradedrel_extra_buffers = True
    return extra_buffers_allowed()


def describe() -> str:
    """One line: the setting, the CPU's AMX flags, and what llama.cpp will use."""
    amx = amx_flags()
    return (f"${SETTING_VAR}={setting()}, CPU AMX flags: {' '.join(amx) or 'none'}, extra buffer "
            f"types (AMX / CPU repack) {'allowed' if extra_buffers_allowed() else 'off'}")


def crash_message(what: str, returncode: int | None, log_tail: str = "") -> str:
    """Why llama.cpp failed, for an error: the signal, the CPU, the setting and the way out."""
    if returncode is not None and returncode < 0:
        try:
            name = signal.Signals(-returncode).name
        except ValueError:
            name = f"signal {-returncode}"
        cause = f"{what} was killed by {name}"
    else:
        cause = f"{what} exited with {returncode}"
    lines = [cause, describe()]
    if returncode is not None and returncode < 0 and amx_flags() and extra_buffers_allowed():
        lines.append(f"This CPU has AMX, and llama.cpp's AMX path crashes ({UPSTREAM}): run with "
                     f"{SETTING_VAR}=auto (the default) or off.")
    if log_tail.strip():
        lines.append("last lines of its output:\n" + log_tail.strip())
    return "\n".join(lines)


# A prompt of several dozen tokens: on the AMX path a one-token prompt ("Hello") runs, and
# any batch of two or more prompt tokens crashes (measured on a Sapphire Rapids Xeon).
SELF_CHECK_PROMPT = ("Query: who won Super Bowl 50?\nPassage: The Denver Broncos defeated the Carolina "
                     "Panthers 24-10 to win Super Bowl 50.\nGrade the passage from 0 to 3. Grade:")
_CHECKED: dict[tuple, dict] = {}
CHECK_TIMEOUT = 300.0


def self_check(model_path, n_threads: int = 1, timeout: float = CHECK_TIMEOUT) -> dict:
    """Load the model in a child process under this process's setting and generate one
    token after a prompt of several dozen tokens (SELF_CHECK_PROMPT). Returns {"token", "seconds", "extra_buffers"}; raises LlamaSelfCheckError naming
    the cause when the child crashes, fails or hangs. Remembered per model and setting."""
    key = (str(Path(model_path).resolve()), setting(), tuple(amx_flags()))
    if key in _CHECKED:
        return _CHECKED[key]
    command = [sys.executable, "-m", "gradedrel.annotation.llama_cpu", "check", str(model_path),
               "--threads", str(n_threads)]
    env = dict(os.environ)
    lib = str(Path(__file__).resolve().parents[2])
    env["PYTHONPATH"] = lib + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=timeout, env=env)
    except subprocess.TimeoutExpired as err:
        raise LlamaSelfCheckError(f"llama.cpp's one-token self-check on {Path(model_path).name} "
                                  f"did not finish in {timeout:.0f} s; {describe()}") from err
    tail = "\n".join((done.stderr or "").splitlines()[-12:])
    if done.returncode != 0:
        raise LlamaSelfCheckError(crash_message(
            f"llama.cpp's one-token self-check on {Path(model_path).name}", done.returncode, tail))
    result = json.loads(done.stdout.strip().splitlines()[-1])
    _CHECKED[key] = result
    return result


def load_llama(model_path, **kwargs):
    """`llama_cpp.Llama(model_path, **kwargs)` under the setting, after the self-check."""
    apply()
    self_check(model_path)
    from llama_cpp import Llama
    return Llama(str(model_path), **kwargs)


def _check(model_path: str, threads: int) -> int:
    import time
    apply()
    from llama_cpp import Llama
    start = time.perf_counter()
    model = Llama(model_path, n_ctx=256, n_threads=threads, verbose=False)
    out = model(SELF_CHECK_PROMPT, max_tokens=1, temperature=0)
    print(json.dumps({"token": out["choices"][0]["text"], "seconds": round(time.perf_counter() - start, 3),
                      "extra_buffers": extra_buffers_allowed()}), flush=True)
    return 0


def main(argv=None) -> int:
    import argparse
    ap = argparse.ArgumentParser(prog="python -m gradedrel.annotation.llama_cpu")
    sub = ap.add_subparsers(dest="command", required=True)
    c = sub.add_parser("check", help="load MODEL and generate one token (the self-check's child)")
    c.add_argument("model")
    c.add_argument("--threads", type=int, default=1)
    sub.add_parser("describe", help="the setting and this CPU's AMX flags")
    args = ap.parse_args(argv)
    if args.command == "describe":
        print(describe())
        return 0
    return _check(args.model, args.threads)


if __name__ == "__main__":
    raise SystemExit(main())
