# syntax=docker/dockerfile:1
#
# Hearth in a container: the same steps as the README, `npm ci`, a build of src/ and of the
# client package it depends on (packages/client, an npm workspace) with tsc, and
# `dist/src/cli/index.js serve` (its first line names the Node flags it runs with), split so the image carries no compiler and no dev
# dependencies. This file was written and checked without a Docker engine at hand (every COPY
# source exists, the runtime steps were replayed by hand); if you change the README's steps,
# change them here too.
#
#   docker build -t hearth .
#   docker run -p 6286:6286 -v hearth-data:/data hearth
#   docker run --rm hearth --help            # the image runs any hearth subcommand

ARG NODE_IMAGE=node:24-slim

# 1. Build: all dependencies, then TypeScript → dist/.
FROM ${NODE_IMAGE} AS build
WORKDIR /app
COPY package.json package-lock.json tsconfig.json tsconfig.build.json ./
COPY packages/client/package.json packages/client/tsconfig.json ./packages/client/
RUN npm ci
COPY packages/client/src ./packages/client/src
COPY src ./src
COPY scripts/finish-build.mjs ./scripts/
RUN npx tsc -b tsconfig.build.json && npm run build:finish

# 2. Production dependencies only (LevelDB's native module comes prebuilt for this image's libc).
FROM ${NODE_IMAGE} AS deps
WORKDIR /app
COPY package.json package-lock.json ./
COPY packages/client/package.json ./packages/client/
RUN npm ci --omit=dev && npm cache clean --force

# 3. Runtime.
FROM ${NODE_IMAGE}
ENV NODE_ENV=production HOST=0.0.0.0 PORT=6286 DATA_DIR=/data
WORKDIR /app
# package.json is read at run time (the version in /info) and names the `hearth` bin.
COPY package.json ./
COPY --from=deps /app/node_modules ./node_modules
# node_modules/hearth-homeserver-client links to the workspace: the client's manifest and build
COPY packages/client/package.json ./packages/client/
COPY --from=build /app/packages/client/dist ./packages/client/dist
COPY --from=build /app/dist/src ./dist/src
# The volume's mount point must belong to the user the server runs as.
RUN mkdir -p /data && chown node:node /data
USER node
VOLUME /data
EXPOSE 6286
# slim images have no curl: node's own fetch asks /readyz (the storage answers, the writer is
# not stuck). Metrics are off unless METRICS_PORT is set (docker-compose.yml sets 9464).
HEALTHCHECK --interval=30s --timeout=5s --start-period=10s --retries=3 \
  CMD ["node", "-e", "fetch('http://127.0.0.1:' + (process.env.PORT || 6286) + '/readyz').then((r) => process.exit(r.ok ? 0 : 1), () => process.exit(1))"]
# The server ends its streams, flushes LevelDB and exits 0 on SIGTERM, within 5 s.
STOPSIGNAL SIGTERM
# The CLI runs through its own #! line, which holds the Node flags Hearth runs with.
ENTRYPOINT ["dist/src/cli/index.js"]
CMD ["serve"]
