"""PyTorch's side of ``benchmarks/gpu.py``: the same inversion loop
(``benchmarks/torch_inversion.py``) eager and under ``torch.compile``, in a
child process whose JAX only builds the weights and the image (on the CPU);
and the parity check of the shallow codes, the one process that holds both
frameworks on the device.
"""

from __future__ import annotations

from gpu_cases import (MIB, NOISY, SHALLOW, Case, build_case, build_torch_phi,
                       ms_per_iteration, print_row, reason)


def set_torch_tf32(enabled: bool) -> None:
    """TF32 for float32 matmuls and cuDNN convolutions, on or off.

    Through the legacy ``allow_tf32`` flags only: PyTorch ≥ 2.9 raises when
    a legacy flag is read after the new ``fp32_precision`` API set another
    part, while these two keep both APIs consistent.
    """
    import warnings

    import torch
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the legacy flags' deprecation notice
        torch.backends.cuda.matmul.allow_tf32 = enabled
        torch.backends.cudnn.allow_tf32 = enabled


def measure_torch(case: Case, phi, samples: int, mode, device, args) -> dict:
    """``{"ms", "first_s", "peak_mib"}`` of the torch loop (``mode`` None:
    eager), and ``"error"`` where ms is None."""
    import numpy as np
    import torch

    from timing import per_iteration
    from torch_inversion import TorchInversion

    if mode is not None:
        torch._dynamo.reset()  # each row compiled for its own batch, as jinvert's
    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)
    x0 = torch.from_numpy(np.array(case.x0)).permute(2, 0, 1).contiguous().to(device)
    config = case.rep.defaults.sized(case.x0.shape, case.rep.sigma)
    loop = TorchInversion(phi, x0, config, samples, compile_mode=mode)
    t = per_iteration(loop.seconds, args.iterations, args.repeats)
    peak = torch.cuda.max_memory_allocated(device) / MIB if device.type == "cuda" else None
    out = {"ms": ms_per_iteration(t), "first_s": t.first, "peak_mib": peak}
    return out if out["ms"] is not None else dict(out, error=NOISY)


def child_torch(args) -> None:
    """PyTorch's rows (eager, compiled) of one representation, in a process
    whose JAX (which builds the weights and the image) runs on the CPU."""
    import torch

    gpu = args.device == "gpu"
    if gpu and not torch.cuda.is_available():
        raise SystemExit("--device gpu: torch.cuda.is_available() is False")
    device = torch.device("cuda" if gpu else "cpu")
    if args.torch_threads:
        torch.set_num_threads(args.torch_threads)
    try:
        import torch._dynamo
        torch._dynamo.config.cache_size_limit = 64
    except (ImportError, AttributeError):
        pass
    try:
        case = build_case(args.child, args.size, args.precision)
        phi = build_torch_phi(args.child, args.size, device)
    except Exception as err:
        for samples in args.sample_counts:
            print_row({"rep": args.child, "samples": samples, "error": reason(err)})
        return
    tf32 = gpu and args.precision == "default" and not case.pins_float32
    set_torch_tf32(tf32)
    for samples in args.sample_counts:
        row = {"rep": args.child, "samples": samples,
               "torch_fp32": "tf32" if tf32 else ("ieee" if gpu else "fp32")}
        for label, mode in (("eager", None), ("compiled", args.compile_mode)):
            if label == "compiled" and args.compile_mode == "none":
                row["compiled_error"] = "skipped"
                continue
            try:
                result = measure_torch(case, phi, samples, mode, device, args)
                row.update({f"{label}_{k}": v for k, v in result.items()})
            except Exception as err:  # torch.compile without a compiler, OOM, ...
                row[f"{label}_error"] = reason(err)
            if gpu:
                torch.cuda.empty_cache()
        print_row(row)


def child_parity(args) -> None:
    """Max |torch − jinvert| / max |jinvert| of the HOG, HOGb and DSIFT codes
    of the astronaut at ``args.size``, both frameworks on the device (the one
    process that holds both on the GPU)."""
    import jax
    import numpy as np
    import torch

    set_torch_tf32(False)
    device = torch.device("cuda" if args.device == "gpu" else "cpu")
    out = []
    for name in SHALLOW:
        case = build_case(name, args.size)
        expected = np.asarray(case.rep(jax.device_put(case.x0)))
        x = torch.from_numpy(np.array(case.x0)).permute(2, 0, 1)[None].contiguous()
        with torch.no_grad():
            got = build_torch_phi(name, args.size, device)(x.to(device))[0].cpu().numpy()
        rel = float(np.max(np.abs(got - expected)) / np.max(np.abs(expected)))
        out.append(f"{name} {rel:.1e}")
    print("PARITY " + ", ".join(out), flush=True)
