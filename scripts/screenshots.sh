#!/usr/bin/env bash
# Screenshots of the documentation site, as a reader's browser shows it:
# Debian's chromium, headless, on the built site served on localhost. Not
# part of CI (CI runs scripts/docs.sh, which checks the built HTML); this is
# for looking at the pages.
#
#   bash scripts/screenshots.sh [OUT_DIR] [PAGE ...]
#   bash scripts/screenshots.sh --overflow
#
# OUT_DIR defaults to /tmp/recdrop-screenshots. A PAGE is a path of the site
# as in its URL, with an optional #anchor to scroll to, e.g.
# `cells/zoneout-lstm/` or `api/layers/#keras_recdrop.RNN`; without PAGEs,
# every page from its top. WIDTH and HEIGHT (pixels, default 1280 x 2400)
# set the window; SITE_DIR a site already built (else it is built here).
# --overflow takes no pictures: it lists, page by page, the code blocks,
# tables, equations and pictures wider than the text column at WIDTH (a
# reader would scroll them sideways), and exits 1 if there are any.
# Needs `apt-get install chromium`.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
overflow=0
out=/tmp/recdrop-screenshots
if [ "${1:-}" = "--overflow" ]; then
  overflow=1
  shift
elif [ "$#" -gt 0 ]; then
  out="$1"
  shift
fi
width="${WIDTH:-1280}"
height="${HEIGHT:-2400}"
browser="$(command -v chromium || true)"
if [ -z "$browser" ]; then
  echo "chromium is not installed: apt-get install -y chromium" >&2
  exit 2
fi
site="${SITE_DIR:-}"
if [ -z "$site" ]; then
  site="$(mktemp -d)"
  SITE_DIR="$site" bash "$root/scripts/docs.sh" --no-check
fi

pages=("$@")
if [ "${#pages[@]}" -eq 0 ]; then
  while IFS= read -r page; do
    pages+=("$page")
  done < <(cd "$site" && find . -name index.html -not -path './assets/*' \
    | sed -e 's|^\./||' -e 's|index\.html$||' | sort)
fi

port="$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
python3 -m http.server "$port" --bind 127.0.0.1 --directory "$site" \
  > /dev/null 2>&1 &
server=$!
profile="$(mktemp -d)"
trap 'kill "$server" 2> /dev/null || true; rm -rf "$profile"' EXIT
for _ in $(seq 50); do
  python3 -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:$port/')" \
    2> /dev/null && break
  sleep 0.1
done

chrome=("$browser" --headless --no-sandbox --disable-gpu --disable-quic
  --no-first-run --disable-background-networking --disable-component-update
  --disable-sync --user-data-dir="$profile" --hide-scrollbars)

if [ "$overflow" = 1 ]; then
  list="$(printf '%s\n' "${pages[@]}" | python3 -c \
    'import json, sys; print(json.dumps(sys.stdin.read().split("\n")[:-1]))')"
  harness="_overflow_$$.html"
  sed -e "s|PAGES|$list|" -e "s|WIDTH|$width|" \
    "$root/scripts/docs/overflow.html" > "$site/$harness"
  report="$("${chrome[@]}" --window-size="$((width + 100)),1000" \
    --virtual-time-budget=60000 --dump-dom \
    "http://127.0.0.1:$port/$harness" 2> /dev/null \
    | sed -n '/OVERFLOW-REPORT/,/END-REPORT/p' \
    | python3 -c 'import html, sys; print(html.unescape(sys.stdin.read()))' \
    | grep -v -e OVERFLOW-REPORT -e END-REPORT || true)"
  rm -f "$site/$harness"
  if [ -n "$report" ]; then
    echo "wider than the text column at $width px:"
    echo "$report"
    exit 1
  fi
  echo "nothing wider than the text column at $width px"
  exit 0
fi

mkdir -p "$out"
for page in "${pages[@]}"; do
  name="$(printf '%s' "${page:-index}" | tr '/#.' '___' | sed 's/_*$//')"
  "${chrome[@]}" --window-size="$width,$height" --virtual-time-budget=3000 \
    --screenshot="$out/${name:-index}.png" \
    "http://127.0.0.1:$port/$page" > /dev/null 2>&1
  echo "$out/${name:-index}.png  <- /$page"
done
