"""Where a benchmark ran: the CPU, its load, the GPUs and the measured code.

The same code reads differently on different CPUs (issue 24: per-gate Gal
on JAX trains at 0.95-0.97x Keras's recurrent-dropout layer on one 2-vCPU
AMD EPYC and at 1.15-1.18x on a 2-vCPU Intel Xeon with AVX-512), so every
JSON records which CPU it comes from: the model name, the vendor and its
family/model/stepping numbers (the model name alone, e.g. "AMD EPYC", does
not say which generation), the logical CPUs and cores, whether it is a
virtual machine, and the instruction-set extensions that decide which
kernels XLA, oneDNN and PyTorch pick (`ISA`). On Linux they come from
`/proc/cpuinfo` (`parse_cpuinfo`); on macOS from `sysctl`; elsewhere only
`platform.processor()` and the CPU count are known. The load average
(1, 5 and 15 minutes) is read at the start and the end of a run.

Backend-independent: nothing here imports Keras, a backend or NumPy.
"""

import os
import platform
import shutil
import subprocess
import sys

# Instruction-set extensions that matter for the kernels measured, in the
# order the tables print them: x86 (the `flags` line of /proc/cpuinfo) and
# Arm (its `Features` line).
ISA = (
    "sse4_2",
    "avx",
    "avx2",
    "fma",
    "f16c",
    "avx_vnni",
    "avx512f",
    "avx512dq",
    "avx512cd",
    "avx512bw",
    "avx512vl",
    "avx512ifma",
    "avx512vbmi",
    "avx512_vbmi2",
    "avx512_vnni",
    "avx512_bf16",
    "avx512_fp16",
    "avx512_bitalg",
    "avx512_vpopcntdq",
    "amx_tile",
    "amx_bf16",
    "amx_int8",
    "amx_fp16",
    "asimd",
    "asimdhp",
    "asimddp",
    "bf16",
    "i8mm",
    "sve",
    "sve2",
    "sme",
)


def _command_output(command, cwd=None):
    """The stripped stdout of `command`, or `None` if it cannot run."""
    if shutil.which(command[0]) is None:
        return None
    try:
        done = subprocess.run(
            command,
            cwd=cwd,
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout.strip() if done.returncode == 0 else None


# ---------------------------------------------------------------------- CPU
def _isa(flags):
    """The extensions of `ISA` among `flags`, in `ISA`'s order (names
    compared without underscores and case: macOS spells `AVX512VNNI`)."""
    present = {f.lower().replace("_", "").replace(".", "") for f in flags}
    present |= {"avx"} if "avx10" in present else set()  # macOS: AVX1.0
    return [f for f in ISA if f.replace("_", "") in present]


def parse_cpuinfo(text):
    """The CPU of a `/proc/cpuinfo` text (x86 or Arm).

    Returns:
        dict: `model_name`, `vendor`, `family`, `model`, `stepping`
        (strings as the kernel prints them, or `None`), `logical_cpus`
        (processor entries), `physical_cores` (distinct physical id/core
        id pairs, or `None` if the kernel does not list them),
        `virtualized` (the `hypervisor` flag), `isa` (the extensions of
        `ISA` present) and `source`.
    """
    blocks = []
    for block in text.split("\n\n"):
        fields = {}
        for line in block.splitlines():
            key, sep, value = line.partition(":")
            if sep:
                fields.setdefault(key.strip(), value.strip())
        if fields:
            blocks.append(fields)
    processors = [b for b in blocks if "processor" in b] or blocks[:1]
    first = processors[0] if processors else {}
    everything = {k: v for b in reversed(blocks) for k, v in b.items()}
    flags = (first.get("flags") or first.get("Features") or "").split()
    cores = {
        (p.get("physical id"), p["core id"])
        for p in processors
        if "core id" in p
    }
    return {
        "model_name": first.get("model name")
        or everything.get("Model")
        or everything.get("Hardware"),
        "vendor": first.get("vendor_id") or first.get("CPU implementer"),
        "family": first.get("cpu family") or first.get("CPU architecture"),
        "model": first.get("model") or first.get("CPU part"),
        "stepping": first.get("stepping") or first.get("CPU revision"),
        "logical_cpus": len(processors) or None,
        "physical_cores": len(cores) or None,
        "virtualized": "hypervisor" in flags,
        "isa": _isa(flags),
        "source": "/proc/cpuinfo",
    }


def _darwin_cpu():
    def sysctl(name):
        return _command_output(["sysctl", "-n", name])

    flags = " ".join(
        sysctl(name) or ""
        for name in ("machdep.cpu.features", "machdep.cpu.leaf7_features")
    ).split()
    arm = {
        "hw.optional.AdvSIMD": "asimd",
        "hw.optional.arm.FEAT_BF16": "bf16",
        "hw.optional.arm.FEAT_I8MM": "i8mm",
        "hw.optional.arm.FEAT_SME": "sme",
    }
    flags += [flag for name, flag in arm.items() if sysctl(name) == "1"]
    logical, physical = sysctl("hw.logicalcpu"), sysctl("hw.physicalcpu")
    return {
        "model_name": sysctl("machdep.cpu.brand_string")
        or platform.processor(),
        "vendor": sysctl("machdep.cpu.vendor"),
        "family": sysctl("machdep.cpu.family"),
        "model": sysctl("machdep.cpu.model"),
        "stepping": sysctl("machdep.cpu.stepping"),
        "logical_cpus": int(logical) if logical else os.cpu_count(),
        "physical_cores": int(physical) if physical else None,
        "virtualized": None,
        "isa": _isa(flags) if flags else None,
        "source": "sysctl",
    }


def cpu_info(path="/proc/cpuinfo"):
    """The CPU (see `parse_cpuinfo`): from `path` on Linux, `sysctl` on
    macOS, else `platform.processor()` with `isa` `None` (unknown)."""
    try:
        with open(path) as f:
            return parse_cpuinfo(f.read())
    except OSError:
        pass
    if sys.platform == "darwin":
        return _darwin_cpu()
    return {
        "model_name": platform.processor() or platform.machine(),
        "vendor": None,
        "family": None,
        "model": None,
        "stepping": None,
        "logical_cpus": os.cpu_count(),
        "physical_cores": None,
        "virtualized": None,
        "isa": None,
        "source": "platform",
    }


def isa_text(isa):
    """`AVX2 FMA AVX-512 (F DQ ... BF16), no AMX` from a list of `ISA`
    names; `unknown` for `None`."""
    if isa is None:
        return "instruction sets unknown"
    parts = [f.upper() for f in isa if f in ("sse4_2", "avx", "avx2", "fma")]
    parts = [p.replace("SSE4_2", "SSE4.2") for p in parts]
    parts += [f.upper() for f in isa if f in ("f16c", "avx_vnni")]
    avx512 = [f for f in isa if f.startswith("avx512")]
    if avx512:
        names = " ".join(
            f.removeprefix("avx512").lstrip("_").upper() for f in avx512
        )
        parts.append(f"AVX-512 ({names})")
    elif any(f.startswith("avx") for f in isa):
        parts.append("no AVX-512")
    amx = [f.removeprefix("amx_").upper() for f in isa if f.startswith("amx")]
    if amx:
        parts.append(f"AMX ({' '.join(amx)})")
    elif any(f.startswith("avx") for f in isa):
        parts.append("no AMX")
    parts += [f.upper() for f in isa if f in ISA[ISA.index("asimd") :]]
    return " ".join(parts) if parts else "none of the listed extensions"


def cpu_text(cpu):
    """One line for a table header, e.g. `AMD EPYC (AuthenticAMD family 25
    model 17 stepping 1), 2 logical CPUs, 2 cores, virtual machine; AVX2
    ...`. Accepts the plain string of older JSON files."""
    if not isinstance(cpu, dict):
        return f"{cpu} (instruction sets not recorded)"
    ids = " ".join(
        f"{key} {cpu[key]}"
        for key in ("family", "model", "stepping")
        if cpu.get(key)
    )
    ident = " ".join(p for p in (cpu.get("vendor"), ids) if p)
    text = str(cpu.get("model_name"))
    if ident:
        text += f" ({ident})"
    if cpu.get("logical_cpus"):
        text += f", {cpu['logical_cpus']} logical CPUs"
    if cpu.get("physical_cores"):
        text += f", {cpu['physical_cores']} cores"
    if cpu.get("virtualized"):
        text += ", virtual machine"
    return f"{text}; {isa_text(cpu.get('isa'))}"


# ----------------------------------------------------------- load, GPUs
def load_average():
    """`[1 min, 5 min, 15 min]`, or `None` where the OS has none."""
    try:
        return [round(v, 2) for v in os.getloadavg()]
    except (OSError, AttributeError):
        return None


def load_text(load):
    """`0.88 1.02 0.95 (1, 5, 15 min)`, or `unknown`."""
    if not load:
        return "unknown"
    return " ".join(f"{v:.2f}" for v in load) + " (1, 5, 15 min)"


def gpu_info():
    """The NVIDIA GPUs `nvidia-smi` lists: name, driver, memory; or []."""
    out = _command_output(
        [
            "nvidia-smi",
            "--query-gpu=name,driver_version,memory.total",
            "--format=csv,noheader",
        ]
    )
    gpus = []
    for line in (out or "").splitlines():
        fields = [f.strip() for f in line.split(",")]
        if len(fields) == 3:
            gpus.append(
                {"name": fields[0], "driver": fields[1], "memory": fields[2]}
            )
    return gpus


def machine_info():
    """The CPU (`cpu_info`), CPUs available to this process, Python,
    platform, load average at start (`load_average_at_end` is added by
    `run.py` after each case) and GPUs."""
    try:
        available = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        available = os.cpu_count()
    return {
        "cpu": cpu_info(),
        "nproc": os.cpu_count(),
        "available_cpus": available,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "load_average_at_start": load_average(),
        "gpus": gpu_info(),
    }


def source_info(module_file):
    """Where the measured code came from: path, git commit, dirty flag."""
    folder = os.path.dirname(os.path.abspath(module_file))
    commit = _command_output(["git", "rev-parse", "HEAD"], cwd=folder)
    status = _command_output(
        ["git", "status", "--porcelain", "--untracked-files=no"], cwd=folder
    )
    return {
        "path": folder,
        "commit": commit,
        "dirty": bool(status) if status is not None else None,
    }
