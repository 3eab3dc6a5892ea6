import { readFile } from 'node:fs/promises'
import { createRequire } from 'node:module'
import { fileURLToPath } from 'node:url'
import { sendText } from './http.js'
import type { AdminRoute } from './router.js'

/**
 * The web console: static files from ./console next to this module (src/admin/console when run from source,
 * dist/admin/console after `npm run build` copies them) and the mqtt.js browser build from node_modules. Public:
 * the page itself holds no data, it asks for the admin token when the API answers 401.
 */
const consoleDir = fileURLToPath(new URL('./console/', import.meta.url))
const mqttBrowserBuild = createRequire(import.meta.url).resolve('mqtt/dist/mqtt.min')

const files: Record<string, { file: string, type: string }> = {
  '/': { file: `${consoleDir}index.html`, type: 'text/html; charset=utf-8' },
  '/console/util.js': { file: `${consoleDir}util.js`, type: 'text/javascript; charset=utf-8' },
  '/console/explorer.js': { file: `${consoleDir}explorer.js`, type: 'text/javascript; charset=utf-8' },
  '/console/app.js': { file: `${consoleDir}app.js`, type: 'text/javascript; charset=utf-8' },
  '/console/app.css': { file: `${consoleDir}app.css`, type: 'text/css; charset=utf-8' },
  '/console/mqtt.min.js': { file: mqttBrowserBuild, type: 'text/javascript; charset=utf-8' }
}

// Scripts only from this server (no inline code, no CDN); the topic explorer opens MQTT-over-WebSocket connections,
// and the mqtt.js browser build runs its keepalive timers in a worker it creates from a blob URL.
const csp = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self' ws: wss:; worker-src 'self' blob:; frame-ancestors 'none'"

export function consoleRoutes (): AdminRoute[] {
  const cache = new Map<string, Buffer>()
  return Object.entries(files).map(([path, { file, type }]) => ({
    method: 'GET' as const,
    path,
    public: true,
    handler: async ({ res }) => {
      let body = cache.get(file)
      if (body === undefined) {
        body = await readFile(file)
        cache.set(file, body)
      }
      sendText(res, 200, type, body, { 'content-security-policy': csp, 'x-frame-options': 'DENY' })
    }
  }))
}
