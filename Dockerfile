# Build stage: compiles TypeScript with the dev dependencies.
FROM node:20-bookworm-slim AS build
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY tsconfig.json tsconfig.build.json ./
COPY src ./src
RUN npm run build && npm prune --omit=dev

# Runtime stage: the same base image, so LevelDB's native binding matches.
FROM node:20-bookworm-slim
# Listeners default to 127.0.0.1, which a container cannot be reached on: bind every interface here. A reachable
# listener needs auth.passwordFile or an explicit allowAnonymous (README, Docker); without either the start fails
# with exit code 2 and says so.
ENV NODE_ENV=production \
    CULEX_DATA_DIR=/data \
    CULEX_LISTENERS_MQTT_HOST=0.0.0.0 \
    CULEX_LISTENERS_WS_HOST=0.0.0.0 \
    CULEX_LISTENERS_MQTTS_HOST=0.0.0.0 \
    CULEX_LISTENERS_WSS_HOST=0.0.0.0
WORKDIR /app
COPY --from=build /app/package.json ./
COPY --from=build /app/node_modules ./node_modules
COPY --from=build /app/dist ./dist
COPY config ./config
RUN mkdir -p /data && chown node:node /data
USER node
VOLUME ["/data"]
# mqtt, ws, mqtts, wss, admin (bind the admin port to 0.0.0.0 with CULEX_ADMIN_HOST to publish it)
EXPOSE 1883 8083 8883 8084 18083
HEALTHCHECK --interval=15s --timeout=3s --start-period=10s --retries=3 \
  CMD ["node", "-e", "fetch('http://127.0.0.1:18083/healthz').then(r => process.exit(r.ok ? 0 : 1), () => process.exit(1))"]
ENTRYPOINT ["node", "--max-semi-space-size=32", "dist/main.js"]
CMD ["start"]
