#!/usr/bin/env bash
# Copies Swagger UI, at the version explorer/package.json pins, into
# explorer/dist, which the binary embeds (the /docs page). Run it after
# changing the version; commit explorer/dist and explorer/package-lock.json.
set -euo pipefail
cd "$(dirname "$0")/../explorer"
npm ci --no-audit --no-fund
for f in swagger-ui-bundle.js swagger-ui.css LICENSE NOTICE swagger-ui-bundle.js.LICENSE.txt; do
  cp "node_modules/swagger-ui-dist/$f" dist/
done
echo "explorer/dist: swagger-ui-dist $(node -p 'require("./node_modules/swagger-ui-dist/package.json").version')"
