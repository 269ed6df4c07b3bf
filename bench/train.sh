#!/bin/sh
# bench/train.sh: recsys-train's ALS against the NumPy reference, and how
# its time per iteration grows.
#
#     bench/train.sh [BUILD_DIR]        (default: build)
#
# 1. One run of both on the same planted-topic log (bench/train_ref.py gen:
#    1M interactions, 100k users, 20k items), same split (--holdout 0.1,
#    latest by timestamp), factors, regularization, alpha, iterations and
#    threads (the tool's --threads, NumPy's OPENBLAS_NUM_THREADS): the
#    holdout metrics side by side, their relative difference (must be
#    within 2%), and the median time per iteration of each; then the tool
#    again with 3 conjugate-gradient steps per row instead of Cholesky.
#    With PEERS_PYTHON (the peers' venv, which make bench and make
#    bench-peers set up), the peers on the same split, data, factors,
#    iterations and threads (bench/train_peers.py): the implicit library's
#    ALS and Spark MLlib's in local mode, their metrics, time per iteration,
#    Spark's precision@10 against recsys-train's (target: within 10%), and
#    PLOT_DIR/train-peers.png.
# 2. The share of the tool's CPU time in OpenBLAS, from perf samples.
# 3. Median time per iteration for 32/64/128 factors, and for 0.25M to 2M
#    interactions at 64 factors.
# Environment: ITERATIONS (10), THREADS (all cores), KEEP=1 keeps the data,
# PEERS_PYTHON (unset: the peers are not run), PLOT_DIR (build/bench).
set -eu
BUILD=${1:-build}
TRAIN=$BUILD/recsys-train
REF="/usr/bin/python3 $(dirname "$0")/train_ref.py"
ITERATIONS=${ITERATIONS:-10}
THREADS=${THREADS:-$(nproc)}
TMP=$(mktemp -d /tmp/bench-train.XXXXXX)
[ "${KEEP:-0}" = 1 ] || trap 'rm -rf "$TMP"' EXIT

echo "command: $0 $*  (ITERATIONS=$ITERATIONS THREADS=$THREADS)"
echo "machine: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg)"

# The median of the "iteration i/n: ..., T s" lines on stdin.
median_iteration() {
    sed -n 's/^iteration [0-9]*\/[0-9]*: loss [^,]*, \([0-9.]*\) s$/\1/p' | sort -n |
        awk '{ t[NR] = $1 } END { if (NR == 0) exit 1;
              print (NR % 2 ? t[(NR + 1) / 2] : (t[NR / 2] + t[NR / 2 + 1]) / 2) }'
}

# data DIR INTERACTIONS: a log in DIR (users 100k, items 20k).
data() {
    mkdir -p "$1"
    [ -f "$1/log.csv" ] || $REF gen --users 100000 --items 20000 --interactions "$2" "$1"
}

# tool DIR FACTORS [args]: train, output in DIR/tool.out.
tool() {
    d=$1 k=$2
    shift 2
    "$TRAIN" --interactions "$d/log.csv" --catalog "$d/catalog.csv" --factors "$k" \
        --threads "$THREADS" --model-version bench -o "$d/model.lmdb" "$@" >"$d/tool.out" 2>&1
}

echo
echo "== ALS, recsys-train and NumPy, 1M interactions, 100k users, 20k items, 64 factors,"
echo "   $ITERATIONS iterations, regularization 0.05, alpha 20, holdout 0.1, $THREADS threads"
data "$TMP/1m" 1000000
tool "$TMP/1m" 64 --iterations "$ITERATIONS" --holdout 0.1
OPENBLAS_NUM_THREADS=$THREADS $REF als --catalog "$TMP/1m/catalog.csv" \
    --interactions "$TMP/1m/log.csv" --factors 64 --iterations "$ITERATIONS" \
    --regularization 0.05 --alpha 20 --holdout 0.1 >"$TMP/1m/ref.out"
grep -E '^(read|holdout|  ranking)' "$TMP/1m/tool.out"
grep -E '^  (als|popularity) ' "$TMP/1m/tool.out"
grep -E '^  numpy-als ' "$TMP/1m/ref.out"
tool_s=$(median_iteration <"$TMP/1m/tool.out")
ref_s=$(median_iteration <"$TMP/1m/ref.out")
cp "$TMP/1m/tool.out" "$TMP/1m/exact.out"
tool "$TMP/1m" 64 --iterations "$ITERATIONS" --holdout 0.1 --cg-steps 3
echo "  (--cg-steps 3) $(grep '^  als ' "$TMP/1m/tool.out" | sed 's/^  als *//'), $(median_iteration <"$TMP/1m/tool.out") s per iteration"
cp "$TMP/1m/exact.out" "$TMP/1m/tool.out"
awk -v t="$(grep '^  als ' "$TMP/1m/tool.out")" -v r="$(grep '^  numpy-als ' "$TMP/1m/ref.out")" \
    -v ts="$tool_s" -v rs="$ref_s" 'BEGIN {
        split(t, a, " "); split(r, b, " ");
        dp = (a[2] - b[2]) / b[2] * 100; dn = (a[4] - b[4]) / b[4] * 100;
        printf "precision@10 %+.2f%%, NDCG@10 %+.2f%% against NumPy (%s)\n", dp, dn,
               (dp < 2 && dp > -2 && dn < 2 && dn > -2) ? "within 2%" : "NOT within 2%";
        printf "time per iteration (median): recsys-train %.3f s, NumPy %.3f s, %.1fx faster\n",
               ts, rs, rs / ts }'

echo
echo "== the peers on the same split: implicit's ALS (exact, and CG 3 steps), Spark MLlib's ALS"
if [ -n "${PEERS_PYTHON:-}" ]; then
    p10() { sed -n "s/^  $1 *\([0-9.]*\) .*/\1/p" "$2"; }
    "$PEERS_PYTHON" "$(dirname "$0")/train_peers.py" --catalog "$TMP/1m/catalog.csv" \
        --interactions "$TMP/1m/log.csv" --factors 64 --iterations "$ITERATIONS" \
        --regularization 0.05 --alpha 20 --holdout 0.1 --threads "$THREADS" --work "$TMP/1m" \
        --also "recsys-train=$(p10 als "$TMP/1m/tool.out"):$tool_s" \
        --also "numpy=$(p10 numpy-als "$TMP/1m/ref.out"):$ref_s" \
        --plot "${PLOT_DIR:-$BUILD/bench}/train-peers.png" | tee "$TMP/1m/peers.out"
    awk -v t="$(p10 als "$TMP/1m/tool.out")" -v s="$(p10 spark-als "$TMP/1m/peers.out")" 'BEGIN {
        d = (s - t) / t * 100;
        printf "Spark precision@10 %+.1f%% against recsys-train (%s)\n", d,
               (d > -10 ? "within 10%" : "NOT within 10%") }'
else
    echo "  not run: PEERS_PYTHON is unset (make bench and make bench-peers set it)"
fi

echo
echo "== where the tool's time goes (perf, 1M interactions, 64 factors, 3 iterations, no holdout)"
if perf record -q -e cpu-clock:u -o "$TMP/perf.data" -- "$TRAIN" \
    --interactions "$TMP/1m/log.csv" --catalog "$TMP/1m/catalog.csv" --factors 64 \
    --iterations 3 --threads "$THREADS" --model-version bench -o "$TMP/1m/model.lmdb" \
    >/dev/null 2>&1; then
    # Samples by library and function: OpenBLAS, the solver's own code
    # (als.c, gathering rows and the loss), OpenBLAS's idle pool threads
    # yielding, and the rest (CSV, pairs, model writer).
    perf report -i "$TMP/perf.data" --sort dso,sym --stdio 2>/dev/null | awk '
        /%/ && !/^#/ {
            sub(/%/, "", $1)
            if ($2 ~ /openblas/) c = "blas"
            else if ($4 == "__sched_yield") c = "idle"
            else if ($4 ~ /^(work|gather|solve_row|solve_row_cg|apply|run_half|als_loss|quadratic|als_train|gram|factors_init|longest_row)$/) c = "als"
            else c = "other"
            s[c] += $1
        }
        END {
            t = s["blas"] + s["als"]
            printf "  whole run: OpenBLAS %.1f%%, als.c %.1f%%, idle OpenBLAS threads %.1f%%, " \
                   "reading, pairs and writing %.1f%%\n", s["blas"], s["als"], s["idle"], s["other"]
            printf "  of the training itself (OpenBLAS + als.c): %.0f%% in OpenBLAS\n",
                   (t > 0 ? 100 * s["blas"] / t : 0)
        }'
else
    echo "  perf is not available here: not measured"
fi

echo
echo "== time per iteration (median of 3) with factors, 1M interactions: Cholesky, CG 3 steps"
for k in 32 64 128; do
    tool "$TMP/1m" "$k" --iterations 3
    exact=$(median_iteration <"$TMP/1m/tool.out")
    tool "$TMP/1m" "$k" --iterations 3 --cg-steps 3
    echo "  factors $k: $exact s, $(median_iteration <"$TMP/1m/tool.out") s"
done

echo
echo "== time per iteration (median of 3) with interactions, 64 factors, 100k users, 20k items"
for n in 250000 500000 1000000 2000000; do
    data "$TMP/n$n" "$n"
    tool "$TMP/n$n" 64 --iterations 3
    echo "  $n interactions: $(median_iteration <"$TMP/n$n/tool.out") s"
done
echo
echo "load at the end: $(cut -d' ' -f1-3 /proc/loadavg)"
