#!/bin/sh
# Builds {{name}}.wasm from app.js with componentize-js against the platform WIT in wit/,
# which `nukisashi module new` wrote for WASI 0.2.10 (the release componentize-js 0.23
# exports; `nukisashi wit --wasi 0.2.10 --out wit` writes it again).
# componentize-js: `npm install @bytecodealliance/componentize-js@0.23.0`.
set -e
cd "$(dirname "$0")"
if command -v componentize-js >/dev/null 2>&1; then componentize=componentize-js; else componentize="npx --no-install componentize-js"; fi
$componentize app.js --wit wit -n nukisashi:platform/module -o {{name}}.wasm
echo "built {{name}}.wasm; check it with: nukisashi module check"
