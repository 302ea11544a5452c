"""llama.cpp on any x86-64 CPU (annotation/llama_cpu.py): the setting that keeps llama.cpp off
its AMX path where that path crashes, and the self-check that turns a crash into an error.

On a CPU with AMX the integration tests show both halves: with the setting forced "on" the
first multi-token inference crashes, and the self-check (in a child process) and the server's
start-up check report it as LlamaSelfCheckError naming SIGSEGV and AMX; with the default the
same model answers. Elsewhere "on" is llama.cpp's default, which must answer too."""
import pytest

from gradedrel.annotation import llama_cpu

SAPPHIRE = "processor : 0\nflags : fpu sse2 avx2 avx512f amx_bf16 avx512_fp16 amx_tile amx_int8\n"
EPYC = "processor : 0\nflags : fpu sse2 avx2 avx512f avx512_bf16 sha_ni\n"


def test_amx_flags_are_read_from_cpuinfo():
    assert llama_cpu.amx_flags(SAPPHIRE) == ["amx_tile", "amx_int8", "amx_bf16"]
    assert llama_cpu.amx_usable() is False or llama_cpu.amx_flags() != []
    assert llama_cpu.amx_flags(EPYC) == []
    assert llama_cpu.cpu_flags("no flags here") == set()


@pytest.mark.parametrize("value, cpuinfo, allowed", [
    ("auto", SAPPHIRE, False), ("auto", EPYC, True),
    ("off", EPYC, False), ("off", SAPPHIRE, False),
    ("on", SAPPHIRE, True), ("on", EPYC, True)])
def test_extra_buffers_are_off_exactly_where_the_setting_says(value, cpuinfo, allowed):
    assert llama_cpu.extra_buffers_allowed(value, cpuinfo) is allowed


def test_an_unknown_setting_is_refused(monkeypatch):
    monkeypatch.setenv(llama_cpu.SETTING_VAR, "maybe")
    with pytest.raises(ValueError, match="auto, off, on"):
        llama_cpu.setting()


def test_apply_turns_the_default_model_parameters_off_and_follows_the_setting(monkeypatch):
    import llama_cpp
    llama_cpu.apply()
    llama_cpu.apply()                                      # idempotent: wrapped once
    original = llama_cpp.llama_cpp.llama_model_default_params.original
    assert original().use_extra_bufts is True               # llama.cpp's own default
    monkeypatch.setenv(llama_cpu.SETTING_VAR, "off")
    assert llama_cpp.llama_cpp.llama_model_default_params().use_extra_bufts is False
    monkeypatch.setenv(llama_cpu.SETTING_VAR, "on")
    assert llama_cpp.llama_cpp.llama_model_default_params().use_extra_bufts is True
    # Llama(...) reads the function through the module, so it sees the wrapped one
    import inspect
    assert "llama_cpp.llama_model_default_params()" in inspect.getsource(llama_cpp.llama.Llama.__init__)


def test_a_crash_message_names_the_signal_the_cpu_and_the_way_out(monkeypatch):
    monkeypatch.setattr(llama_cpu, "amx_flags", lambda cpuinfo=None: ["amx_tile", "amx_int8"])
    monkeypatch.setenv(llama_cpu.SETTING_VAR, "on")
    text = llama_cpu.crash_message("the check", -11, "ggml_backend_amx_mul_mat")
    assert "SIGSEGV" in text and "amx_tile amx_int8" in text and "GRADEDREL_LLAMA_EXTRA_BUFFERS=auto" in text
    assert llama_cpu.UPSTREAM in text and "ggml_backend_amx_mul_mat" in text
    assert "exited with 3" in llama_cpu.crash_message("the check", 3)


@pytest.fixture(scope="module")
def qwen():
    from gradedrel.annotation.packaged_llms import packaged_gguf
    return packaged_gguf("qwen2.5-coder-0.5b-instruct")


@pytest.mark.integration
def test_the_default_setting_answers_on_this_cpu(qwen, monkeypatch):
    monkeypatch.delenv(llama_cpu.SETTING_VAR, raising=False)
    out = llama_cpu.self_check(qwen)
    assert isinstance(out["token"], str)
    assert out["extra_buffers"] is (not llama_cpu.amx_flags())


@pytest.mark.integration
def test_llama_cpps_own_default_crashes_on_amx_and_the_self_check_names_it(qwen, monkeypatch):
    """The self-check must be able to fail: on an AMX CPU, llama.cpp's default (extra buffers
    on) segfaults, and the check reports that instead of dying; on other CPUs it answers."""
    monkeypatch.setenv(llama_cpu.SETTING_VAR, "on")
    if not llama_cpu.amx_usable():      # no AMX, or the kernel refuses it: llama.cpp's default runs
        assert llama_cpu.self_check(qwen)["extra_buffers"] is True
        return
    with pytest.raises(llama_cpu.LlamaSelfCheckError, match=r"(?s)SIGSEGV.*AMX flags: amx_tile"):
        llama_cpu.self_check(qwen)


@pytest.mark.integration
@pytest.mark.skipif(not llama_cpu.amx_usable(), reason="the server's crash path needs a CPU with usable AMX")
def test_the_servers_start_up_check_names_the_crash_on_amx(qwen, monkeypatch):
    from gradedrel.annotation.local_llm import LlamaCppServer
    monkeypatch.setenv(llama_cpu.SETTING_VAR, "on")           # the server process inherits it
    server = LlamaCppServer(qwen, alias="qwen", chat_format="chatml", n_threads=1)
    with pytest.raises(llama_cpu.LlamaSelfCheckError, match=r"(?s)server.*SIGSEGV.*GRADEDREL_LLAMA_EXTRA_BUFFERS"):
        server.start()
    assert server.process.poll() is not None
    assert server.log_path.parent != qwen.parent               # not beside the models in data/
    server.log_path.unlink(missing_ok=True)
