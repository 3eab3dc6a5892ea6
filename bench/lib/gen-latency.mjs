// Generator: publish -> deliver latency at a fixed rate, timed with the generator's own clock (the send time is in
// the payload), so broker and generator clocks never need to agree.
import { performance } from 'node:perf_hooks'
import { lossOf, settle } from './drain.mjs'
import { Client, SeqSet, closeAll } from './mqtt.mjs'
import { CpuMeter } from './proc.mjs'
import { Publisher } from './publisher.mjs'

// latency: 1 -> 1 at a fixed rate, publish -> deliver time measured with the generator's clock

export async function latency (o, ctx) {
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
