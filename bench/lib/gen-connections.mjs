// Generator: many idle connections held at once: connect rate, memory per connection once the broker has settled,
// idle CPU, keep-alive, and a QoS 1 latency probe through the same broker with and without them.
import { performance } from 'node:perf_hooks'
import { setTimeout as sleep } from 'node:timers/promises'
import { latency } from './gen-latency.mjs'
import { Client } from './mqtt.mjs'
import { CpuMeter, cpuSeconds, rssMB } from './proc.mjs'
import { median } from './stats.mjs'

const PINGREQ = Buffer.from([0xc0, 0])

// connections: a latency probe alone (after an unmeasured one); then N clean clients (keep alive K s, one subscription each, spread over
// `sources` source addresses 127.0.<s>.1) connect with C connects in flight and are held for H s, each sending one
// PINGREQ in the window [pingAtS, pingAtS + 10) (its keep alive runs out at 1.5 K s); the probe again while they
// are held; then they disconnect.

export async function connections (o, ctx) {
  const { clients = 19500, concurrency = 200, keepaliveS = 60, holdS = 75, pingAtS = 50, sources = 8, probe = {} } = o
  const probeSpec = { qos: 1, rate: 2000, warmup: 1, duration: 3, ...probe }
  // the first probe warms the broker's code up (unmeasured), so that both measured probes run warm code
  await latency(probeSpec, ctx)
  const alone = await latency(probeSpec, ctx)
  await sleep(1000)
  const before = rssMB(ctx.pid)
  const conns = []
  const connectMs = []
  let failed = 0
  let firstError
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
        const c = await Client.connect(ctx.port, { clientId: `bench-conn-${i}`, keepalive: keepaliveS, localAddress: `127.0.${1 + (i % sources)}.1`, timeoutMs: 30000 })
        await c.subscribe([{ topic: `bench/conn/${i}`, qos: 1 }])
        conns.push(c)
        lastAt = performance.now()
        connectMs.push(lastAt - t)
      } catch (err) {
        failed++
        firstError ??= err.message
      }
    }
  }
  await Promise.all(Array.from({ length: concurrency }, worker))
  const c = cpu.stop()
  const connectS = (lastAt - t0) / 1000
  const connectedAt = performance.now()
  const rssConnected = rssMB(ctx.pid)

  // The hold: idle CPU over [10 s, pingAtS), one PINGREQ per client spread over 10 s from pingAtS, RSS at the end.
  const pingTimers = conns.map((cl, i) => setTimeout(() => { if (!cl.closed) cl.write(PINGREQ) }, pingAtS * 1000 + (i / conns.length) * 10000))
  await sleep(Math.max(0, connectedAt + 10000 - performance.now()))
  const idle0 = cpuSeconds(ctx.pid)
  const idleT0 = performance.now()
  await sleep(Math.max(0, connectedAt + pingAtS * 1000 - performance.now()))
  const idleCpu = (cpuSeconds(ctx.pid) - idle0) / ((performance.now() - idleT0) / 1000)
  await sleep(Math.max(0, connectedAt + holdS * 1000 - performance.now()))
  for (const t of pingTimers) clearTimeout(t)
  const rssHeld = rssMB(ctx.pid)
  const dropped = conns.filter(cl => cl.closed).length

  const loaded = await latency(probeSpec, ctx)
  const droppedAfterProbe = conns.filter(cl => cl.closed).length
  await Promise.all(conns.map(cl => cl.disconnect()))
  await sleep(1000)
  const after = rssMB(ctx.pid)
  connectMs.sort((a, b) => a - b)
  return {
    clients,
    connected: conns.length,
    failed,
    firstError,
    rate: conns.length / connectS,
    brokerUsPerConnect: c.brokerCpu * c.wallS * 1e6 / Math.max(1, conns.length),
    rssBeforeMB: before,
    rssConnectedMB: rssConnected,
    rssHeldMB: rssHeld,
    rssAfterMB: after,
    kbPerConn: (rssHeld - before) * 1024 / Math.max(1, conns.length),
    kbPerConnAtConnect: (rssConnected - before) * 1024 / Math.max(1, conns.length),
    connectP50Ms: median(connectMs),
    connectP99Ms: connectMs[Math.floor(connectMs.length * 0.99)] ?? null,
    idleCpu,
    dropped: droppedAfterProbe,
    droppedDuringHold: dropped,
    probeAloneP99: alone.p99,
    probeLoadedP99: loaded.p99,
    probeLoadedP50: loaded.p50,
    probeRatio: alone.p99 > 0 ? loaded.p99 / alone.p99 : null,
    probeLost: alone.lost + loaded.lost,
    brokerCpu: c.brokerCpu,
    genCpu: c.genCpu
  }
}
