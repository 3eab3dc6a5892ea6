// Holds N idle clients on a running broker and prints, every 5 s, its RSS per connection (against its RSS before
// the first client), its CPU and, for Culex, its heap: how the memory of held connections settles once the garbage
// of the connect burst is collected. The clients are the connections scenario's (clean, keep alive 60 s, one QoS 1
// subscription each, from 8 source addresses); no PINGREQ, so hold less than 90 s.
//   node bench/hold-connections.mjs --port P --pid PID [--clients 5000] [--hold 60] [--admin-port A]
import { parseArgs } from 'node:util'
import { setTimeout as sleep } from 'node:timers/promises'
import { Client } from './lib/mqtt.mjs'
import { cpuSeconds, rssMB } from './lib/proc.mjs'

const { values } = parseArgs({ options: { port: { type: 'string' }, pid: { type: 'string' }, clients: { type: 'string', default: '5000' }, hold: { type: 'string', default: '60' }, 'admin-port': { type: 'string' } } })
const port = Number(values.port)
const pid = Number(values.pid)
const n = Number(values.clients)
const holdS = Number(values.hold)

async function heapMB () {
  if (values['admin-port'] === undefined) return {}
  const text = await (await fetch(`http://127.0.0.1:${values['admin-port']}/metrics`)).text()
  const read = name => Number(text.split('\n').find(l => l.startsWith(name + ' '))?.split(' ')[1]) / 2 ** 20
  return { heapUsedMB: read('nodejs_heap_size_used_bytes').toFixed(1), heapTotalMB: read('nodejs_heap_size_total_bytes').toFixed(1) }
}

const before = rssMB(pid)
const conns = []
let next = 0
let failed = 0
const cpu0 = cpuSeconds(pid)
const t0 = Date.now()
await Promise.all(Array.from({ length: 200 }, async () => {
  while (next < n) {
    const i = next++
    try {
      const c = await Client.connect(port, { clientId: `hold-${i}`, keepalive: 60, localAddress: `127.0.${1 + (i % 8)}.1`, timeoutMs: 30000 })
      await c.subscribe([{ topic: `hold/${i}/cmd`, qos: 1 }])
      conns.push(c)
    } catch { failed++ }
  }
}))
const wallS = (Date.now() - t0) / 1000
console.log(JSON.stringify({ connected: conns.length, failed, connectsPerS: Math.round(conns.length / wallS), brokerUsPerConnect: Math.round((cpuSeconds(pid) - cpu0) * 1e6 / conns.length), rssBeforeMB: before.toFixed(1) }))
for (let t = 5; t <= holdS; t += 5) {
  const c0 = cpuSeconds(pid)
  await sleep(5000)
  const rss = rssMB(pid)
  console.log(JSON.stringify({ t, kbPerConn: ((rss - before) * 1024 / conns.length).toFixed(2), rssMB: rss.toFixed(1), cpu: ((cpuSeconds(pid) - c0) / 5).toFixed(3), closed: conns.filter(c => c.closed).length, ...(await heapMB()) }))
}
for (const c of conns) c.destroy()
