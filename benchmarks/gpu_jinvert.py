"""jinvert's side of ``benchmarks/gpu.py``, in a child process without
PyTorch: per representation and number of samples, the time of one
iteration of ``jinvert.invert``'s loop at each ``--iterations-per-call``, the
wall time of one call with the paper's schedule, JAX's peak memory, and
XLA's count of one iteration's work (FLOPs, bytes accessed) for the
roofline (``benchmarks/roofline.py``); for HOG also one call on many codes
at once (Table 1's work).
"""

from __future__ import annotations

import json
import time

from gpu_cases import MIB, NOISY, Case, build_case, ms_per_iteration, print_row, reason


def jax_peak_mib():
    """JAX's ``peak_bytes_in_use`` of the first device, MiB (None where the
    backend keeps no such statistic, e.g. the CPU)."""
    import jax
    stats = jax.devices()[0].memory_stats() or {}
    peak = stats.get("peak_bytes_in_use")
    return None if peak is None else peak / MIB


def step_cost(rep, code, shape, samples: int):
    """XLA's :class:`roofline.Cost` of one iteration of ``jinvert.invert``'s
    loop for ``samples`` reconstructions of ``code`` at ``shape`` ``(H, W,
    C)`` with ``rep.defaults``: the engine's own compiled step (the value
    and gradient of eq. 3 for all samples and paper_sgd's update) as
    ``jinvert.engine.lower_step`` lowers it with the arguments
    ``jinvert.minimize`` gives it, compiled for the default backend (not run).

    A chunk of K iterations (``--iterations-per-call`` K > 1) runs this
    step K times in a ``lax.fori_loop``, whose cost XLA would count once.
    Returns the cost and the step's kernels by opcode
    (:func:`roofline.kernels`).
    """
    import jax

    from jinvert import terms
    from jinvert.engine import lower_step
    from roofline import cost_from_analysis, kernels

    if rep.defaults.jitter:
        raise ValueError("the step is costed without jitter")
    lowered = lower_step(rep, terms.inversion(code), key=jax.random.PRNGKey(0),
                         shape=tuple(shape), samples=samples)
    compiled = lowered.compile()
    return cost_from_analysis(compiled.cost_analysis()), kernels(compiled.as_text())


def measure_jinvert(case: Case, samples: int, per_call, args, row: dict) -> None:
    """Fill ``row`` for ``samples`` reconstructions at ``per_call``
    iterations per compiled call (None: the backend's default): ms/it,
    the fixed cost of a call, the compilation, one call's wall time."""
    import jax

    from jinvert import Loop, invert
    from timing import jinvert_run, per_iteration

    rep, shape = case.rep, case.x0.shape
    code = rep(jax.device_put(case.x0))
    t = per_iteration(jinvert_run(rep, code, samples=samples, shape=shape,
                                  iterations_per_call=per_call), args.iterations, args.repeats)
    row.update(jinvert_ms=ms_per_iteration(t), jinvert_fixed_ms=1e3 * t.fixed,
               jinvert_compile_s=t.first)
    if row["jinvert_ms"] is None:
        row["jinvert_error"] = NOISY
    config = (rep.defaults if args.call_iterations is None
              else rep.defaults.with_iterations(args.call_iterations))
    loop = Loop(progress=False, iterations_per_call=per_call)

    def call() -> float:
        t0 = time.perf_counter()
        jax.block_until_ready(invert(rep, code, shape=shape, key=jax.random.PRNGKey(1),
                                     samples=samples, config=config, loop=loop).images)
        return time.perf_counter() - t0

    call()  # compiles the step for this schedule's number of stages
    row.update(call_s=call(), call_iterations=config.iterations)


def measure_cost(case: Case, samples: int, precision: str) -> dict:
    """The row's fields for the roofline: XLA's ``flops`` and ``bytes`` of
    one iteration (:func:`step_cost`), its ``kernels`` (instructions that
    launch work, :func:`roofline.kernels`), the ``device_kind`` and the
    ``peak_precision`` ("fp32" or "tf32") its products ran at."""
    import jax

    code = case.rep(jax.device_put(case.x0))
    cost, launches = step_cost(case.rep, code, case.x0.shape, samples)
    tf32 = jax.default_backend() == "gpu" and precision == "default" and not case.pins_float32
    return {"flops": cost.flops, "bytes": cost.bytes, "kernels": sum(launches.values()),
            "device_kind": jax.devices()[0].device_kind,
            "peak_precision": "tf32" if tf32 else "fp32"}


def measure_codes_batch(case: Case, count: int, per_call, args) -> dict:
    """Seconds of one ``invert`` call on ``count`` HOG codes at once, one
    reconstruction each, the paper's schedule (Table 1's work): the codes of
    ``count`` different crops (and mirror images) of the astronaut."""
    import jax
    import numpy as np

    from jinvert import Loop, images, invert

    photo, size = images.load_image(), case.x0.shape[0]
    rng = np.random.default_rng(0)
    crops = []
    for i in range(count):
        scale = rng.uniform(1.0, 2.0)  # a crop of side size·scale, resized to size
        side = min(photo.shape[0], int(round(size * scale)))
        top, left = rng.integers(0, photo.shape[0] - side + 1, size=2)
        crop = images.resize(photo[top:top + side, left:left + side], (size, size))
        crops.append(crop[:, ::-1] if i % 2 else crop)
    codes = jax.block_until_ready(case.rep.batch_apply(
        jax.device_put(np.stack([np.asarray(case.rep.preprocess(c)) for c in crops]))))
    config = (case.rep.defaults if args.call_iterations is None
              else case.rep.defaults.with_iterations(args.call_iterations))
    loop = Loop(progress=False, iterations_per_call=per_call)

    def call() -> float:
        t0 = time.perf_counter()
        jax.block_until_ready(invert(case.rep, codes, shape=case.x0.shape,
                                     key=jax.random.PRNGKey(2), config=config, loop=loop).images)
        return time.perf_counter() - t0

    first = call()
    later = call()
    return {"codes": count, "per_call": per_call, "call_s": later,
            "compile_s": max(0.0, first - later), "call_iterations": config.iterations,
            "jax_peak_mib": jax_peak_mib()}


def child_jinvert(args) -> None:
    """jinvert's rows of one representation (``args.child``), one per
    sample count and iterations per call, in a process without PyTorch."""
    import jax

    if args.precision == "highest":
        jax.config.update("jax_default_matmul_precision", "highest")
    if args.device == "gpu" and jax.default_backend() != "gpu":
        raise SystemExit(f"--device gpu: JAX runs on {jax.default_backend()}")
    try:
        case = build_case(args.child, args.size, args.precision)
    except Exception as err:  # e.g. the EfficientNet wheel missing
        for samples in args.sample_counts:
            for per_call in args.per_call_values:
                print_row({"rep": args.child, "samples": samples, "per_call": per_call,
                           "error": reason(err)})
        return
    for samples in args.sample_counts:
        cost = {}
        for per_call in args.per_call_values:
            row = {"rep": args.child, "samples": samples, "per_call": per_call}
            try:
                measure_jinvert(case, samples, per_call, args, row)
            except Exception as err:  # out of memory, ...
                row["jinvert_error"] = reason(err)
            row["jax_peak_mib"] = jax_peak_mib()
            if not cost:  # the same step whatever the chunking: costed once
                try:
                    cost = measure_cost(case, samples, args.precision)
                except Exception as err:
                    cost = {"cost_error": reason(err)}
            print_row(dict(row, **cost))
    if args.child == "hog" and args.table1:
        for per_call in args.per_call_values:
            try:
                extra = measure_codes_batch(case, args.table1, per_call, args)
            except Exception as err:  # out of memory, ...
                extra = {"codes": args.table1, "per_call": per_call, "error": reason(err)}
            print("CODES " + json.dumps(extra), flush=True)
