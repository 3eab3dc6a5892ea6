import net from 'node:net'
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
import { connectClient, endClient, waitFor } from '../helpers/clients.js'
import { ensureBuilt, killAllChildren, removeDir, startArgs, startCli, tempDataDir } from '../helpers/cli.js'

const OPEN_FILES = 128
const SOCKETS = 200

/** A plain TCP connection that says nothing; `closed` turns true when the broker closes it. */
async function openSocket (port: number): Promise<{ socket: net.Socket, closed: () => boolean }> {
  let closed = false
  const socket = net.connect(port, '127.0.0.1')
  socket.on('error', () => { closed = true })
  socket.on('close', () => { closed = true })
  await new Promise<void>(resolve => { socket.once('connect', resolve); socket.once('close', () => resolve()) })
  return { socket, closed: () => closed }
}

function acceptErrors (metrics: string): number {
  const line = metrics.split('\n').find(l => l.startsWith('culex_listener_accept_errors_total{listener="mqtt",code="EMFILE"}'))
  return line === undefined ? 0 : Number(line.split(' ').pop())
}

/**
 * The built culex command under `ulimit -n 128`, sent more connections than it has descriptors for: it says so
 * (log line and metric), refuses the surplus, keeps serving its clients and their persistent session, and takes
 * new connections again once descriptors are free.
 */
describe('out of file descriptors (ulimit -n)', () => {
  const dirs: string[] = []
  beforeAll(async () => { await ensureBuilt() }, 180_000)
  afterEach(async () => { await killAllChildren() })
  afterAll(async () => { for (const d of dirs) await removeDir(d) })

  it(`refuses what it has no descriptor for, keeps serving, and recovers (${SOCKETS} connections, ulimit -n ${OPEN_FILES})`, async () => {
    const dir = await tempDataDir()
    dirs.push(dir)
    const cli = await startCli(startArgs(dir), {}, { openFiles: OPEN_FILES })
    const url = `mqtt://127.0.0.1:${cli.ports.mqtt}`
    const sub = await connectClient(url, { clientId: 'fd-sub', clean: false, reconnectPeriod: 0 })
    await sub.subscribeAsync('fd/#', { qos: 1 })
    const pub = await connectClient(url, { clientId: 'fd-pub', reconnectPeriod: 0 })

    const held: Array<Awaited<ReturnType<typeof openSocket>>> = []
    for (let i = 0; i < SOCKETS; i++) held.push(await openSocket(cli.ports.mqtt))
    await cli.waitForLog(l => typeof l.msg === 'string' && l.msg.startsWith('out of file descriptors'), 'the out-of-descriptors log line')
    // the refusals reach the client sockets one by one: at least SOCKETS - OPEN_FILES of them are to close
    await waitFor(() => held.filter(h => h.closed()).length > SOCKETS - OPEN_FILES, 'the surplus connections closed by the broker')
    const refused = held.filter(h => h.closed()).length
    expect(refused).toBeLessThan(SOCKETS)
    const line = cli.logs.find(l => typeof l.msg === 'string' && l.msg.startsWith('out of file descriptors'))
    expect(line).toMatchObject({ listener: 'mqtt', code: 'EMFILE', openFilesLimit: OPEN_FILES })

    // The clients it already had are served, the persistent session's store writes included.
    await pub.publishAsync('fd/during', 'during', { qos: 1 })
    await waitFor(() => sub.received.some(m => m.topic === 'fd/during'), 'the message published while out of descriptors')
    const metrics = await (await fetch(`http://127.0.0.1:${cli.ports.admin}/metrics`)).text()
    expect(acceptErrors(metrics)).toBeGreaterThanOrEqual(SOCKETS - OPEN_FILES)

    // Descriptors freed: new clients get in again.
    for (const h of held) h.socket.destroy()
    const late = await connectClient(url, { clientId: 'fd-late', reconnectPeriod: 0 })
    await late.subscribeAsync('fd/#', { qos: 1 })
    await pub.publishAsync('fd/after', 'after', { qos: 1 })
    await waitFor(() => late.received.some(m => m.topic === 'fd/after') && sub.received.some(m => m.topic === 'fd/after'), 'the message published after recovery')
    for (const c of [sub, pub, late]) await endClient(c)
    expect(cli.proc.exit).toBeUndefined()
    expect(await cli.stop('SIGTERM')).toBe(0)
  }, 60_000)
})
