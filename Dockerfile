# FiberLB container: Node 24 LTS, multi-stage (build with dev deps, run with prod deps only),
# non-root, HEALTHCHECK against the admin listener's /healthz.
FROM node:24-bookworm-slim AS build
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY tsconfig.json tsconfig.build.json ./
COPY src ./src
# postbuild copies the dashboard's static files into dist.
COPY scripts/copy-assets.mjs ./scripts/
RUN npm run build && npm prune --omit=dev

FROM node:24-bookworm-slim
ENV NODE_ENV=production \
    FIBERLB_ADMIN_PORT=9092
WORKDIR /app
COPY --from=build /app/node_modules ./node_modules
COPY --from=build /app/dist ./dist
COPY package.json ./
COPY config ./config
# The default config keeps its admin token in /app/.fiberlb; mount /etc/fiberlb for real configs.
RUN mkdir -p /app/.fiberlb /etc/fiberlb && chown node:node /app/.fiberlb
USER node
EXPOSE 8080 7000 5300/udp
HEALTHCHECK --interval=10s --timeout=3s --start-period=15s --retries=3 \
  CMD ["node", "-e", "fetch('http://127.0.0.1:'+process.env.FIBERLB_ADMIN_PORT+'/healthz').then(r=>process.exit(r.ok?0:1),()=>process.exit(1))"]
STOPSIGNAL SIGTERM
ENTRYPOINT ["node", "dist/cli.js"]
CMD ["run", "--config", "/app/config/fiberlb.yaml"]
