/**
 * The example's HAProxy configuration (examples/cluster/haproxy.cfg) in front of two built nodes on one Redis: the
 * addresses are this machine's, everything else is the example's. A rolling restart, as docs/cluster.md describes
 * it: the node a persistent subscriber is on stops, the balancer takes it out, the client reconnects through the
 * same address to the other node and resumes its session there with every message, and the node comes back.
 */
import { readFile, writeFile } from 'node:fs/promises'
import net from 'node:net'
import path from 'node:path'
import { describe, expect, it } from 'vitest'
import { connectClient, endClient, waitFor } from '../helpers/clients.js'
import { repoRoot, spawnTracked, type RunningCli } from '../helpers/cli.js'
import { useClusterCli } from './support/cluster-cli.js'

interface NodePorts { mqtt: number, ws: number, admin: number }

async function freePort (): Promise<number> {
  return await new Promise((resolve, reject) => {
    const server = net.createServer().once('error', reject).listen(0, '127.0.0.1', () => {
      const address = server.address()
      server.close(() => { resolve(typeof address === 'object' && address !== null ? address.port : 0) })
    })
  })
}

/** The example configuration with this machine's addresses: the frontends on `ports`, culex-N on nodes[N-1]. */
function localConfig (example: string, ports: { mqtt: number, ws: number }, nodes: NodePorts[], socket: string): string {
  const lines: string[] = []
  let inResolvers = false
  for (const line of example.split('\n')) {
    if (line.startsWith('resolvers ')) inResolvers = true
    else if (!line.startsWith(' ')) inResolvers = false
    if (inResolvers) continue
    const server = /^(\s+)server culex-(\d) culex-\d:(1883|8083)$/.exec(line)
    if (server !== null) {
      const node = nodes[Number(server[2]) - 1]
      // one machine: each node has its own admin port, which the check uses instead of the example's 18083
      if (node !== undefined) lines.push(`${server[1]}server culex-${server[2]} 127.0.0.1:${server[3] === '1883' ? node.mqtt : node.ws} port ${node.admin}`)
      continue
    }
    lines.push(line
      .replace(' resolvers docker init-addr last,libc,none', '')
      .replace('bind :1883', `bind 127.0.0.1:${ports.mqtt}`)
      .replace('bind :8083', `bind 127.0.0.1:${ports.ws}`))
    if (line === 'global') lines.push(`    stats socket ${socket} level admin`)
  }
  return lines.join('\n')
}

/** backend/server → UP, DOWN, … as HAProxy's runtime API reports them. */
async function serverStates (socket: string): Promise<Record<string, string>> {
  const csv = await new Promise<string>((resolve, reject) => {
    let out = ''
    const conn = net.connect(socket, () => conn.end('show stat\n'))
    conn.on('data', (d: Buffer) => { out += d.toString() }).once('end', () => resolve(out)).once('error', reject)
  })
  const states: Record<string, string> = {}
  for (const row of csv.split('\n').slice(1)) {
    const f = row.split(',')
    if (f.length > 17 && f[1] !== 'FRONTEND' && f[1] !== 'BACKEND') states[`${f[0]}/${f[1]}`] = f[17].split(' ')[0]
  }
  return states
}

describe('the example load balancer in front of two nodes', () => {
  const cluster = useClusterCli()

  it('a rolling restart moves a persistent subscriber through the balancer to the other node, losing nothing', async () => {
    const start = async (id: string, ports?: NodePorts): Promise<RunningCli> =>
      await cluster.node(id, { args: ports === undefined ? [] : ['--mqtt-port', String(ports.mqtt), '--ws-port', String(ports.ws), '--admin-port', String(ports.admin)] })
    const nodes = { 'culex-1': await start('culex-1'), 'culex-2': await start('culex-2') }
    const ports = Object.values(nodes).map(n => n.ports)
    const front = { mqtt: await freePort(), ws: await freePort() }
    const dir = await cluster.dir()
    const socket = path.join(dir, 'haproxy.sock')
    const cfg = path.join(dir, 'haproxy.cfg')
    await writeFile(cfg, localConfig(await readFile(path.join(repoRoot, 'examples', 'cluster', 'haproxy.cfg'), 'utf8'), front, ports, socket))
    const haproxy = spawnTracked('haproxy', ['-db', '-f', cfg])
    const allUp = async (): Promise<boolean> => {
      if (haproxy.exit !== undefined) throw new Error(`haproxy exited (apt-get install haproxy): ${haproxy.stderr}`)
      try {
        const states = Object.values(await serverStates(socket))
        return states.length === 4 && states.every(s => s === 'UP')
      } catch {
        return false
      }
    }
    await waitFor(allUp, 'both nodes up behind the balancer (it needs haproxy: apt-get install haproxy)', 15_000)

    const url = `mqtt://127.0.0.1:${front.mqtt}`
    const sub = await connectClient(url, { clientId: 'roamer', clean: false, reconnectPeriod: 100 })
    const connacks: boolean[] = []
    sub.on('connect', connack => connacks.push(connack.sessionPresent))
    await sub.subscribeAsync('fleet/#', { qos: 1 })
    const pub = await connectClient(url, { clientId: 'fleet-pub', reconnectPeriod: 100 })
    for (let i = 1; i <= 5; i++) await pub.publishAsync('fleet/1', `m${i}`, { qos: 1 })
    await waitFor(() => sub.received.length >= 5, 'five messages before the restart')

    // the node the subscriber is on stops, as in a rolling restart
    const [onName, on] = await (async () => {
      for (const [name, node] of Object.entries(nodes)) {
        const res = await fetch(`http://127.0.0.1:${node.ports.admin}/api/clients/roamer`)
        if (res.ok && (await res.json() as { connected?: boolean }).connected !== false) return [name, node] as const
      }
      throw new Error('the subscriber is on no node')
    })()
    expect(await on.stop()).toBe(0)
    for (let i = 6; i <= 10; i++) await pub.publishAsync('fleet/1', `m${i}`, { qos: 1 })
    await waitFor(() => connacks.length >= 1 && sub.connected, 'the subscriber connected again through the balancer', 15_000)
    expect(connacks[0]).toBe(true)
    await waitFor(() => new Set(sub.received.map(m => m.payload)).size >= 10, 'all ten messages', 10_000)
    expect([...new Set(sub.received.map(m => m.payload))].sort()).toEqual(Array.from({ length: 10 }, (_, i) => `m${i + 1}`).sort())

    // the node comes back with the same id and ports; the balancer puts it back in
    const other = Object.entries(nodes).find(([name]) => name !== onName)?.[1] as RunningCli
    const res = await fetch(`http://127.0.0.1:${other.ports.admin}/api/clients/roamer`)
    expect(await res.json()).toMatchObject({ clientId: 'roamer', connected: true })
    await start(onName, on.ports)
    await waitFor(allUp, 'the restarted node up again behind the balancer', 15_000)
    await endClient(sub)
    await endClient(pub)
  }, 90_000)
})
