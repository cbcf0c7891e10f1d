#!/usr/bin/env bash
# Checks the monitoring files in packaging/: the Prometheus alert rules (promtool check and
# unit tests), the Grafana dashboard (valid JSON, every query parses as PromQL), and that
# every io_gateway_* metric either of them uses is defined in gateway/src/metrics/names.rs.
#
# Needs: promtool (Debian: apt-get install prometheus), jq.
# Usage: packaging/check-monitoring.sh        (from anywhere; exits non-zero on any failure)
set -euo pipefail
cd "$(dirname "$0")/.."

RULES=packaging/prometheus/io-gateway.rules.yml
TESTS=packaging/prometheus/io-gateway.rules.test.yml
DASHBOARD=packaging/grafana/io-gateway.json
NAMES=gateway/src/metrics/names.rs

for tool in promtool jq; do
    command -v "$tool" >/dev/null || { echo "error: $tool not found (see packaging/README.md)" >&2; exit 1; }
done
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

echo "== promtool check rules $RULES"
promtool check rules "$RULES"

echo "== promtool test rules $TESTS"
promtool test rules "$TESTS"

echo "== dashboard $DASHBOARD: valid JSON"
jq -e '.schemaVersion and (.panels | length > 0)' "$DASHBOARD" >/dev/null
echo "  ok: schemaVersion $(jq .schemaVersion "$DASHBOARD"), $(jq '[.panels[] | select(.type != "row")] | length' "$DASHBOARD") panels"

echo "== dashboard queries parse as PromQL"
# Each target's expr as a recording rule, Grafana's variables replaced by plain values,
# so that promtool's parser checks them.
{
    echo "groups:"
    echo "  - name: dashboard"
    echo "    rules:"
    jq -r '.panels[] | select(.targets) | .targets[].expr' "$DASHBOARD" |
        sed -e 's/\$__rate_interval/5m/g' -e 's/\$__interval/1m/g' -e 's/\$[a-z_]*/.*/g' |
        jq -R -r --slurp 'split("\n") | map(select(length > 0)) | to_entries[] |
            "      - record: dashboard:query_\(.key)\n        expr: \(.value | @json)"'
} >"$work/dashboard-queries.yml"
promtool check rules "$work/dashboard-queries.yml" >"$work/promtool.out" 2>&1 ||
    { cat "$work/promtool.out" >&2; exit 1; }
if grep -q FAILED "$work/promtool.out"; then
    cat "$work/promtool.out" >&2
    exit 1
fi
echo "  ok: $(grep -c 'record:' "$work/dashboard-queries.yml") queries"

echo "== every io_gateway_* metric used is defined in $NAMES"
grep -o '"io_gateway_[a-z0-9_]*"' "$NAMES" | tr -d '"' | sort -u >"$work/defined"
if [ ! -s "$work/defined" ]; then
    echo "error: no metric names found in $NAMES" >&2
    exit 1
fi
grep -oh 'io_gateway_[a-z0-9_]*' "$RULES" "$TESTS" "$DASHBOARD" | sort -u >"$work/used"
missing=0
while read -r name; do
    if grep -qx "$name" "$work/defined"; then
        continue
    fi
    # Histograms are exported as NAME_bucket, NAME_sum and NAME_count.
    stem=$(sed -E 's/_(bucket|sum|count)$//' <<<"$name")
    if [ "$stem" != "$name" ] && grep -qx "$stem" "$work/defined"; then
        continue
    fi
    echo "  not defined in $NAMES: $name" >&2
    missing=1
done <"$work/used"
if [ "$missing" -ne 0 ]; then
    exit 1
fi
echo "  ok: $(wc -l <"$work/used") names used, all defined ($(wc -l <"$work/defined") defined)"
unused=$(comm -23 "$work/defined" <(sed -E 's/_(bucket|sum|count)$//' "$work/used" | sort -u))
if [ -n "$unused" ]; then
    echo "  note: defined but not on the dashboard or in the rules: $(echo $unused)"
fi

echo "monitoring checks passed"
