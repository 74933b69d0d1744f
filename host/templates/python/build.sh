#!/bin/sh
# Builds {{name}}.wasm from app.py with componentize-py against the platform WIT in wit/
# (written by `nukisashi module new`; `nukisashi wit --out wit` writes it again).
# componentize-py: `pip install componentize-py==0.25.1` (the version the platform tests).
set -e
cd "$(dirname "$0")"
componentize-py -d wit -w nukisashi:platform/module componentize app -o {{name}}.wasm
echo "built {{name}}.wasm; check it with: nukisashi module check"
