// Generator: connection rate and memory per connection for many clean-session clients.
import { performance } from 'node:perf_hooks'
import { setTimeout as sleep } from 'node:timers/promises'
import { Client } from './mqtt.mjs'
import { CpuMeter, rssMB } from './proc.mjs'
import { median } from './stats.mjs'

// connections: N clean clients connect as fast as possible with C connects in flight, held, then closed

export async function connections (o, ctx) {
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
