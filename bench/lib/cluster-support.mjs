// What the cluster scenarios need beyond one broker: waiting until a node routes a topic to a subscriber on another
// node, and the Redis command counts of a cluster broker (its wrapper writes the Redis port into the data dir).
import fs from 'node:fs'
import net from 'node:net'
import path from 'node:path'
import { performance } from 'node:perf_hooks'
import { setTimeout as sleep } from 'node:timers/promises'
import mqttPacket from 'mqtt-packet'
import { Client, PAYLOAD_MIN } from './mqtt.mjs'

/** The port of node i of the broker under test (a single broker: its one port). */
export function nodePort (ctx, i = 0) {
  const ports = ctx.ports ?? [ctx.port]
  return ports[i % ports.length]
}

/**
 * Until a QoS 0 probe published on `pubPort` to `topic` reaches `sub` (connected and subscribed, possibly on another
 * node): a node learns another node's subscriptions a moment after the SUBACK, on both Culex and the aedes recipe.
 * The probes carry a 1-byte payload; `sub.onPublish` is restored after them, and the scenarios' handlers skip
 * payloads shorter than PAYLOAD_MIN, so a late probe is not counted.
 */
export async function awaitRoute (sub, pubPort, topic, timeoutMs = 15000) {
  const prev = sub.onPublish
  let seen = false
  sub.onPublish = (c, q, id, b, ts, te, ps, pe) => { if (pe - ps < PAYLOAD_MIN) seen = true }
  const probe = await Client.connect(pubPort, { clientId: `bench-route-probe-${process.pid}` })
  const packet = mqttPacket.generate({ cmd: 'publish', topic, payload: Buffer.from('p'), qos: 0, retain: false, dup: false })
  const t0 = performance.now()
  while (!seen) {
    if (performance.now() - t0 > timeoutMs) throw new Error(`no route to ${topic} from port ${pubPort} after ${timeoutMs} ms`)
    probe.write(packet)
    await sleep(20)
  }
  await probe.disconnect()
  await sleep(50)
  sub.onPublish = prev
}

/** `INFO commandstats` of the cluster broker's Redis as a Map command → calls, or null when it has none. */
export async function redisCalls (ctx) {
  let port
  try { port = Number(fs.readFileSync(path.join(ctx.dir ?? '', 'redis-port'), 'utf8')) } catch { return null }
  const text = await new Promise((resolve, reject) => {
    const sock = net.connect(port, '127.0.0.1')
    let buf = ''
    sock.on('data', d => {
      buf += d.toString()
      const nl = buf.indexOf('\r\n')
      if (nl > 0 && buf.length >= nl + 2 + Number(buf.slice(1, nl))) { sock.destroy(); resolve(buf.slice(nl + 2)) }
    })
    sock.once('error', reject)
    sock.write('INFO commandstats\r\n')
  })
  const calls = new Map()
  for (const m of text.matchAll(/^cmdstat_([^:]+):calls=(\d+)/gm)) calls.set(m[1], Number(m[2]))
  return calls
}

/**
 * Redis calls per message between two `redisCalls` readings: the total (commands run inside scripts count too,
 * as INFO counts them) and the five commonest, e.g. "evalsha 1.00, xadd 1.00, …". Nulls without Redis.
 */
export function callsPerMessage (before, after, messages) {
  if (!before || !after || messages <= 0) return { redisCallsPerMsg: null, redisTopCalls: null }
  const delta = []
  let total = 0
  for (const [cmd, n] of after) {
    const d = n - (before.get(cmd) ?? 0) - (cmd === 'info' ? 1 : 0)
    if (d > 0) { delta.push([cmd, d]); total += d }
  }
  delta.sort((a, b) => b[1] - a[1])
  return { redisCallsPerMsg: total / messages, redisTopCalls: delta.slice(0, 6).map(([c, d]) => `${c} ${(d / messages).toFixed(2)}`).join(', ') }
}
