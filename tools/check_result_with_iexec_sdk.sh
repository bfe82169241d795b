#!/usr/bin/env bash
# Checks that Veil's encrypted results open with iExec's own SDK (`iexec result decrypt`, 9.0.1).
# Needs node/npm (installs the SDK into a temporary folder) and a built `veil` (cargo build -p veil).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
veil="${VEIL:-$root/target/debug/veil}"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
(cd "$work" && npm install --silent --no-audit --no-fund iexec@9.0.1 >/dev/null 2>&1)
"$veil" result generate-keypair --bits 4096 --out "$work/keys" >/dev/null
mkdir -p "$work/result" && echo "hello from veil" > "$work/result/result.txt"
(cd "$work/result" && python3 -c 'import zipfile; z=zipfile.ZipFile("../iexec_out.zip","w"); z.write("result.txt"); z.close()')
cargo run -q --manifest-path "$root/Cargo.toml" -p veil-protect --example encrypt_result -- \
  "$work/iexec_out.zip" "$work/keys/result-key.pub.pem" "$work/encrypted-iexec_out.zip"
cp "$work/keys/result-key.pem" "$work/keys/beneficiary_key"
(cd "$work" && npx --no-install iexec result decrypt "$work/encrypted-iexec_out.zip" --force \
  --beneficiary-keystoredir "$work/keys" --beneficiary-key-file beneficiary_key --raw) > "$work/sdk.json"
cat "$work/sdk.json"
out="$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["resultsPath"])' "$work/sdk.json")"
cmp "$work/iexec_out.zip" "$out" && echo "OK: iexec result decrypt opened Veil's encrypted result byte for byte"
