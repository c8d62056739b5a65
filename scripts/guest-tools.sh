#!/usr/bin/env bash
# Installs the tools that build Python and JavaScript migrations, pinned, from PyPI and npm, into
# target/guest-tools/ (nothing global; run again, it only checks). The tests build the Python and
# JavaScript guests with them; ./scripts/run-examples.sh uses them when they are there.
#   target/guest-tools/python/bin/componentize-py     componentize-py (PyPI)
#   target/guest-tools/js/node_modules/.bin/componentize-js   @bytecodealliance/componentize-js (npm)
set -euo pipefail
cd "$(dirname "$0")/.."

COMPONENTIZE_PY=0.25.1
COMPONENTIZE_JS=0.23.0
tools=target/guest-tools
mkdir -p "$tools"

py="$tools/python/bin/componentize-py"
if [[ "$("$py" --version 2>/dev/null)" != "componentize-py $COMPONENTIZE_PY" ]]; then
    echo "installing componentize-py $COMPONENTIZE_PY into $tools/python" >&2
    rm -rf "$tools/python"
    python3 -m venv "$tools/python"
    "$tools/python/bin/pip" install --quiet --disable-pip-version-check "componentize-py==$COMPONENTIZE_PY"
fi

js="$tools/js/node_modules/.bin/componentize-js"
if [[ "$("$js" --version 2>/dev/null)" != "$COMPONENTIZE_JS" ]]; then
    echo "installing @bytecodealliance/componentize-js $COMPONENTIZE_JS into $tools/js" >&2
    rm -rf "$tools/js"
    mkdir -p "$tools/js"
    echo '{"private": true}' > "$tools/js/package.json"
    npm install --prefix "$tools/js" --no-audit --no-fund --silent \
        "@bytecodealliance/componentize-js@$COMPONENTIZE_JS"
fi
echo "guest tools: $("$py" --version), componentize-js $("$js" --version)" >&2
