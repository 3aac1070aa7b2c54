"""The roofline of ``benchmarks/gpu.py`` (``benchmarks/roofline.py``): what
XLA's cost analysis counts, on programs whose work is known by hand; the
arithmetic of achieved rates, fractions of peak, ridge point and roofline
ratio on made-up numbers; the datasheet peaks; and the CPU path of
``python benchmarks/gpu.py`` printing the roofline table, then resuming
from its state file without measuring again."""

import os
import subprocess
import sys

import jax
import jax.numpy as jnp
import pytest

BENCHMARKS = os.path.join(os.path.dirname(__file__), "..", "benchmarks")
sys.path.insert(0, BENCHMARKS)
import gpu_report  # noqa: E402
import roofline  # noqa: E402


def test_xla_counts_a_matmul_as_2mnk_flops_and_its_operands_as_bytes():
    m, k, n = 64, 48, 32
    a, b = jnp.ones((m, k), jnp.float32), jnp.ones((k, n), jnp.float32)
    cost = roofline.xla_cost(lambda a, b: a @ b, a, b)
    assert cost.flops == 2 * m * n * k
    # Both operands read once and the product written once, float32.
    assert cost.bytes == 4 * (m * k + k * n + m * n)


def test_xla_counts_a_loop_body_once():
    # Why gpu.py costs the step, not a chunk of K steps: a fori_loop's cost
    # is its body's (plus the counter), whatever the trip count.
    x = jnp.ones((64, 64), jnp.float32)
    one = roofline.xla_cost(lambda x: x @ x, x)
    ten = roofline.xla_cost(lambda x: jax.lax.fori_loop(0, 10, lambda i, y: y @ x, x), x)
    assert one.flops == 2 * 64 ** 3
    assert one.flops <= ten.flops < 2 * one.flops


def test_cost_from_analysis_reads_every_form():
    d = {"flops": 10.0, "bytes accessed": 20.0, "transcendentals": 3.0, "bytes accessed0{}": 5}
    assert roofline.cost_from_analysis(d) == roofline.Cost(10.0, 20.0, 3.0)
    assert roofline.cost_from_analysis([d]) == roofline.Cost(10.0, 20.0, 3.0)  # older JAX
    assert roofline.cost_from_analysis(None) == roofline.Cost(None, None, None)


def test_roofline_of_a_memory_bound_step():
    # 1 GFLOP and 1 GB in 10 ms: 100 GFLOP/s and 100 GB/s, on a device of
    # 1 TFLOP/s and 500 GB/s (ridge 2 FLOP/B). Intensity 1 < 2: the
    # bandwidth roof is nearer, attainable 1 × 500 GFLOP/s, ratio 0.2.
    r = roofline.roofline(1e9, 1e9, 0.01, peak_flops=1e12, peak_bytes=5e11)
    assert r.flops_per_s == pytest.approx(1e11) and r.bytes_per_s == pytest.approx(1e11)
    assert r.intensity == pytest.approx(1.0) and r.ridge == pytest.approx(2.0)
    assert r.flops_fraction == pytest.approx(0.1) and r.bytes_fraction == pytest.approx(0.2)
    assert r.bound == "memory"
    assert r.ratio == pytest.approx(1e11 / min(1e12, 1.0 * 5e11))


def test_roofline_of_a_compute_bound_step():
    # 8 GFLOP over 1 GB in 10 ms: intensity 8 > ridge 2, attainable 1 TFLOP/s.
    r = roofline.roofline(8e9, 1e9, 0.01, peak_flops=1e12, peak_bytes=5e11)
    assert r.bound == "compute"
    assert r.flops_fraction == pytest.approx(0.8) and r.bytes_fraction == pytest.approx(0.2)
    assert r.ratio == pytest.approx(0.8)


def test_roofline_without_peaks_gives_rates_only():
    r = roofline.roofline(3e6, 2e6, 1e-3)
    assert r.flops_per_s == pytest.approx(3e9) and r.intensity == pytest.approx(1.5)
    assert (r.flops_fraction, r.bytes_fraction, r.ridge, r.bound, r.ratio) == (None,) * 5
    with pytest.raises(ValueError):
        roofline.roofline(1.0, 1.0, 0.0)


@pytest.mark.parametrize("kind, expected", [
    ("NVIDIA H100 80GB HBM3", (67.0, 494.5, 3350.0)),     # SXM5
    ("NVIDIA H100 PCIe", (51.0, 378.0, 2000.0)),
    ("NVIDIA H100 NVL", (60.0, 417.5, 3900.0)),
    ("NVIDIA H200", (67.0, 494.5, 4800.0)),
    ("NVIDIA A100-SXM4-80GB", (19.5, 156.0, 2039.0)),
    ("NVIDIA A100 80GB PCIe", (19.5, 156.0, 1935.0)),
    ("NVIDIA A100-SXM4-40GB", (19.5, 156.0, 1555.0)),
    ("NVIDIA GH200 480GB", None),
    ("cpu", None),
])
def test_datasheet_peaks(kind, expected):
    assert roofline.device_peaks(kind) == (None if expected is None
                                           else roofline.Peaks(*expected))


def test_peak_follows_the_precision_and_the_options():
    # TF32 tensor dense is half the datasheet's "with sparsity" 989 TFLOP/s.
    tf32 = roofline.peak("NVIDIA H100 80GB HBM3", "tf32")
    assert tf32.flops == pytest.approx(989e12 / 2) and tf32.bytes == pytest.approx(3.35e12)
    assert roofline.peak("NVIDIA H100 80GB HBM3", "fp32").flops == pytest.approx(67e12)
    cpu = roofline.peak("cpu", "fp32")
    assert (cpu.flops, cpu.bytes) == (None, None) and "unknown" in cpu.label
    given = roofline.peak("cpu", "fp32", peak_tflops=2.0, peak_gbps=50.0)
    assert (given.flops, given.bytes) == (2e12, 50e9)
    assert roofline.peak("NVIDIA H200", "tf32", peak_gbps=100.0).bytes == 100e9
    with pytest.raises(ValueError):
        roofline.peak("cpu", "bf16")


HLO = """HloModule jit_step, entry_computation_layout={(f32[8]{0})->(f32[], f32[8]{0})}

%body (p: (s32[], f32[8])) -> (s32[], f32[8]) {
  %p = (s32[], f32[8]{0}) parameter(0)
  ROOT %t = (s32[], f32[8]{0}) tuple(%a, %b)
}

ENTRY %main.7 (x.1: f32[8]) -> (f32[], f32[8]) {
  %x.1 = f32[8]{0} parameter(0), metadata={op_name="x"}
  %c = f32[] constant(2)
  %fusion.1 = f32[8]{0} fusion(%x.1, %c), kind=kLoop, calls=%f1
  %custom-call.2 = (f32[8]{0}, s8[64]{0}) custom-call(%fusion.1), custom_call_target="__cublas$gemm"
  %gte = f32[8]{0} get-tuple-element(%custom-call.2), index=0
  %while.3 = (s32[], f32[8]{0}) while(%tuple.0), condition=%cond, body=%body
  %bitcast.1 = f32[2,4]{1,0} bitcast(%gte)
  reduce.4 = f32[] reduce(%gte, %c), dimensions={0}, to_apply=%add
  ROOT %tuple.9 = (f32[], f32[8]{0}) tuple(reduce.4, %gte)
}
"""


def test_kernels_counts_the_entrys_work_not_its_views():
    """Every instruction of ENTRY that does work, by opcode, with or without
    %-names and tuple shapes; parameters, constants, tuples, their elements
    and bitcasts launch nothing; a while loop counts once, its body not at all."""
    assert roofline.kernels(HLO) == {"fusion": 1, "custom-call": 1, "while": 1, "reduce": 1}


def test_kernels_of_a_compiled_loop_do_not_grow_with_its_trip_count():
    def loop(n):
        return lambda x: jax.lax.fori_loop(0, n, lambda i, y: jnp.sin(y) * 2.0 + y, x)

    x = jnp.ones(16)
    counts = [roofline.kernels(jax.jit(loop(n)).lower(x).compile().as_text())
              for n in (10, 1000)]
    # (XLA:CPU wraps the loop in a call; a GPU keeps the while)
    assert counts[0] == counts[1] and 1 <= sum(counts[0].values()) <= 5, counts
    assert sum(roofline.kernels(jax.jit(lambda a: (jnp.sin(a) @ a.T).sum())
                                .lower(jnp.ones((8, 8))).compile().as_text()).values()) >= 1


def test_report_cells_of_a_made_up_row():
    row = {"rep": "hog", "samples": 8, "per_call": None, "jinvert_ms": 10.0,
           "flops": 1e9, "bytes": 1e9, "device_kind": "NVIDIA H100 PCIe",
           "peak_precision": "fp32"}
    cells = dict(zip(gpu_report.ROOFLINE_COLUMNS, gpu_report.roofline_cells(row)))
    assert cells["GFLOP/s"] == "100" and cells["GB/s"] == "100"
    assert cells["% peak FLOP/s"] == f"{100 * 1e11 / 51e12:.3g}"    # FP32 51 TFLOP/s
    assert cells["% peak GB/s"] == "5"                               # of 2000 GB/s
    assert cells["nearer roof (ridge FLOP/B)"] == "memory (25.5)"    # 1 FLOP/B < 51e12/2e12
    assert cells["roofline %"] == "5"
    assert (cells["kernels/it"], cells["µs/kernel"]) == ("n/a", "n/a")    # not counted
    counted = dict(zip(gpu_report.ROOFLINE_COLUMNS,
                       gpu_report.roofline_cells({**row, "kernels": 2500})))
    assert (counted["kernels/it"], counted["µs/kernel"]) == ("2500", "4")  # 10 ms / 2500
    missing = gpu_report.roofline_cells({"rep": "hog", "samples": 1, "cost_error": "boom"})
    assert len(missing) == len(gpu_report.ROOFLINE_COLUMNS)
    assert missing[3] == "n/a (boom)"


def _table_rows(text, header_start):
    """The body rows (lists of cells) of the Markdown table whose header
    starts with ``header_start``."""
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(header_start))
    header = [c.strip() for c in lines[start].strip("|").split("|")]
    rows = []
    for line in lines[start + 2:]:
        if not line.startswith("|"):
            break
        rows.append(dict(zip(header, [c.strip() for c in line.strip("|").split("|")])))
    return rows


def test_gpu_py_on_the_cpu_prints_the_roofline_and_resumes(tmp_path):
    state, out = tmp_path / "state.jsonl", tmp_path / "gpu.md"
    command = [sys.executable, os.path.join(BENCHMARKS, "gpu.py"), "--device", "cpu",
               "--framework", "jinvert", "--reps", "hog", "--samples", "1", "--size", "32",
               "--iterations", "2", "--call-iterations", "2", "--table1", "0",
               "--iterations-per-call", "1,2", "--peak-tflops", "0.05", "--peak-gbps", "10",
               "--state", str(state), "--out", str(out)]
    env = dict(os.environ, JAX_PLATFORMS="cpu")
    first = subprocess.run(command, capture_output=True, text=True, timeout=600, env=env)
    assert first.returncode == 0, first.stderr[-3000:]
    rows = _table_rows(first.stdout, "| representation | samples | its/call | jinvert ms/it "
                                     "| GFLOP/it")
    assert [(r["representation"], r["samples"], r["its/call"]) for r in rows] == [
        ("hog", "1", "1"), ("hog", "1", "2")]
    for r in rows:
        flops, mb = float(r["GFLOP/it"]), float(r["MB/it"])
        assert flops > 0 and mb > 0
        assert float(r["FLOP/B"]) == pytest.approx(flops * 1e3 / mb, rel=2e-2)
        if r["jinvert ms/it"].startswith("n/a"):  # noise on a loaded CPU
            continue
        seconds = float(r["jinvert ms/it"]) / 1e3
        assert float(r["GFLOP/s"]) == pytest.approx(flops / seconds, rel=2e-2)
        assert float(r["% peak FLOP/s"]) == pytest.approx(100 * flops / seconds / 50, rel=2e-2)
        assert float(r["% peak GB/s"]) == pytest.approx(100 * mb / 1e3 / seconds / 10,
                                                        rel=2e-2)
        assert r["nearer roof (ridge FLOP/B)"].endswith("(5)")  # 0.05e12 / 10e9
        assert r["peak"] == "0.05 TFLOP/s given, 10 GB/s given"
        # The step's kernels: HOG's gradient, binning, pooling, norms, the
        # priors and the update are tens of fusions, the same per row.
        assert 10 <= int(r["kernels/it"]) < 1000, r
        assert float(r["µs/kernel"]) == pytest.approx(
            1e3 * float(r["jinvert ms/it"]) / int(r["kernels/it"]), rel=2e-2)
    assert rows[0]["kernels/it"] == rows[1]["kernels/it"]
    # The main table has a row per iterations per call too.
    assert len(_table_rows(first.stdout, "| representation | samples | its/call | jinvert ms/it "
                                         "| eager ms/it")) == 2
    assert "roofline of jinvert's step" in out.read_text()
    # Again with the same state: nothing is measured, the same rows come back.
    again = subprocess.run(command[:-2], capture_output=True, text=True, timeout=300, env=env)
    assert again.returncode == 0, again.stderr[-3000:]
    assert "hog jinvert: 2 row(s) from the state file" in again.stderr
    assert " done (" not in again.stderr
    assert _table_rows(again.stdout, "| representation | samples | its/call | jinvert ms/it "
                                     "| GFLOP/it") == rows


def _trace():
    """A made-up Perfetto trace: a host process and one GPU with two streams."""
    meta = [{"ph": "M", "name": "process_name", "pid": 1, "args": {"name": "/host:CPU"}},
            {"ph": "M", "name": "process_name", "pid": 7, "args": {"name": "/device:GPU:0"}}]
    host = [{"ph": "X", "pid": 1, "tid": 1, "name": "PjitFunction", "ts": 0, "dur": 1000}]
    gpu = [{"ph": "X", "pid": 7, "tid": s, "name": n, "ts": t, "dur": d}
           for s, n, t, d in ((1, "fusion_a", 100, 50), (1, "fusion_a", 300, 50),
                              (2, "gemm", 120, 110), (1, "fusion_b", 600, 10))]
    return {"traceEvents": meta + host + gpu}


def test_profile_summary_takes_the_devices_kernels():
    """Busy time is the union of the kernels' intervals across streams (the
    overlap of fusion_a and gemm counted once: 100–230, 300–350 and 600–610,
    190 µs), the span from the first start to the last end, and the kernels
    ranked by total time; the host's events are left out."""
    import gpu_profile
    s = gpu_profile.summarise(_trace())
    assert s["where"] == "device" and s["kernels"] == 4
    assert s["busy_us"] == 190 and s["span_us"] == 510 and s["kernel_us"] == 220
    assert s["top"] == [("gemm", 1, 110.0), ("fusion_a", 2, 100.0), ("fusion_b", 1, 10.0)]
    text = gpu_profile.table([{"rep": "hog", "samples": 1, "iterations": 2, "wall_s": 0.00095,
                               "summary": s}])
    # busy 190 µs of a 950 µs call; 4 kernels over 2 iterations; 220 / 4 µs each
    assert "| hog | 1 | 2 | 0.00095 | device | 20 | 2 | 55 |" in text


def test_profile_of_a_cpu_call_traces_exactly_that_call(tmp_path):
    """On the CPU (no device events) the profiled call is the one invert call
    after the compiling one: its host events hold invert once."""
    out = tmp_path / "profile.md"
    done = subprocess.run([sys.executable, os.path.join(BENCHMARKS, "gpu_profile.py"),
                           "--reps", "hog", "--samples", "1", "--iterations", "4", "--size", "32",
                           "--keep", str(tmp_path / "traces"), "--out", str(out)],
                          capture_output=True, text=True, timeout=600,
                          env=dict(os.environ, JAX_PLATFORMS="cpu"))
    assert done.returncode == 0, done.stderr[-3000:]
    import gpu_profile
    summary = gpu_profile.summarise(gpu_profile.read_trace(str(tmp_path / "traces" / "hog-1")))
    assert summary["where"] == "host (no device events)"
    events = gpu_profile.read_trace(str(tmp_path / "traces" / "hog-1"))["traceEvents"]
    inverts = [e for e in events if e.get("ph") == "X" and "inversion.py" in e.get("name", "")
               and e["name"].endswith(" invert")]
    assert len(inverts) == 1, [e["name"] for e in inverts]
    assert "| hog | 1 | 4 |" in out.read_text() and "| host (no device events) | n/a |" in \
        out.read_text()
