/**
 * The three-node example (examples/cluster: compose.yaml and haproxy.cfg, docs/cluster.md) cannot be run here, so
 * this reads it: every node's environment is a configuration Culex accepts, and the load balancer sends MQTT and
 * WebSocket connections to the ports those nodes listen on and checks /readyz on their admin port.
 */
import { existsSync } from 'node:fs'
import { readFile } from 'node:fs/promises'
import path from 'node:path'
import { describe, expect, it } from 'vitest'
import { parse } from 'yaml'
import { healthRoutes } from '../../src/admin/server.js'
import { loadConfig } from '../../src/config/load.js'
import { repoRoot } from '../helpers/cli.js'

const dir = path.join(repoRoot, 'examples', 'cluster')

interface Service {
  build?: { context: string }
  image?: string
  command?: string[]
  environment?: Record<string, string>
  volumes?: string[]
  ports?: string[]
}

async function compose (): Promise<Record<string, Service>> {
  const doc = parse(await readFile(path.join(dir, 'compose.yaml'), 'utf8'), { merge: true }) as { services: Record<string, Service> }
  return doc.services
}

/** ${NAME:?message} and ${NAME:-default} as compose reads them, with `env`. */
function interpolate (value: string, env: Record<string, string>): string {
  return value.replace(/\$\{(\w+)(?::[?-]([^}]*))?\}/g, (_m, name: string, fallback: string | undefined) => env[name] ?? fallback ?? '')
}

interface Backend { servers: Array<{ host: string, port: number }>, checkPort?: number, checkUri?: string }

/** The frontends (bind port → backend) and backends of an HAProxy configuration. */
function haproxy (text: string): { frontends: Map<number, string>, backends: Map<string, Backend> } {
  const frontends = new Map<number, string>()
  const backends = new Map<string, Backend>()
  let section: { kind: string, name: string, bind?: number } | undefined
  for (const raw of text.split('\n')) {
    const line = raw.replace(/#.*/, '').trim()
    if (line === '') continue
    const words = line.split(/\s+/)
    if (!raw.startsWith(' ')) {
      section = { kind: words[0], name: words[1] ?? '' }
      if (section.kind === 'backend') backends.set(section.name, { servers: [] })
      continue
    }
    const backend = section?.kind === 'backend' ? backends.get(section.name) : undefined
    if (section?.kind === 'frontend' && words[0] === 'bind') section.bind = Number(words[1].split(':').at(-1))
    if (section?.kind === 'frontend' && words[0] === 'default_backend') frontends.set(section.bind ?? -1, words[1])
    if (backend === undefined) continue
    if (words[0] === 'server') {
      const [host, port] = words[2].split(':')
      backend.servers.push({ host, port: Number(port) })
    }
    if (words[0] === 'default-server' || words[0] === 'server') {
      const at = words.indexOf('port')
      if (words.includes('check') && at > 0) backend.checkPort = Number(words[at + 1])
    }
    if (words[0] === 'http-check' && words[1] === 'send') backend.checkUri = words[words.indexOf('uri') + 1]
  }
  return { frontends, backends }
}

describe('the three-node example (examples/cluster)', () => {
  it('runs three nodes of this repository on one Redis with AOF, each a valid configuration of its own', async () => {
    const services = await compose()
    const nodes = Object.entries(services).filter(([, s]) => s.build !== undefined)
    expect(nodes.map(([name]) => name)).toEqual(['culex-1', 'culex-2', 'culex-3'])
    const redis = services.redis
    expect(redis.command).toEqual(expect.arrayContaining(['--appendonly', 'yes']))
    const ids = new Set<string>()
    for (const [name, node] of nodes) {
      expect(existsSync(path.join(dir, node.build?.context ?? '', 'Dockerfile'))).toBe(true)
      const env = Object.fromEntries(Object.entries(node.environment ?? {}).map(([k, v]) => [k, interpolate(String(v), { CULEX_ADMIN_AUTH_TOKEN: 't' })]))
      const { config, unknownEnv } = await loadConfig({ env })
      expect(unknownEnv, name).toEqual([])
      ids.add(config.cluster.nodeId)
      const url = new URL(config.cluster.redisUrl)
      expect(services[url.hostname], `${name}: Redis at ${url.hostname}`).toBe(redis)
      expect(url.port === '' ? 6379 : Number(url.port)).toBe(Number(redis.command?.[redis.command.indexOf('--port') + 1] ?? 6379) || 6379)
      // the load balancer reaches the admin port; the password file is the one mounted into every node
      expect(config.admin.host).toBe('0.0.0.0')
      expect(config.admin.authToken).toBe('t')
      expect(node.volumes?.map(v => v.split(':')[1])).toContain(config.auth.passwordFile)
    }
    expect(ids.size).toBe(3)
  })

  it('balances MQTT and WebSocket over the nodes\' listeners, checking /readyz on their admin port', async () => {
    const services = await compose()
    const { config } = await loadConfig({ env: { ...services['culex-1'].environment, CULEX_ADMIN_AUTH_TOKEN: 't' } })
    const dockerfile = await readFile(path.join(repoRoot, 'Dockerfile'), 'utf8')
    // the image binds its listeners to every interface
    expect(dockerfile).toContain('CULEX_LISTENERS_MQTT_HOST=0.0.0.0')
    expect(dockerfile).toContain('CULEX_LISTENERS_WS_HOST=0.0.0.0')
    const { frontends, backends } = haproxy(await readFile(path.join(dir, 'haproxy.cfg'), 'utf8'))
    const listenerPorts = [config.listeners.mqtt.port, config.listeners.ws.port]
    expect([...frontends.keys()].sort()).toEqual([...listenerPorts].sort())
    const published = (services.haproxy.ports ?? []).map(p => Number(p.split(':').at(-1)))
    expect(published.sort()).toEqual([...listenerPorts].sort())
    const nodes = Object.keys(services).filter(name => services[name].build !== undefined)
    const readyz = healthRoutes({ ready: () => true }).map(r => r.path)
    for (const [port, name] of frontends) {
      const backend = backends.get(name) as Backend
      expect(backend, name).toBeDefined()
      expect(backend.servers.map(s => s.host)).toEqual(nodes)
      expect(new Set(backend.servers.map(s => s.port))).toEqual(new Set([port]))
      expect(backend.checkPort).toBe(config.admin.port)
      expect(backend.checkUri).toBe('/readyz')
      expect(readyz).toContain(backend.checkUri)
    }
  })
})
