#!/usr/bin/env node
// Single-node cost of the Redis store against the LevelDB store, through the store API alone: the per-message
// work of a QoS 1 publish to one persistent subscriber (match, enqueue, packet id, PUBACK), from 8 concurrent
// publishers that each wait for their enqueue, as the broker does. Runs LevelDB and Redis interleaved, --reps times,
// and prints messages/s and CPU milliseconds per 1000 messages (this process, plus redis-server for Redis: CPU time
// is what a loaded machine distorts least). Needs `npm run build` and redis-server on PATH.
//   node bench/store-cost.mjs [--messages 20000] [--reps 3] [--appendfsync everysec|always|no]
import { spawn } from 'node:child_process'
import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import net from 'node:net'
import os from 'node:os'
import path from 'node:path'
import { parseArgs } from 'node:util'
import { pino } from 'pino'
import { openRedisStore, openStore } from '../dist/store/index.js'

const { values } = parseArgs({ options: { messages: { type: 'string', default: '20000' }, reps: { type: 'string', default: '3' }, appendfsync: { type: 'string', default: 'everysec' } } })
const N = Number(values.messages)
const PUBLISHERS = 8
const limits = { maxQueuedMessages: 0, maxQueuedBytes: 0, maxTotalQueuedMessages: 0, maxTotalQueuedBytes: 0, overflowPolicy: 'dropOldest', messageExpiryMs: 0, queueQos0: false, maxRetainedMessages: 0 }
const logger = pino({ level: 'silent' })
const tmp = mkdtempSync(path.join(os.tmpdir(), 'culex-store-cost-'))

const freePort = () => new Promise((resolve) => {
  const server = net.createServer().listen(0, '127.0.0.1', () => { const { port } = server.address(); server.close(() => resolve(port)) })
})
const answers = (port) => new Promise((resolve) => {
  const socket = net.connect(port, '127.0.0.1')
  socket.once('connect', () => { socket.write('PING\r\n'); socket.once('data', d => { socket.destroy(); resolve(d.toString().startsWith('+PONG')) }) })
  socket.once('error', () => { socket.destroy(); resolve(false) })
})
const ticks = (pid) => { const f = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' '); return Number(f[11]) + Number(f[12]) }
const TICK_MS = 10

const port = await freePort()
const aof = values.appendfsync === 'no' ? ['--appendonly', 'no'] : ['--appendonly', 'yes', '--appendfsync', values.appendfsync]
const redis = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--dir', tmp, '--save', '', ...aof, '--loglevel', 'warning'], { stdio: 'inherit' })
while (!await answers(port)) await new Promise(resolve => setTimeout(resolve, 20))

async function run (kind, rep) {
  const store = kind === 'LevelDB'
    ? await openStore({ dir: path.join(tmp, `level-${rep}`), sync: false, logger, limits })
    : await openRedisStore({ redis: { url: `redis://127.0.0.1:${port}`, prefix: `cost-${rep}:` }, logger, limits })
  const broker = { id: 'bench', counter: 0 }
  await store.setup(broker)
  const sub = { id: 'subscriber', clean: false }
  await store.addSubscriptions(sub, [{ topic: 'bench/#', qos: 1 }])
  let next = 0
  let messageId = 0
  const payload = Buffer.alloc(64, 1)
  const cpu0 = process.cpuUsage()
  const redis0 = ticks(redis.pid)
  const t0 = performance.now()
  await Promise.all(Array.from({ length: PUBLISHERS }, async (_, p) => {
    while (next < N) {
      next++
      const packet = { cmd: 'publish', topic: `bench/${p}`, payload, qos: 1, retain: false, dup: false, brokerId: broker.id, brokerCounter: ++broker.counter }
      const subs = await store.subscriptionsByTopic(packet.topic)
      await store.outgoingEnqueueCombi(subs, packet)
      const id = (messageId++ % 65535) + 1
      store.outgoingUpdate(sub, { ...packet, messageId: id }).catch(() => {})
      store.outgoingClearMessageId(sub, { cmd: 'puback', messageId: id }).catch(() => {})
    }
  }))
  await store.barrier()
  const ms = performance.now() - t0
  const cpu = process.cpuUsage(cpu0)
  const redisMs = (ticks(redis.pid) - redis0) * TICK_MS
  await store.close()
  const nodeMs = (cpu.user + cpu.system) / 1000
  return { kind, rate: Math.round(N / ms * 1000), nodeMsPer1k: +(nodeMs / N * 1000).toFixed(1), redisMsPer1k: +(redisMs / N * 1000).toFixed(1) }
}

const results = []
for (let rep = 0; rep < Number(values.reps); rep++) {
  for (const kind of rep % 2 === 0 ? ['LevelDB', 'Redis'] : ['Redis', 'LevelDB']) {
    const r = await run(kind, rep)
    results.push(r)
    process.stdout.write(`${JSON.stringify(r)}\n`)
  }
}
const median = (xs) => { const s = [...xs].sort((a, b) => a - b); return s[Math.floor(s.length / 2)] }
for (const kind of ['LevelDB', 'Redis']) {
  const rs = results.filter(r => r.kind === kind)
  process.stdout.write(`${kind}: ${median(rs.map(r => r.rate))} msgs/s, CPU per 1000 messages: node ${median(rs.map(r => r.nodeMsPer1k))} ms + redis-server ${median(rs.map(r => r.redisMsPer1k))} ms (median of ${rs.length})\n`)
}
redis.kill('SIGTERM')
await new Promise(resolve => redis.once('exit', resolve))
rmSync(tmp, { recursive: true, force: true })
