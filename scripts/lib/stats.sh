# Shared by the benchmark scripts.
# median DECIMALS N...: the median of the numbers (the mean of the middle
# two when there is an even count), printed with DECIMALS decimals.
median() {
    local decimals=$1
    shift
    printf '%s\n' "$@" | sort -g | awk -v d="$decimals" '{ a[NR] = $1 } END { printf "%." d "f", NR % 2 ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2 }'
}
