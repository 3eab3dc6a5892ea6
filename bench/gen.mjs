#!/usr/bin/env node
// The load generator: runs one scenario against a broker on 127.0.0.1 and reports one JSON object.
//
//   node bench/gen.mjs --port 1883 --pid <broker pid> --scenario fanin --qos 1 [--persistent] [--duration 5]
//
// run.mjs forks it with an IPC channel: the scenario arrives as JSON in argv[2], the result goes back with
// process.send, and the offline-restart scenarios ask the driver to restart the broker ({type: 'restart'}).
// Standalone it prints the result on stdout (restart scenarios need the driver).
import { parseArgs } from 'node:util'
import { performance } from 'node:perf_hooks'
import { setTimeout as sleep } from 'node:timers/promises'
import { Client, PublishTemplate, SeqSet } from './lib/mqtt.mjs'
import { CpuMeter, memory, rssMB } from './lib/proc.mjs'

const round = (x, d = 0) => Number.isFinite(x) ? Math.round(x * 10 ** d) / 10 ** d : null

/**
 * Polls every 10 ms until done() or until progress() has not changed for idleMs, or maxMs passed.
 * Returns true when done; false when progress stopped; 'cap' when maxMs passed while progress was still being made.
 */
async function settle ({ done, progress, idleMs = 3000, maxMs = 60000 }) {
  const start = performance.now()
  let last = progress()
  let lastChange = start
  for (;;) {
    if (done()) return true
    const now = performance.now()
    const p = progress()
    if (p !== last) { last = p; lastChange = now }
    if (now - lastChange >= idleMs) return false
    if (now - start >= maxMs) return 'cap'
    await sleep(10)
  }
}

/** Drain after the measured phase of fan-in / fan-out: at most 20 s, then what is still arriving is pending. */
const DRAIN_CAP_MS = 20000

/**
 * A publisher with a window of unacknowledged messages (QoS > 0) and an optional bound on how far it may run
 * ahead of its receivers (`ahead()` returns sent - received). Messages carry (pubIndex, seq, send time).
 */
class Publisher {
  constructor (client, { index, topic, qos, payloadSize = 64, retain = false, window = 64, backlog = Infinity, ahead = null, batch = 256, minBatch = 1 }) {
    this.client = client
    this.index = index
    this.qos = qos
    this.tpl = new PublishTemplate({ topic, qos, payloadSize, retain, pubIndex: index })
    this.window = qos > 0 ? window : Infinity
    this.backlog = backlog
    this.ahead = ahead
    this.batch = batch
    this.minBatch = minBatch // wait for this many free slots (unless nothing is outstanding) so writes are not tiny
    this.sent = 0
    this.inflight = 0
    this.ackedCount = 0
    this.acked = new SeqSet()
    this.idToSeq = new Int32Array(65536)
    this.nextId = 0
    this.limit = Infinity // total messages to send
    this.stopped = true
    this.scheduled = false
    this.firstSendAt = 0
    this.lastAckAt = 0
    this.topicFor = null // optional (seq) => template, for per-message topics
    client.onAck = (c, id, now) => {
      const seq = this.idToSeq[id]
      if (this.acked.add(seq)) this.ackedCount++
      this.inflight--
      this.lastAckAt = now
      this.schedule()
    }
  }

  start (limit = Infinity) {
    this.limit = limit
    this.stopped = false
    this.pump()
  }

  stop () { this.stopped = true }

  schedule () {
    if (this.scheduled || this.stopped) return
    this.scheduled = true
    setImmediate(() => { this.scheduled = false; this.pump() })
  }

  pump () {
    if (this.stopped || this.client.closed) return
    let n = Math.min(this.window - this.inflight, this.limit - this.sent, this.batch)
    if (this.ahead !== null) n = Math.min(n, this.backlog - this.ahead())
    if (n <= 0) return
    if (n < this.minBatch && this.sent + n < this.limit && this.inflight + (this.ahead ? this.ahead() : 0) > 0) return
    const t = performance.now()
    if (this.sent === 0) this.firstSendAt = t
    const tpls = []
    let size = 0
    for (let k = 0; k < n; k++) {
      const tpl = this.topicFor ? this.topicFor(this.sent + k) : this.tpl
      tpls.push(tpl)
      size += tpl.length
    }
    const buf = Buffer.allocUnsafe(size)
    let off = 0
    for (let k = 0; k < n; k++) {
      const seq = this.sent++
      let id = 0
      if (this.qos > 0) {
        id = this.nextId = this.nextId >= 65535 ? 1 : this.nextId + 1
        this.idToSeq[id] = seq
      }
      tpls[k].write(buf, off, id, seq, t)
      off += tpls[k].length
    }
    if (this.qos > 0) this.inflight += n
    this.client.write(buf)
  }
}

// ---------------------------------------------------------------------------------------------------------------
// fan-in: N publishers -> 1 subscriber on bench/#

async function fanin (o, ctx) {
  const { qos, persistent = false, publishers = 8, duration = 5, window = 64, backlog = 1000, payloadSize = 64 } = o
  const recv = Array.from({ length: publishers }, () => new SeqSet())
  let dup = 0
  let lastRecvAt = 0
  const pubs = []
  const sub = await Client.connect(ctx.port, { clientId: persistent ? 'bench-fanin-sub-persistent' : 'bench-fanin-sub', clean: !persistent })
  const granted = await sub.subscribe([{ topic: 'bench/#', qos }])
  sub.onPublish = (c, q, id, b, ts, te, ps, pe, now) => {
    const pi = b.readUInt16BE(ps)
    if (recv[pi].add(b.readUInt32BE(ps + 2))) { lastRecvAt = now; pubs[pi].schedule() } else dup++
  }
  for (let i = 0; i < publishers; i++) {
    const c = await Client.connect(ctx.port, { clientId: `bench-fanin-pub-${i}` })
    pubs.push(new Publisher(c, { index: i, topic: `bench/${i}`, qos, payloadSize, window, backlog, minBatch: qos === 0 ? 32 : 16, ahead: () => pubs[i].sent - recv[i].count }))
  }
  const cpu = new CpuMeter(ctx.pid)
  cpu.start()
  for (const p of pubs) p.start()
  await sleep(duration * 1000)
  for (const p of pubs) p.stop()
  const sentAll = () => pubs.reduce((s, p) => s + p.sent, 0)
  const ackedAll = () => pubs.reduce((s, p) => s + p.ackedCount, 0)
  const recvAll = () => recv.reduce((s, r) => s + r.count, 0)
  const drained = await settle({
    done: () => (qos === 0 || ackedAll() === sentAll()) && recvAll() >= (qos === 0 ? sentAll() : ackedAll()),
    progress: () => recvAll() + ackedAll(),
    maxMs: DRAIN_CAP_MS
  })
  const c = cpu.stop()
  const { lost, pending, unacked } = lossOf(pubs, [recv], qos, drained === 'cap')
  const firstSendAt = Math.min(...pubs.map(p => p.firstSendAt))
  const result = {
    granted,
    sent: sentAll(),
    acked: qos > 0 ? ackedAll() : null,
    received: recvAll(),
    rate: recvAll() / ((lastRecvAt - firstSendAt) / 1000),
    brokerCpu: c.brokerCpu,
    genCpu: c.genCpu,
    peakRssMB: memory(ctx.pid).hwmKB / 1024,
    lost,
    pending,
    unacked,
    dup,
    drained,
    windowUs: c.windowUs
  }
  await closeAll([sub, ...pubs.map(p => p.client)])
  return result
}

/**
 * Loss per message: a message counts as lost for a receiver when it was acknowledged to its publisher (QoS > 0)
 * or sent (QoS 0) and the receiver never got it. `recvSets[r][pubIndex]` is receiver r's SeqSet for a publisher.
 */
function lossOf (pubs, recvSets, qos, capped = false) {
  let lost = 0
  let unacked = 0
  for (const p of pubs) {
    for (let seq = 0; seq < p.sent; seq++) {
      const counted = qos === 0 || p.acked.has(seq)
      if (!counted) { unacked++; continue }
      for (const r of recvSets) if (!r[p.index].has(seq)) lost++
    }
  }
  // stopped by the drain cap while deliveries were still arriving: the missing ones are pending, not lost
  return capped ? { lost: 0, pending: lost, unacked } : { lost, pending: 0, unacked }
}

async function closeAll (clients) {
  await Promise.all(clients.map(c => c.disconnect()))
}

// ---------------------------------------------------------------------------------------------------------------
// fan-out: 1 publisher -> N subscribers on one topic

async function fanout (o, ctx) {
  const { qos, subscribers = 50, duration = 5, window = 64, backlog = 1000, payloadSize = 64 } = o
  const subs = []
  const recv = []
  let dup = 0
  let lastRecvAt = 0
  let pub = null
  await Promise.all(Array.from({ length: subscribers }, async (_, i) => {
    const set = new SeqSet()
    recv[i] = [set]
    const c = await Client.connect(ctx.port, { clientId: `bench-fanout-sub-${i}` })
    await c.subscribe([{ topic: 'bench/fanout', qos }])
    c.onPublish = (cl, q, id, b, ts, te, ps, pe, now) => {
      if (set.add(b.readUInt32BE(ps + 2))) { lastRecvAt = now; pub.schedule() } else dup++
    }
    subs[i] = c
  }))
  const minRecv = () => { let m = Infinity; for (const r of recv) if (r[0].count < m) m = r[0].count; return m }
  const pc = await Client.connect(ctx.port, { clientId: 'bench-fanout-pub' })
  pub = new Publisher(pc, { index: 0, topic: 'bench/fanout', qos, payloadSize, window, backlog, minBatch: qos === 0 ? 32 : 16, ahead: () => pub.sent - minRecv() })
  const cpu = new CpuMeter(ctx.pid)
  cpu.start()
  pub.start()
  await sleep(duration * 1000)
  pub.stop()
  const recvAll = () => recv.reduce((s, r) => s + r[0].count, 0)
  const drained = await settle({
    done: () => (qos === 0 || pub.ackedCount === pub.sent) && minRecv() >= (qos === 0 ? pub.sent : pub.ackedCount),
    progress: () => recvAll() + pub.ackedCount,
    maxMs: DRAIN_CAP_MS
  })
  const c = cpu.stop()
  const { lost, pending, unacked } = lossOf([pub], recv, qos, drained === 'cap')
  const result = {
    sent: pub.sent,
    acked: qos > 0 ? pub.ackedCount : null,
    received: recvAll(),
    rate: recvAll() / ((lastRecvAt - pub.firstSendAt) / 1000),
    brokerCpu: c.brokerCpu,
    genCpu: c.genCpu,
    peakRssMB: memory(ctx.pid).hwmKB / 1024,
    lost,
    pending,
    unacked,
    dup,
    drained,
    windowUs: c.windowUs
  }
  await closeAll([...subs, pc])
  return result
}

// ---------------------------------------------------------------------------------------------------------------
// latency: 1 -> 1 at a fixed rate, publish -> deliver time measured with the generator's clock

async function latency (o, ctx) {
  const { qos = 1, rate = 2000, warmup = 1, duration = 5, window = 1000, payloadSize = 64 } = o
  const recv = new SeqSet()
  const lat = new Float64Array(Math.ceil(rate * (warmup + duration)) + 16)
  let nLat = 0
  let dup = 0
  let measureFrom = Infinity
  const sub = await Client.connect(ctx.port, { clientId: 'bench-lat-sub', noDelay: true })
  await sub.subscribe([{ topic: 'bench/lat', qos }])
  sub.onPublish = (c, q, id, b, ts, te, ps, pe, now) => {
    if (!recv.add(b.readUInt32BE(ps + 2))) { dup++; return }
    const t = b.readDoubleBE(ps + 6)
    if (t >= measureFrom && nLat < lat.length) lat[nLat++] = now - t
  }
  const pc = await Client.connect(ctx.port, { clientId: 'bench-lat-pub', noDelay: true })
  const pub = new Publisher(pc, { index: 0, topic: 'bench/lat', qos, payloadSize, window, batch: 1 })
  pub.stopped = false
  const start = performance.now()
  measureFrom = start + warmup * 1000
  const end = measureFrom + duration * 1000
  const cpu = new CpuMeter(ctx.pid)
  let sentMeasured = 0
  await new Promise(resolve => {
    const timer = setInterval(() => {
      const now = performance.now()
      if (now >= measureFrom && cpu.t0 === undefined) { cpu.start(); sentMeasured = pub.sent }
      if (now >= end) { clearInterval(timer); resolve(); return }
      const due = Math.floor((now - start) * rate / 1000) - pub.sent
      for (let k = 0; k < due && pub.inflight < window; k++) { pub.limit = pub.sent + 1; pub.pump() }
    }, 1)
  })
  const achieved = (pub.sent - sentMeasured) / duration
  pub.stop()
  const drained = await settle({
    done: () => pub.ackedCount === pub.sent && recv.count >= pub.ackedCount,
    progress: () => recv.count + pub.ackedCount
  })
  const c = cpu.stop()
  const sorted = lat.subarray(0, nLat).sort()
  const pct = p => nLat === 0 ? null : sorted[Math.min(nLat - 1, Math.floor(p * nLat))]
  const { lost, unacked } = lossOf([pub], [[recv]], qos)
  const result = {
    sent: pub.sent,
    received: recv.count,
    samples: nLat,
    p50: pct(0.5),
    p99: pct(0.99),
    p999: pct(0.999),
    max: nLat === 0 ? null : sorted[nLat - 1],
    achieved,
    brokerCpu: c.brokerCpu,
    genCpu: c.genCpu,
    lost,
    unacked,
    dup,
    drained
  }
  await closeAll([sub, pc])
  return result
}

// ---------------------------------------------------------------------------------------------------------------
// connections: N clean clients connect as fast as possible with C connects in flight, held, then closed

async function connections (o, ctx) {
  const { clients = 5000, concurrency = 200, holdS = 1 } = o
  const before = rssMB(ctx.pid)
  const conns = []
  const connectMs = []
  let failed = 0
  let next = 0
  const cpu = new CpuMeter(ctx.pid)
  cpu.start()
  const t0 = performance.now()
  let lastAt = t0
  const worker = async () => {
    while (next < clients) {
      const i = next++
      const t = performance.now()
      try {
        conns.push(await Client.connect(ctx.port, { clientId: `bench-conn-${i}`, timeoutMs: 30000 }))
        lastAt = performance.now()
        connectMs.push(lastAt - t)
      } catch { failed++ }
    }
  }
  await Promise.all(Array.from({ length: concurrency }, worker))
  const c = cpu.stop()
  await sleep(holdS * 1000)
  const connected = rssMB(ctx.pid)
  await Promise.all(conns.map(cl => cl.disconnect()))
  await sleep(1000)
  const after = rssMB(ctx.pid)
  return {
    connected: conns.length,
    failed,
    rate: conns.length / ((lastAt - t0) / 1000),
    rssBeforeMB: before,
    rssConnectedMB: connected,
    rssAfterMB: after,
    kbPerConn: (connected - before) * 1024 / Math.max(1, conns.length),
    connectP50Ms: median(connectMs),
    connectP99Ms: connectMs.sort((a, b) => a - b)[Math.floor(connectMs.length * 0.99)] ?? null,
    connectMaxMs: connectMs.length ? connectMs[connectMs.length - 1] : null,
    brokerCpu: c.brokerCpu,
    genCpu: c.genCpu
  }
}

// ---------------------------------------------------------------------------------------------------------------
// offline queue: persistent subscriber, disconnect, publish N QoS 1, [restart the broker], reconnect and drain

async function offline (o, ctx) {
  const { messages = 20000, restart = null, killDelayMs = 0, window = 64, payloadSize = 64, idleMs = 3000, maxDrainMs = 60000 } = o
  const subId = 'bench-offline-sub'
  const first = await Client.connect(ctx.port, { clientId: subId, clean: false })
  await first.subscribe([{ topic: 'bench/offline', qos: 1 }])
  await first.disconnect()

  const pc = await Client.connect(ctx.port, { clientId: 'bench-offline-pub' })
  const pub = new Publisher(pc, { index: 0, topic: 'bench/offline', qos: 1, payloadSize, window })
  pub.start(messages)
  const enqueued = await settle({ done: () => pub.ackedCount === messages, progress: () => pub.ackedCount, idleMs: 10000 })
  const enqueueRate = pub.ackedCount / ((pub.lastAckAt - pub.firstSendAt) / 1000)
  const queuedRssMB = rssMB(ctx.pid)
  if (restart) {
    // kill or stop right after the last PUBACK (killDelayMs later): every acknowledged message must survive
    if (killDelayMs > 0) await sleep(killDelayMs)
    pc.destroy()
    await ctx.restart(restart)
  } else {
    await pc.disconnect()
  }

  const recv = new SeqSet()
  let dup = 0
  let lastRecvAt = 0
  const t0 = performance.now()
  const h0 = process.hrtime.bigint()
  const sub = await Client.connect(ctx.port, {
    clientId: subId,
    clean: false,
    init: c => {
      c.onPublish = (cl, q, id, b, ts, te, ps, pe, now) => {
        if (recv.add(b.readUInt32BE(ps + 2))) lastRecvAt = now; else dup++
      }
    }
  })
  const sessionPresent = sub.sessionPresent
  const drained = await settle({ done: () => recv.count >= messages, progress: () => recv.count, idleMs, maxMs: maxDrainMs })
  const tEnd = recv.count >= messages ? lastRecvAt : performance.now()
  // Stopped by the time cap while messages were still arriving: the rest is pending, not lost.
  const timedOut = drained === 'cap'
  const windowUs = [Number(h0 / 1000n), Number(process.hrtime.bigint() / 1000n)] // the drain, for run.mjs --cpu-prof
  let missing = 0
  for (let seq = 0; seq < pub.sent; seq++) if (pub.acked.has(seq) && !recv.has(seq)) missing++
  const lost = timedOut ? 0 : missing
  const pending = timedOut ? missing : 0
  const result = {
    messages,
    acked: pub.ackedCount,
    enqueued,
    enqueueRate,
    queuedRssMB,
    sessionPresent,
    received: recv.count,
    reconnectToAllS: (tEnd - t0) / 1000,
    drainRate: recv.count === 0 ? 0 : recv.count / ((lastRecvAt - t0) / 1000),
    timedOut,
    lost,
    pending,
    dup,
    windowUs
  }
  await sub.disconnect()
  return result
}

// ---------------------------------------------------------------------------------------------------------------
// retained: store N retained messages on bench/r/<i>/x (every 1000th i) or bench/r/<i>/y (the rest), then time
// SUBSCRIBE -> first retained message for a wildcard with few matches (bench/r/+/x) and for an exact topic

function retainedTopic (i) { return `bench/r/${i}/${i % 1000 === 0 ? 'x' : 'y'}` }

async function retained (o, ctx) {
  const { messages = 100000, window = 256, payloadSize = 64, probes = 3 } = o
  const pc = await Client.connect(ctx.port, { clientId: 'bench-retain-pub' })
  const pub = new Publisher(pc, { index: 0, topic: 'bench/r/0/x', qos: 1, payloadSize, retain: true, window })
  pub.topicFor = seq => new PublishTemplate({ topic: retainedTopic(seq), qos: 1, payloadSize, retain: true })
  const cpu = new CpuMeter(ctx.pid)
  cpu.start()
  pub.start(messages)
  const stored = await settle({ done: () => pub.ackedCount === messages, progress: () => pub.ackedCount, idleMs: 10000, maxMs: 300000 })
  const storeRate = pub.ackedCount / ((pub.lastAckAt - pub.firstSendAt) / 1000)
  const c = cpu.stop()
  await pc.disconnect()
  // The last retained message must be visible before the timed probes start (aedes acks QoS 1 before storing).
  const sync = await probe(ctx.port, 'bench-retain-sync', retainedTopic(messages - 1), 1, 30000)
  const rssAfterStoreMB = rssMB(ctx.pid)
  const wild = []
  const exact = []
  const wildMatches = Math.ceil(messages / 1000)
  for (let k = 0; k < probes; k++) {
    wild.push(await probe(ctx.port, `bench-retain-w${k}`, 'bench/r/+/x', wildMatches, 30000))
    exact.push(await probe(ctx.port, `bench-retain-e${k}`, retainedTopic(1 + Math.floor((messages - 2) * (k + 1) / (probes + 1))), 1, 30000))
  }
  const med = (arr, key) => median(arr.map(p => p[key]))
  return {
    stored: pub.ackedCount,
    storeRate,
    storeBrokerCpu: c.brokerCpu,
    syncFound: sync.received,
    rssAfterStoreMB,
    peakRssMB: memory(ctx.pid).hwmKB / 1024,
    wildFirstMs: med(wild, 'firstMs'),
    wildAllMs: med(wild, 'allMs'),
    wildReceived: med(wild, 'received'),
    wildExpected: wildMatches,
    exactFirstMs: med(exact, 'firstMs'),
    exactSubackMs: med(exact, 'subackMs'),
    wildSubackMs: med(wild, 'subackMs'),
    wildFirstMsMax: Math.max(...wild.map(p => p.firstMs ?? Infinity)),
    exactFirstMsMax: Math.max(...exact.map(p => p.firstMs ?? Infinity)),
    probes: { wild, exact }
  }
}

function median (xs) {
  const v = xs.filter(x => x !== null && Number.isFinite(x)).sort((a, b) => a - b)
  if (v.length === 0) return null
  return v.length % 2 ? v[(v.length - 1) >> 1] : (v[v.length / 2 - 1] + v[v.length / 2]) / 2
}

/** Connects, subscribes at QoS 0 and times SUBSCRIBE -> SUBACK, first retained message and the expected count. */
async function probe (port, clientId, topic, expected, timeoutMs) {
  let firstAt = null
  let lastAt = null
  let received = 0
  const c = await Client.connect(port, {
    clientId,
    noDelay: true,
    init: cl => {
      cl.onPublish = (x, q, id, b, ts, te, ps, pe, now) => { received++; lastAt = now; if (firstAt === null) firstAt = now }
    }
  })
  let subackAt = null
  const t0 = performance.now()
  await c.subscribe([{ topic, qos: 0 }], 1, timeoutMs).then(() => { subackAt = performance.now() }, () => {})
  await settle({ done: () => received >= expected, progress: () => received, idleMs: 2000, maxMs: timeoutMs })
  await c.disconnect()
  return {
    topic,
    received,
    subackMs: subackAt === null ? null : subackAt - t0,
    firstMs: firstAt === null ? null : firstAt - t0,
    allMs: received >= expected ? lastAt - t0 : null
  }
}

// ---------------------------------------------------------------------------------------------------------------
// shared subscriptions: 1 publisher -> M members of $share/g/bench/shared; each message to exactly one member

async function shared (o, ctx) {
  const { members = 4, messages = 20000, window = 64, payloadSize = 64, idleMs = 2000 } = o
  const seen = new SeqSet(messages * 2)
  const perMember = new Array(members).fill(0)
  let dup = 0
  let lastRecvAt = 0
  const subs = []
  const granted = []
  for (let i = 0; i < members; i++) {
    const c = await Client.connect(ctx.port, { clientId: `bench-shared-${i}` })
    granted.push((await c.subscribe([{ topic: '$share/g/bench/shared', qos: 1 }]))[0])
    c.onPublish = (cl, q, id, b, ts, te, ps, pe, now) => {
      perMember[i]++
      if (seen.add(b.readUInt32BE(ps + 2))) lastRecvAt = now; else dup++
    }
    subs.push(c)
  }
  const pc = await Client.connect(ctx.port, { clientId: 'bench-shared-pub' })
  const pub = new Publisher(pc, { index: 0, topic: 'bench/shared', qos: 1, payloadSize, window })
  pub.start(messages)
  await settle({ done: () => pub.ackedCount === messages && seen.count >= messages, progress: () => pub.ackedCount + seen.count + dup, idleMs })
  let lost = 0
  for (let seq = 0; seq < pub.sent; seq++) if (pub.acked.has(seq) && !seen.has(seq)) lost++
  const mean = perMember.reduce((a, b) => a + b, 0) / members
  const result = {
    granted,
    sent: pub.sent,
    acked: pub.ackedCount,
    delivered: seen.count,
    deliveredRatio: seen.count / messages,
    rate: seen.count === 0 ? 0 : seen.count / ((lastRecvAt - pub.firstSendAt) / 1000),
    perMember,
    spread: mean > 0 ? (Math.max(...perMember) - Math.min(...perMember)) / mean : null,
    lost,
    dup
  }
  await closeAll([...subs, pc])
  return result
}

// ---------------------------------------------------------------------------------------------------------------

const scenarios = { fanin, fanout, latency, connections, offline, retained, shared }

async function main () {
  let spec
  let port
  let pid
  if (process.send) {
    ({ spec, port, pid } = JSON.parse(process.argv[2]))
  } else {
    const { values } = parseArgs({
      options: {
        port: { type: 'string' },
        pid: { type: 'string' },
        scenario: { type: 'string' },
        qos: { type: 'string' },
        persistent: { type: 'boolean' },
        duration: { type: 'string' },
        json: { type: 'string' }
      }
    })
    spec = { kind: values.scenario, ...(values.json ? JSON.parse(values.json) : {}) }
    if (values.qos !== undefined) spec.qos = Number(values.qos)
    if (values.persistent) spec.persistent = true
    if (values.duration !== undefined) spec.duration = Number(values.duration)
    port = Number(values.port)
    pid = Number(values.pid)
  }
  const fn = scenarios[spec.kind]
  if (!fn) throw new Error(`unknown scenario kind ${spec.kind}; one of ${Object.keys(scenarios).join(', ')}`)
  const ctx = {
    port,
    pid,
    restart: signal => new Promise((resolve, reject) => {
      if (!process.send) { reject(new Error('restart needs the driver (run.mjs)')); return }
      const onMsg = m => {
        if (m?.type !== 'restarted') return
        process.off('message', onMsg)
        if (m.error) reject(new Error(m.error)); else { ctx.pid = m.pid; resolve(m.pid) }
      }
      process.on('message', onMsg)
      process.send({ type: 'restart', signal })
    })
  }
  const result = await fn(spec, ctx)
  for (const [k, v] of Object.entries(result)) if (typeof v === 'number') result[k] = round(v, 4)
  if (process.send) {
    process.send({ type: 'result', result }, () => process.exit(0))
  } else {
    process.stdout.write(JSON.stringify(result) + '\n')
    process.exit(0)
  }
}

main().catch(err => {
  if (process.send) process.send({ type: 'error', error: err.stack ?? String(err) }, () => process.exit(1))
  else { console.error(err); process.exit(1) }
})
