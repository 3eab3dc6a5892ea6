// Generator: SUBSCRIBE -> first retained message with a large retained store, for a wildcard and an exact topic.
import { performance } from 'node:perf_hooks'
import { settle } from './drain.mjs'
import { Client, PublishTemplate } from './mqtt.mjs'
import { CpuMeter, memory, rssMB } from './proc.mjs'
import { Publisher } from './publisher.mjs'
import { median } from './stats.mjs'

// retained: store N retained messages on bench/r/<i>/x (every 1000th i), bench/r/<i>/z (every 10th i, from 5) or
// bench/r/<i>/y (the rest), then time SUBSCRIBE -> first and last retained message for a wildcard with few matches
// (bench/r/+/x, N/1000), for one with many (bench/r/+/z, N/10: the delivery rate) and for an exact topic

function retainedTopic (i) { return `bench/r/${i}/${i % 1000 === 0 ? 'x' : i % 10 === 5 ? 'z' : 'y'}` }

export async function retained (o, ctx) {
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
  const wildMatches = Math.ceil(messages / 1000)
  const bulkMatches = Math.floor((messages + 4) / 10)
  const exactTopic = k => retainedTopic(1 + Math.floor((messages - 2) * (k + 1) / (probes + 2)))
  // The first SUBSCRIBE of each kind, on a broker that has only stored so far: the cold figures, kept apart
  const cold = {
    wild: await probe(ctx.port, 'bench-retain-w-cold', 'bench/r/+/x', wildMatches, 30000),
    exact: await probe(ctx.port, 'bench-retain-e-cold', exactTopic(probes), 1, 30000),
    bulk: await probe(ctx.port, 'bench-retain-b-cold', 'bench/r/+/z', bulkMatches, 30000)
  }
  const p0 = process.hrtime.bigint()
  // the measured probes by kind, the 10,000-match ones last: their garbage is not collected during the small ones
  const wild = []
  const exact = []
  const bulk = []
  for (let k = 0; k < probes; k++) wild.push(await probe(ctx.port, `bench-retain-w${k}`, 'bench/r/+/x', wildMatches, 30000))
  for (let k = 0; k < probes; k++) exact.push(await probe(ctx.port, `bench-retain-e${k}`, exactTopic(k), 1, 30000))
  for (let k = 0; k < probes; k++) bulk.push(await probe(ctx.port, `bench-retain-b${k}`, 'bench/r/+/z', bulkMatches, 30000))
  const p1 = process.hrtime.bigint()
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
    wildAllMsMax: Math.max(...wild.map(p => p.allMs ?? Infinity)),
    bulkReceived: med(bulk, 'received'),
    bulkExpected: bulkMatches,
    bulkAllMs: med(bulk, 'allMs'),
    // SUBSCRIBE -> the last of the many matches, in msgs/s
    bulkRate: median(bulk.map(p => p.allMs === null ? null : p.received / (p.allMs / 1000))),
    exactFirstMs: med(exact, 'firstMs'),
    exactSubackMs: med(exact, 'subackMs'),
    wildSubackMs: med(wild, 'subackMs'),
    wildFirstMsMax: Math.max(...wild.map(p => p.firstMs ?? Infinity)),
    exactFirstMsMax: Math.max(...exact.map(p => p.firstMs ?? Infinity)),
    coldWildFirstMs: cold.wild.firstMs,
    coldWildAllMs: cold.wild.allMs,
    coldExactFirstMs: cold.exact.firstMs,
    coldBulkRate: cold.bulk.allMs === null ? null : cold.bulk.received / (cold.bulk.allMs / 1000),
    probes: { wild, exact, bulk, cold },
    // for run.mjs --cpu-prof: the probes (the profile of the store phase: bench/cpu-top.mjs --from/--to storeWindowUs)
    windowUs: [Number(p0 / 1000n), Number(p1 / 1000n)],
    storeWindowUs: c.windowUs
  }
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
