import net from 'node:net'
import v8 from 'node:v8'
import vm from 'node:vm'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import WebSocket from 'ws'
import { startTestBroker, type TestBroker } from '../helpers/broker.js'
import { connectClient, endClient, sleep, waitFor } from '../helpers/clients.js'
import { connectBytes, hostileBytes, Rng } from './mutator.js'

/**
 * Hostile input against a running broker for a bounded time (FUZZ_SECONDS, 12 in CI; `npm run fuzz` runs longer):
 * generated and mutated packets, truncated frames, wrong and huge Remaining Lengths, invalid UTF-8 topics, and
 * slow-loris connections that never finish CONNECT, from many connections at once. Meanwhile a well-behaved
 * client keeps publishing and receiving, and afterwards a persistent session still holds every stored message.
 * FUZZ_SEED replays a run.
 */
const seconds = Number(process.env.FUZZ_SECONDS ?? 12)
const seed = Number(process.env.FUZZ_SEED ?? Date.now() % 1_000_000_000)
const WORKERS = 12
// The fuzzer runs in this process too. What is left on the heap after a full garbage collection must not grow with
// the run (a leak); the resident peak, which also follows V8's lazy collection, must stay under a generous bound
// (buffering that grows with what attackers send).
const HEAP_GROWTH_LIMIT_MB = 40
const RSS_GROWTH_LIMIT_MB = 300
v8.setFlagsFromString('--expose-gc')
const gc = vm.runInNewContext('gc') as () => void
function heapAfterGc (): number {
  gc()
  return process.memoryUsage().heapUsed
}

describe(`fuzz (${seconds} s, FUZZ_SEED=${seed})`, () => {
  let t: TestBroker
  beforeAll(async () => {
    // Retained messages and persistent sessions the fuzzer creates are data the broker must keep; they are bounded
    // (retained.maxMessages, a fixed pool of client ids) so that memory growth measures leaks, not storage.
    t = await startTestBroker({ 'log.level': 'error', 'mqtt.connectTimeoutMs': 2000, 'limits.maxPayloadBytes': 65_536, 'auth.failedLoginDelayMs': 0, 'retained.maxMessages': 1000 })
  })
  afterAll(async () => { await t?.close() })

  it('never crashes, keeps its memory bounded, keeps serving a good client and loses no stored message', async () => {
    // A persistent session with messages stored for it before the fuzzing starts.
    const keeper = await connectClient(t.mqttUrl, { clientId: 'keeper', clean: false })
    await keeper.subscribeAsync('keep/#', { qos: 1 })
    await endClient(keeper)
    const steady = await connectClient(t.mqttUrl, { clientId: 'steady', keepalive: 5 })
    await steady.subscribeAsync('steady/#', { qos: 1 })
    const expectedKept = new Set<string>()
    for (let i = 0; i < 50; i++) {
      await steady.publishAsync(`keep/pre/${i}`, `pre-${i}`, { qos: 1 })
      expectedKept.add(`pre-${i}`)
    }

    await sleep(300)
    const heapBefore = heapAfterGc()
    const baseline = process.memoryUsage().rss
    let peak = baseline
    const sampler = setInterval(() => { peak = Math.max(peak, process.memoryUsage().rss) }, 200)
    const deadline = Date.now() + seconds * 1000
    const stats = { connections: 0, bytes: 0, closedByBroker: 0 }

    // The well-behaved client: a QoS 1 message to itself and one for the persistent session every 100 ms.
    const sentAt = new Map<string, number>()
    const latencies: number[] = []
    steady.on('message', (_topic, payload) => {
      const at = sentAt.get(payload.toString())
      if (at !== undefined) latencies.push(Date.now() - at)
    })
    const good = (async () => {
      for (let n = 0; Date.now() < deadline; n++) {
        sentAt.set(`s-${n}`, Date.now())
        await steady.publishAsync('steady/x', `s-${n}`, { qos: 1 })
        await steady.publishAsync(`keep/live/${n}`, `live-${n}`, { qos: 1 })
        expectedKept.add(`live-${n}`)
        await sleep(100)
      }
    })()

    const workers = Array.from({ length: WORKERS }, async (_, w) => {
      const r = new Rng(seed + w + 1)
      while (Date.now() < deadline) {
        stats.connections++
        const closed = await attack(t, r, `fz-${w}-${stats.connections % 20}`, deadline, stats)
        if (closed) stats.closedByBroker++
      }
    })
    await Promise.all([good, ...workers])
    clearInterval(sampler)
    await sleep(2500) // the last slow-loris connections time out (mqtt.connectTimeoutMs)
    const heapGrowthMb = (heapAfterGc() - heapBefore) / 1024 / 1024

    // The good client was served throughout: every message came back, none late.
    await waitFor(() => latencies.length === sentAt.size, `all ${sentAt.size} of the good client's messages (seed ${seed})`, 10_000)
    expect(steady.connected).toBe(true)
    expect(Math.max(...latencies)).toBeLessThan(3000)
    expect(sentAt.size).toBeGreaterThan(seconds * 3)
    await endClient(steady)

    // The broker is alive and still takes new clients.
    const probe = await connectClient(t.mqttUrl, { clientId: 'probe' })
    await endClient(probe)

    // Every message stored for the persistent session is still there.
    const back = await connectClient(t.mqttUrl, { clientId: 'keeper', clean: false })
    expect(back.sessionPresent).toBe(true)
    await waitFor(() => new Set(back.received.map(m => m.payload)).size >= expectedKept.size, `${expectedKept.size} stored messages (seed ${seed})`, 15_000)
    const got = new Set(back.received.map(m => m.payload))
    expect([...expectedKept].filter(p => !got.has(p))).toEqual([])
    await endClient(back)

    const growthMb = (peak - baseline) / 1024 / 1024
    console.info(`fuzz seed ${seed}: ${stats.connections} connections, ${(stats.bytes / 1e6).toFixed(1)} MB sent, ${stats.closedByBroker} closed by the broker; good client ${sentAt.size} round trips, slowest ${Math.max(...latencies)} ms; RSS peak +${growthMb.toFixed(0)} MB, heap after GC +${heapGrowthMb.toFixed(1)} MB`)
    expect(growthMb, `RSS peak grew by ${growthMb.toFixed(0)} MB (seed ${seed})`).toBeLessThan(RSS_GROWTH_LIMIT_MB)
    expect(heapGrowthMb, `heap after GC grew by ${heapGrowthMb.toFixed(1)} MB (seed ${seed})`).toBeLessThan(HEAP_GROWTH_LIMIT_MB)
    expect(stats.connections).toBeGreaterThan(WORKERS)
    expect(t.logs.filter(l => l.msg === 'broker error')).toEqual([])
  }, (seconds + 60) * 1000)
})

/** One hostile connection; resolves true when the broker closed it first. */
async function attack (t: TestBroker, r: Rng, clientId: string, deadline: number, stats: { bytes: number }): Promise<boolean> {
  const ws = r.chance(0.15)
  const conn = ws ? await openWs(t.wsUrl) : await openTcp(t.mqttPort)
  if (conn === undefined) return true
  let closed = false
  void conn.closed.then(() => { closed = true })
  const send = (b: Buffer): void => {
    if (closed) return
    stats.bytes += b.length
    conn.write(b)
  }
  const mode = r.int(10)
  if (mode === 0) {
    // Slow loris: a CONNECT that never finishes, one byte at a time.
    const bytes = connectBytes(clientId, r)
    for (let i = 0; i < bytes.length - 1 && !closed && Date.now() < deadline; i++) {
      send(bytes.subarray(i, i + 1))
      await sleep(250)
    }
  } else {
    if (mode > 2) send(connectBytes(clientId, r))
    for (let i = 0, n = 1 + r.int(30); i < n && !closed && Date.now() < deadline; i++) {
      send(hostileBytes(r, clientId))
      if (r.chance(0.5)) await sleep(r.int(20))
    }
    await Promise.race([conn.closed, sleep(r.int(200))])
  }
  conn.destroy()
  return closed
}

interface Conn { write: (b: Buffer) => void, destroy: () => void, closed: Promise<void> }

async function openTcp (port: number): Promise<Conn | undefined> {
  const s = net.connect(port, '127.0.0.1')
  s.on('error', () => {})
  s.resume()
  const closed = new Promise<void>(resolve => s.once('close', () => resolve()))
  const ok = await Promise.race([new Promise<boolean>(resolve => s.once('connect', () => resolve(true))), closed.then(() => false)])
  return ok ? { write: b => { s.write(b) }, destroy: () => s.destroy(), closed } : undefined
}

async function openWs (url: string): Promise<Conn | undefined> {
  const ws = new WebSocket(url, 'mqtt')
  ws.on('error', () => {})
  const closed = new Promise<void>(resolve => ws.once('close', () => resolve()))
  const ok = await Promise.race([new Promise<boolean>(resolve => ws.once('open', () => resolve(true))), closed.then(() => false)])
  return ok ? { write: b => { if (ws.readyState === WebSocket.OPEN) ws.send(b) }, destroy: () => ws.terminate(), closed } : undefined
}
