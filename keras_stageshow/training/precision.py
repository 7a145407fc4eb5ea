"""Choosing the training dtype policy: `mixed_bfloat16` where the CPU
computes bfloat16 natively, float32 elsewhere.

On CPUs with AVX-512 BF16 or AMX, oneDNN runs bfloat16 matmuls at about
twice the float32 rate; `benchmarks/mixed_precision.py` measured training
1.40x faster with the validation loss within 0.4% after 1,000 Multi30k
steps (benchmarks/README.md, section 8). Without those instructions
bfloat16 is emulated and slower (0.65x on an AVX2 machine), so `"auto"`
picks it only where they are. With a GPU, `"auto"` is `mixed_float16`,
which every NVIDIA GPU with tensor cores runs fast (Keras scales the loss).
"""

POLICIES = ("float32", "mixed_bfloat16", "mixed_float16")
BFLOAT16_FLAGS = ("avx512_bf16", "amx_bf16")


def cpu_flags(cpuinfo="/proc/cpuinfo"):
    """The CPU's feature flags (Linux's `/proc/cpuinfo`; empty elsewhere)."""
    try:
        with open(cpuinfo, encoding="utf-8", errors="replace") as f:
            for line in f:
                if line.startswith("flags"):
                    return set(line.partition(":")[2].split())
    except OSError:
        pass
    return set()


def resolve_dtype_policy(policy, flags=None, has_gpu=False):
    """`"auto"` -> `"mixed_float16"` with a GPU, else `"mixed_bfloat16"` if
    the CPU has AVX-512 BF16 or AMX, else `"float32"`; any of `POLICIES` is
    returned as it is.

    Args:
        policy: `"auto"` or one of `POLICIES`.
        flags: the CPU flags to decide on (default: this machine's).
        has_gpu: bool, whether training runs on a GPU.
    """
    if policy == "auto" and has_gpu:
        return "mixed_float16"
    if policy == "auto":
        flags = cpu_flags() if flags is None else set(flags)
        return "mixed_bfloat16" if flags & set(BFLOAT16_FLAGS) else "float32"
    if policy not in POLICIES:
        raise ValueError(
            f"`dtype_policy` must be 'auto' or one of {list(POLICIES)}; "
            f"received {policy!r}."
        )
    return policy
