#!/usr/bin/env bash
# Checks the deployment units offline, with no systemd host or cluster to run them on:
#  - deploy/systemd/*.service: `systemd-analyze verify` (any complaint fails: verify itself
#    exits 0 on unknown keys and bad values, which it only "ignores") and an exposure
#    score from `systemd-analyze security --offline` no worse than MAX_EXPOSURE;
#  - deploy/k8s: `kubectl kustomize` renders it, and `kubernetes-validate --strict` checks
#    every manifest and the rendered whole against the Kubernetes API's JSON schemas (that
#    PyPI package vendors them: no API server needed, unknown fields refused);
#  - every role of `headend up --role` has its unit, its env example and a workload;
#  - deploy/prometheus: `promtool check rules` on the alert rules, their unit tests
#    (`promtool test rules`: each alert fires after its `for:`, and only then), and
#    `promtool check config` on the scrape example; deploy/grafana: each dashboard is JSON
#    (tests/deploy/test_monitoring.py checks what their expressions read).
# Usage: scripts/check-deploy.sh [DEPLOY_DIR]   (default: deploy/ of this checkout)
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
deploy=${1:-$root/deploy}
bin=${VENV_BIN:-$root/.venv/bin}
kube_version=${KUBE_VERSION:-1.32}
max_exposure=20 # systemd-analyze security's scale in tenths: 2.0, "OK"
prefix=/opt/headend/.venv/bin/
failed=0
fail() {
  echo "check-deploy: $*" >&2
  failed=1
}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

for tool in systemd-analyze kubectl promtool "$bin/kubernetes-validate" "$bin/python"; do
  command -v "$tool" >/dev/null || {
    echo "check-deploy: $tool is missing (make system; pip install -e '.[dev]')" >&2
    exit 2
  }
done

# systemd: `verify` refuses an ExecStart= binary missing on this machine, and the units run
# headend from the install prefix of a host, not from this checkout. So each unit is
# verified as a copy (same name) whose ExecStart= prefix points at a stub executable made
# here only for the check; every other line is verified as written.
mkdir -p "$work/units" "$work/bin"
printf '#!/bin/sh\nexit 0\n' >"$work/bin/headend"
chmod +x "$work/bin/headend"
units=("$deploy"/systemd/*.service)
[ -e "${units[0]}" ] || fail "no units in $deploy/systemd"
for unit in "${units[@]}"; do
  [ -e "$unit" ] || continue
  name=$(basename "$unit")
  grep -q "^ExecStart=$prefix" "$unit" || fail "$name: ExecStart= must run $prefix..."
  sed "s#^ExecStart=$prefix#ExecStart=$work/bin/#" "$unit" >"$work/units/$name"
  out=$(cd "$work/units" && systemd-analyze verify "$work/units/$name" 2>&1) || true
  if [ -n "$out" ]; then
    fail "$name: systemd-analyze verify:"
    sed "s#$work/units/##" <<<"$out" >&2
  fi
  if ! score=$(systemd-analyze security --offline=yes --threshold="$max_exposure" \
    "$work/units/$name" 2>&1); then
    fail "$name: exposure above $max_exposure (tenths): $(grep 'Overall' <<<"$score" || true)"
  fi
done

# Kubernetes: each manifest on its own (kustomization.yaml is kustomize's, not the API's),
# then what kustomize renders from them.
manifests=()
for file in "$deploy"/k8s/*.yaml; do
  [ "$(basename "$file")" = kustomization.yaml ] || manifests+=("$file")
done
[ ${#manifests[@]} -gt 0 ] || fail "no manifests in $deploy/k8s"
if [ ${#manifests[@]} -gt 0 ]; then
  "$bin/kubernetes-validate" --strict --quiet -k "$kube_version" "${manifests[@]}" ||
    fail "k8s manifests do not validate against Kubernetes $kube_version"
fi
if kubectl kustomize "$deploy/k8s" >"$work/rendered.yaml" 2>"$work/kustomize.err"; then
  "$bin/kubernetes-validate" --strict --quiet -k "$kube_version" "$work/rendered.yaml" ||
    fail "the rendered kustomization does not validate against Kubernetes $kube_version"
  for file in "${manifests[@]}"; do
    grep -qx "  - $(basename "$file")" "$deploy/k8s/kustomization.yaml" ||
      fail "$(basename "$file") is not in kustomization.yaml's resources"
  done
else
  fail "kubectl kustomize $deploy/k8s: $(cat "$work/kustomize.err")"
fi

# Every role has a unit, an env example and a workload running it.
for role in $("$bin/python" -c 'from headend.local import ROLE_NAMES; print(*ROLE_NAMES)'); do
  [ -e "$deploy/systemd/headend-$role.service" ] || fail "no unit headend-$role.service"
  [ -e "$deploy/systemd/env/$role.env.example" ] || fail "no env/$role.env.example"
  grep -qF "\"--role\", \"$role\"" "$deploy"/k8s/*.yaml || fail "no k8s workload for $role"
done

# Prometheus: promtool reads test files' rule_files relative to each test file.
rules=("$deploy"/prometheus/*.rules.yml)
rule_tests=("$deploy"/prometheus/tests/*.yml)
if [ ! -e "${rules[0]}" ] || [ ! -e "${rule_tests[0]}" ]; then
  fail "no alert rules (*.rules.yml) or no rule unit tests (tests/*.yml) in $deploy/prometheus"
else
  promtool check rules "${rules[@]}" >"$work/promtool.out" 2>&1 ||
    fail "promtool check rules: $(cat "$work/promtool.out")"
  promtool test rules "${rule_tests[@]}" >"$work/promtool.out" 2>&1 ||
    fail "promtool test rules: $(cat "$work/promtool.out")"
fi
promtool check config --syntax-only "$deploy/prometheus/prometheus.yml" >"$work/promtool.out" 2>&1 ||
  fail "promtool check config: $(cat "$work/promtool.out")"
dashboards=("$deploy"/grafana/*.json)
[ -e "${dashboards[0]}" ] || fail "no dashboards in $deploy/grafana"
for dashboard in "${dashboards[@]}"; do
  [ -e "$dashboard" ] || continue
  "$bin/python" -m json.tool "$dashboard" >/dev/null 2>"$work/json.err" ||
    fail "$(basename "$dashboard"): $(cat "$work/json.err")"
done

[ "$failed" -eq 0 ] && echo "check-deploy: ${#units[@]} units and ${#manifests[@]} manifests are valid;" \
  "${#rules[@]} rule file(s) pass ${#rule_tests[@]} unit test file(s), ${#dashboards[@]} dashboards parse"
exit "$failed"
