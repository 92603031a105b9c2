#!/usr/bin/env bash
# Installs the system binaries the platform drives (FFmpeg, redis-server, nginx
# with the njs module for signed-URL checks at the edge, wrk for load tests,
# setpriv, the XMLTV DTD and tv_validate_file; systemd-analyze, kubectl and promtool
# for checking deploy/) when any is missing; with --browser, Debian's chromium too (make
# test-browser's player runs in it: a large package the other targets do not need).
# Quick no-op when all are present.
set -euo pipefail

need=()
command -v ffmpeg >/dev/null || need+=(ffmpeg)
command -v ffprobe >/dev/null || need+=(ffmpeg)
command -v redis-server >/dev/null || need+=(redis-server)
# The Sentinel tests and benchmarks run a real Sentinel set.
command -v redis-sentinel >/dev/null || need+=(redis-sentinel)
command -v nginx >/dev/null || need+=(nginx-light)
[ -e /usr/lib/nginx/modules/ngx_http_js_module.so ] || need+=(libnginx-mod-http-js)
command -v wrk >/dev/null || need+=(wrk)
# The XMLTV reference DTD and tv_validate_file: the tests check every guide export with them.
[ -e /usr/share/xmltv/xmltv.dtd ] || need+=(xmltv-util)
command -v tv_validate_file >/dev/null || need+=(xmltv-util)
# setpriv --pdeathsig: children (FFmpeg, nginx) die with the process that started them.
command -v setpriv >/dev/null || need+=(util-linux)
# make deploy-check: systemd-analyze verifies the units, kubectl renders the kustomization.
command -v systemd-analyze >/dev/null || need+=(systemd)
command -v kubectl >/dev/null || need+=(kubectl)
# ... and promtool checks the alert rules and runs their unit tests (Debian ships it in
# prometheus: a large package, its daemon kept from starting by policy-rc.d below).
command -v promtool >/dev/null || need+=(prometheus)
# make lint: buf (lint and breaking checks of the protos) comes from npm, pinned in package-lock.json.
command -v npm >/dev/null || need+=(npm)
# Debian's build plays H.264/AAC in MSE, which the browser tests' hls.js needs.
[ "${1:-}" = --browser ] && { command -v chromium >/dev/null || need+=(chromium); }
# A CJK font: the farm's cards (emergency alerts, the slate) draw Chinese text with it, and
# the console's Chinese labels render (its screenshots come from the browser tests).
fc-list :lang=zh 2>/dev/null | grep -q . || need+=(fonts-wqy-microhei)
[ ${#need[@]} -eq 0 ] && exit 0

if ! command -v apt-get >/dev/null; then
  echo "error: missing system packages: ${need[*]}; install FFmpeg, redis-server, nginx (with the njs module) and wrk with your package manager" >&2
  exit 1
fi
sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
echo "installing system packages: ${need[*]}"
$sudo apt-get update -qq
# policy-rc.d 101 keeps Debian from starting system-wide nginx/redis daemons:
# the platform runs its own instances on its own sockets and ports.
printf '#!/bin/sh\nexit 101\n' | $sudo tee /usr/sbin/policy-rc.d >/dev/null
$sudo chmod +x /usr/sbin/policy-rc.d
trap '$sudo rm -f /usr/sbin/policy-rc.d' EXIT
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
