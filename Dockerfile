# rotor worker image: `docker build -t rotor .`, then `docker run rotor` runs `node bin/rotor.js worker`.
# Any other CLI command works too: `docker run rotor status <secretId>`.
# Configuration comes from the environment only (TEMPORAL_*, AWS_*, ROTOR_*): see README.md.

FROM node:22-slim AS build
WORKDIR /app
COPY package.json package-lock.json ./
# `npm install` rather than `npm ci`, as in scripts/node-deps.sh; the lock file still pins every version.
RUN npm install --no-audit --no-fund --loglevel=error
COPY tsconfig.json tsconfig.build.json ./
COPY src ./src
# Compiles src/ to dist/ (tsconfig.build.json) and bundles the workflows (dist/workflow-bundle.js), then drops the
# dev dependencies (tsc, vitest, eslint).
RUN npm run build && npm prune --omit=dev --no-audit --no-fund --loglevel=error

FROM node:22-slim
# CA certificates for TLS to Temporal Cloud, AWS and databases with `"ssl": true`.
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /app
ENV NODE_ENV=production
COPY --from=build /app/package.json ./package.json
COPY --from=build /app/node_modules ./node_modules
COPY --from=build /app/dist ./dist
COPY bin ./bin
USER node
# The worker loads the prebuilt workflow bundle and stops on SIGINT/SIGTERM.
ENTRYPOINT ["node", "bin/rotor.js"]
CMD ["worker"]
