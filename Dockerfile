# rotor worker image: `docker build -t rotor .`, then `docker run rotor` runs `rotor worker`.
# Any other CLI command works too: `docker run rotor status <secretId>`.
# Configuration comes from the environment only (TEMPORAL_*, AWS_*, ROTOR_*): see README.md.

FROM node:22-slim AS build
WORKDIR /app
COPY package.json package-lock.json ./
COPY packages/consumers/package.json packages/consumers/package.json
COPY packages/rotor/package.json packages/rotor/package.json
RUN npm ci --no-audit --no-fund --loglevel=error
COPY tsconfig.json LICENSE ./
COPY docs ./docs
COPY scripts/pack-docs.mjs ./scripts/pack-docs.mjs
COPY packages ./packages
# Packs both packages as they are published (each builds on prepack), so the image runs what users install.
RUN npm pack --pack-destination /tmp/packed -w rotor-consumers -w rotor

FROM node:22-slim
# CA certificates for TLS to Temporal Cloud, AWS and databases with `"ssl": true`.
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /app
ENV NODE_ENV=production
COPY --from=build /tmp/packed /tmp/packed
RUN echo '{"name":"rotor-image","private":true}' > package.json \
 && npm install --omit=dev --no-audit --no-fund --loglevel=error /tmp/packed/*.tgz \
 && rm -rf /tmp/packed ~/.npm
USER node
# The worker loads the prebuilt workflow bundle and stops on SIGINT/SIGTERM.
ENTRYPOINT ["node", "node_modules/rotor/bin/rotor.js"]
CMD ["worker"]
