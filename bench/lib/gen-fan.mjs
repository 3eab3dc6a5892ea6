// Generator: fan-in (N publishers -> 1 subscriber) and fan-out (1 publisher -> N subscribers). Both measure
// delivered messages per second over a fixed duration and report the same result shape (throughputResult).
// `protocolVersion: 5` runs the same load with MQTT 5 clients (a persistent subscriber asks for a session expiry
// interval of a day), and `properties` (mqtt-packet's form) gives every PUBLISH those properties.
import { setTimeout as sleep } from 'node:timers/promises'
import { DRAIN_CAP_MS, lossOf, settle } from './drain.mjs'
import { Client, PAYLOAD_MIN, SeqSet, closeAll, discardSession } from './mqtt.mjs'
import { CpuMeter, memory } from './proc.mjs'
import { awaitRoute, callsPerMessage, nodePort, redisCalls } from './cluster-support.mjs'
import { Publisher } from './publisher.mjs'

// fan-in: N publishers -> 1 subscriber on bench/#. On a cluster broker the subscriber is on node `subNode` and the
// publishers on node `pubNode` (default: both on the first).

export async function fanin (o, ctx) {
  const { qos, persistent = false, publishers = 8, duration = 5, window = 64, backlog = 1000, payloadSize = 64, protocolVersion = 4, properties } = o
  const subPort = nodePort(ctx, o.subNode)
  const pubPort = nodePort(ctx, o.pubNode)
  const recv = Array.from({ length: publishers }, () => new SeqSet())
  const stats = { dup: 0, lastRecvAt: 0 }
  const pubs = []
  // A warm-up round (o.round) has its own subscriber session and ends it, so nothing of it reaches the measured round.
  const subId = `${persistent ? 'bench-fanin-sub-persistent' : 'bench-fanin-sub'}${o.round ?? ''}`
  const sub = await Client.connect(subPort, { clientId: subId, clean: !persistent, protocolVersion })
  const granted = await sub.subscribe([{ topic: 'bench/#', qos }])
  if (subPort !== pubPort) await awaitRoute(sub, pubPort, 'bench/probe')
  sub.onPublish = (c, q, id, b, ts, te, ps, pe, now) => {
    if (pe - ps < PAYLOAD_MIN) return // a late route probe
    const pi = b.readUInt16BE(ps)
    if (recv[pi].add(b.readUInt32BE(ps + 2))) { stats.lastRecvAt = now; pubs[pi].schedule() } else stats.dup++
  }
  for (let i = 0; i < publishers; i++) {
    const c = await Client.connect(pubPort, { clientId: `bench-fanin-pub-${i}`, protocolVersion })
    pubs.push(new Publisher(c, { index: i, topic: `bench/${i}`, qos, payloadSize, window, backlog, minBatch: qos === 0 ? 32 : 16, ahead: () => pubs[i].sent - recv[i].count, properties }))
  }
  const result = { granted, ...await measureRound({ pubs, recv, stats, qos, duration, ctx }) }
  await closeAll([sub, ...pubs.map(p => p.client)])
  if (persistent && o.round !== undefined) await discardSession(subPort, subId, protocolVersion)
  return result
}

/**
 * The measured phase of a run where publisher i's messages go to `recv[i]` (fan-in: one subscriber; pairs: one
 * subscriber per publisher): the publishers run for `duration`, then the drain, then the throughput result, with
 * the broker's CPU (and Redis' command counts, for a cluster) over the same interval.
 */
export async function measureRound ({ pubs, recv, stats, qos, duration, ctx }) {
  const calls0 = await redisCalls(ctx)
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
  const calls = callsPerMessage(calls0, await redisCalls(ctx), recvAll())
  const loss = lossOf(pubs, [recv], qos, drained === 'cap')
  const firstSendAt = Math.min(...pubs.map(p => p.firstSendAt))
  return {
    ...throughputResult({ sent: sentAll(), acked: qos > 0 ? ackedAll() : null, received: recvAll(), firstSendAt, lastRecvAt: stats.lastRecvAt, cpu: c, pid: ctx.pid, loss, dup: stats.dup, drained }),
    ...calls
  }
}

// fan-out: 1 publisher -> N subscribers on one topic

export async function fanout (o, ctx) {
  const { qos, subscribers = 50, duration = 5, window = 64, backlog = 1000, payloadSize = 64, protocolVersion = 4, properties } = o
  const subs = []
  const recv = []
  let dup = 0
  let lastRecvAt = 0
  let pub = null
  await Promise.all(Array.from({ length: subscribers }, async (_, i) => {
    const set = new SeqSet()
    recv[i] = [set]
    const c = await Client.connect(ctx.port, { clientId: `bench-fanout-sub-${i}`, protocolVersion })
    await c.subscribe([{ topic: 'bench/fanout', qos }])
    c.onPublish = (cl, q, id, b, ts, te, ps, pe, now) => {
      if (set.add(b.readUInt32BE(ps + 2))) { lastRecvAt = now; pub.schedule() } else dup++
    }
    subs[i] = c
  }))
  const minRecv = () => { let m = Infinity; for (const r of recv) if (r[0].count < m) m = r[0].count; return m }
  const pc = await Client.connect(ctx.port, { clientId: 'bench-fanout-pub', protocolVersion })
  pub = new Publisher(pc, { index: 0, topic: 'bench/fanout', qos, payloadSize, window, backlog, minBatch: qos === 0 ? 32 : 16, ahead: () => pub.sent - minRecv(), properties })
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
  const loss = lossOf([pub], recv, qos, drained === 'cap')
  const result = throughputResult({ sent: pub.sent, acked: qos > 0 ? pub.ackedCount : null, received: recvAll(), firstSendAt: pub.firstSendAt, lastRecvAt, cpu: c, pid: ctx.pid, loss, dup, drained })
  await closeAll([...subs, pc])
  return result
}

/**
 * The result both throughput scenarios report, in this key order (the raw .jsonl and the tables read these keys).
 * rate = deliveries per second from the first send to the last new delivery, so the drain is included.
 */
function throughputResult ({ sent, acked, received, firstSendAt, lastRecvAt, cpu, pid, loss, dup, drained }) {
  return {
    sent,
    acked,
    received,
    rate: received / ((lastRecvAt - firstSendAt) / 1000),
    brokerCpu: cpu.brokerCpu,
    redisCpu: cpu.redisCpu,
    cpuUsPerMsg: received > 0 ? cpu.brokerCpuS * 1e6 / received : null,
    genCpu: cpu.genCpu,
    peakRssMB: memory(pid).hwmKB / 1024,
    lost: loss.lost,
    pending: loss.pending,
    unacked: loss.unacked,
    dup,
    drained,
    windowUs: cpu.windowUs
  }
}
