#!/usr/bin/env node
// A fixed amount of work for instruction counts, where wall-clock figures are too noisy (a shared machine): Culex
// in this process (from the dist/ of the tree given, `.` by default), one subscriber on bench/# and 4 publishers,
// the bench's own clients, N QoS 1 messages in all (window 64, as the fan-in scenarios), then exit.
//
//   valgrind --tool=callgrind --smc-check=all-non-file --callgrind-out-file=/dev/null \
//     node --single-threaded bench/fixed-load.mjs --messages 10000 --protocol 5 [--persistent | --offline] [--properties] [--tree DIR]
//
// The instructions of one message are (count at N2 − count at N1) / (N2 − N1): start-up, connects and the first
// compilations cancel out. --single-threaded keeps V8's compiler and collector threads on the main thread, so two
// runs of the same code count the same work. Without valgrind it prints the CPU time of this process (broker and
// clients) per message over the second half of the messages (the first half warms the code up): a figure the load
// of other processes on the machine moves much less than a rate.
//
// --alloc FILE: V8's sampling heap profiler over the second half too, objects the collector already took included,
// written to FILE (a .heapprofile for Chrome's tools); prints the bytes allocated per message and the functions that
// allocate most. What the broker allocates per message drives its collector, whose threads add to its CPU.
import fs from 'node:fs'
import inspector from 'node:inspector'
import os from 'node:os'
import path from 'node:path'
import { Writable } from 'node:stream'
import { parseArgs } from 'node:util'
import { Client, SeqSet } from './lib/mqtt.mjs'
import { Publisher } from './lib/publisher.mjs'

const { values } = parseArgs({
  options: {
    tree: { type: 'string', default: '.' },
    messages: { type: 'string', default: '10000' },
    protocol: { type: 'string', default: '4' },
    persistent: { type: 'boolean', default: false },
    offline: { type: 'boolean', default: false },
    properties: { type: 'boolean', default: false },
    alloc: { type: 'string' }
  }
})
const tree = path.resolve(values.tree)
const total = Number(values.messages)
const protocolVersion = Number(values.protocol)
const PUBLISHERS = 4
const { loadConfig } = await import(path.join(tree, 'dist/config/load.js'))
const { startBroker } = await import(path.join(tree, 'dist/broker.js'))
const { createLogger } = await import(path.join(tree, 'dist/log/logger.js'))
const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'culex-fixed-load-'))
const { config } = await loadConfig({ flags: { 'listeners.mqtt.port': 0, 'listeners.mqtt.host': '127.0.0.1', 'listeners.ws.port': 0, 'admin.port': 0, 'log.level': 'warn', dataDir } })
const broker = await startBroker(config, createLogger({ level: 'warn', format: 'json', destination: new Writable({ write (c, e, cb) { cb() } }) }))
const port = broker.listeners.find(l => l.name === 'mqtt').port

const session = new inspector.Session()
session.connect()
const post = (method, params) => new Promise((resolve, reject) => session.post(method, params, (err, r) => err ? reject(err) : resolve(r)))

const recv = Array.from({ length: PUBLISHERS }, () => new SeqSet())
const pubs = []
let received = 0
let halfway
let allReceived
const finished = new Promise(resolve => { allReceived = resolve })
const offline = values.offline
const sub = await Client.connect(port, { clientId: 'fixed-load-sub', clean: !values.persistent && !offline, protocolVersion })
await sub.subscribe([{ topic: 'bench/#', qos: 1 }])
// --offline: the enqueue to a persistent session that is not connected (the offline scenario's first phase),
// counted by the publishers' PUBACKs instead of deliveries
if (offline) await sub.disconnect()
const noteDone = () => {
  if (++received === total / 2) {
    halfway = process.cpuUsage()
    if (values.alloc !== undefined) void post('HeapProfiler.startSampling', { samplingInterval: 4096, includeObjectsCollectedByMajorGC: true, includeObjectsCollectedByMinorGC: true })
  }
  if (received === total) allReceived()
}
sub.onPublish = (c, q, id, b, ts, te, ps) => {
  const pi = b.readUInt16BE(ps)
  if (!recv[pi].add(b.readUInt32BE(ps + 2))) return
  pubs[pi].schedule()
  noteDone()
}
const properties = values.properties ? { contentType: 'application/octet-stream', userProperties: { source: 'bench', run: '1' } } : undefined
for (let i = 0; i < PUBLISHERS; i++) {
  const c = await Client.connect(port, { clientId: `fixed-load-pub-${i}`, protocolVersion })
  const p = new Publisher(c, { index: i, topic: `bench/${i}`, qos: 1, window: 64, backlog: 1000, minBatch: 16, ahead: offline ? null : () => pubs[i].sent - recv[i].count, properties })
  if (offline) {
    const onAck = c.onAck
    c.onAck = (client, id, now) => { onAck(client, id, now); noteDone() }
  }
  pubs.push(p)
}
for (const p of pubs) p.start(total / PUBLISHERS)
await finished
const cpu = process.cpuUsage(halfway)
process.stderr.write(`${received} messages ${offline ? 'queued' : 'delivered'}, ${((cpu.user + cpu.system) / (total / 2)).toFixed(2)} µs of CPU per message over the second half\n`)
if (values.alloc !== undefined) {
  const { profile } = await post('HeapProfiler.stopSampling')
  fs.writeFileSync(values.alloc, JSON.stringify(profile))
  const bySite = new Map()
  let bytes = 0
  const walk = (node) => {
    const f = node.callFrame
    const site = `${f.functionName || '(anonymous)'} ${f.url.replace(/^.*\/(dist|node_modules|bench)\//, '$1/')}:${f.lineNumber + 1}`
    bytes += node.selfSize
    bySite.set(site, (bySite.get(site) ?? 0) + node.selfSize)
    for (const child of node.children) walk(child)
  }
  walk(profile.head)
  process.stderr.write(`${(bytes / (total / 2) / 1000).toFixed(2)} kB allocated per message over the second half (sampled); most by:\n`)
  for (const [site, b] of [...bySite].sort((x, y) => y[1] - x[1]).slice(0, 12)) process.stderr.write(`  ${(100 * b / bytes).toFixed(1).padStart(5)} %  ${site}\n`)
}
fs.rmSync(dataDir, { recursive: true, force: true })
process.exit(0)
