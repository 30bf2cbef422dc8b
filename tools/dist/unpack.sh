#!/usr/bin/env bash
# ON THE GPU MACHINE: unpacks target/rollout-dist.tar.xz into /tmp/rollout-dist, again only when
# the archive changed (the machine keeps files between runs only while it stays warm), and the
# war's WEB-INF into /tmp/rollout-dist/war for programs that run without Liberty (bench/). A run
# that does not carry the archive uses what an earlier run on the same warm machine unpacked.
set -euo pipefail
dist=/tmp/rollout-dist
if [ ! -f target/rollout-dist.tar.xz ] && [ -f "$dist/.archive" ]; then
  exit 0  # not carried this time: the machine still has the one unpacked by an earlier run
fi
sum="$(sha256sum target/rollout-dist.tar.xz | cut -c1-16)"
if [ "$(cat "$dist/.archive" 2>/dev/null)" != "$sum" ]; then
  rm -rf "$dist" && mkdir -p "$dist/war" && tar -C "$dist" -xJf target/rollout-dist.tar.xz
  (cd "$dist/war" && python3 -m zipfile -e "$dist/rollout/wlp/usr/servers/rollout/apps/rollout-server.war" .)
  echo "$sum" > "$dist/.archive"
fi
