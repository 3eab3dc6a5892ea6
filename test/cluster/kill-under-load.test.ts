import { describe, it } from 'vitest'
import { Redis } from 'ioredis'
import type { RunningCli } from '../helpers/cli.js'
import { connectClient, endClient, sleep, waitFor, type TestClient } from '../helpers/clients.js'
import { cliNode, prng, STEADY_ENV, useCliNodes, useCluster } from './support.js'

const { redis } = useCluster()
const { newDir } = useCliNodes()

/** Seeds run by default; CULEX_CHURN_SEEDS=101,102,... (or a count, CULEX_CHURN_SEEDS=20) runs others. */
function seeds (): number[] {
  const given = process.env.CULEX_CHURN_SEEDS ?? '3'
  if (/^\d+$/.test(given)) return Array.from({ length: Number(given) }, (_, i) => 1 + i)
  return given.split(',').map(Number)
}

type Qos = 1 | 2
interface Role { id: string, qos: Qos, v5: boolean, node: number, client?: TestClient }
/** What a subscriber got, in order: [publisher, number] of each message handed to the application. */
type Got = Array<[string, number]>

const WINDOW = 8
/**
 * Heartbeats as a deployment would have them, faster: with support.ts's 100/600 ms a survivor busy with the load
 * on this 2-core machine misses its renewal now and then and is taken for dead as well (the split-brain case).
 */
const TIMING = STEADY_ENV

/**
 * An mqtt.js client on node `at` that reconnects (as mqtt.js does, trying the servers in turn) to the other nodes,
 * with a persistent session and a will naming it.
 */
async function churnClient (nodes: RunningCli[], at: number, role: Role, seed: number): Promise<TestClient> {
  const servers = [at, ...nodes.keys()].filter((n, i, all) => all.indexOf(n) === i).map(n => ({ host: '127.0.0.1', port: nodes[n].ports.mqtt }))
  return await connectClient(`mqtt://127.0.0.1:${nodes[at].ports.mqtt}`, {
    clientId: role.id,
    clean: false,
    servers,
    reconnectPeriod: 100,
    protocolVersion: role.v5 ? 5 : 4,
    ...(role.v5 ? { properties: { sessionExpiryInterval: 3600 } } : {}),
    will: { topic: `wills/${seed}/${role.id}`, payload: Buffer.from(role.id), qos: 1, retain: false }
  })
}

/**
 * Publishes numbered messages with up to WINDOW unacknowledged until `stop()` or a publish fails (once the clients are
 * closed every publish fails at once, so a case that ended early would otherwise loop for ever); `acked` gets each
 * PUBACK/PUBCOMP'd number.
 */
async function publishUntil (client: TestClient, topic: string, qos: Qos, stop: () => boolean, acked: number[], failed: string[]): Promise<number> {
  const window = new Set<Promise<void>>()
  let next = 0
  while (!stop() && failed.length === 0) {
    const n = next++
    const sent: Promise<void> = new Promise<void>(resolve => {
      client.publish(topic, String(n), { qos }, err => {
        if (err === undefined || err === null) acked.push(n)
        else failed.push(`${topic} ${n}: ${err.message}`)
        resolve()
      })
    }).finally(() => window.delete(sent))
    window.add(sent)
    if (window.size >= WINDOW) await Promise.race(window)
  }
  await Promise.all(window)
  return next
}

/** `pub:3 pub:4 pub:5 pub:9` as `pub:3-5,9`. */
function ranges (ids: string[]): string {
  const out: string[] = []
  for (const id of ids) {
    const [from, n] = [id.slice(0, id.lastIndexOf(':')), Number(id.slice(id.lastIndexOf(':') + 1))]
    const last = out.at(-1)
    const m = last === undefined ? null : /^(.*):(\d+)(?:-(\d+))?$/.exec(last)
    if (m !== null && m[1] === from && Number(m[3] ?? m[2]) === n - 1) out[out.length - 1] = `${from}:${m[2]}-${n}`
    else out.push(`${from}:${n}`)
  }
  return out.join(' ')
}

/** How many entries the session's queue in Redis holds (docs/store.md, `q:<client>`). */
async function queued (clientId: string): Promise<number> {
  const r = new Redis(redis().url)
  try {
    return await r.zcard(`culex:q:${clientId}`)
  } finally {
    r.disconnect()
  }
}

async function churn (seed: number): Promise<void> {
  const random = prng(seed)
  const pick = (n: number): number => Math.floor(random() * n)
  const nodes = await Promise.all([0, 1, 2].map(async i => await cliNode(redis().url, `s${seed}-n${i}`, await newDir(), TIMING)))
  const publishers: Role[] = [
    { id: `s${seed}-pub-q1-v4`, qos: 1, v5: false, node: pick(3) },
    { id: `s${seed}-pub-q2-v4`, qos: 2, v5: false, node: pick(3) },
    { id: `s${seed}-pub-q1-v5`, qos: 1, v5: true, node: pick(3) },
    { id: `s${seed}-pub-q2-v5`, qos: 2, v5: true, node: pick(3) }
  ]
  // on the nodes the seed picks: a subscriber may share its node with a publisher, or be the only client of one
  const subscribers: Role[] = [
    { id: `s${seed}-sub-q1-v4`, qos: 1, v5: false, node: pick(3) },
    { id: `s${seed}-sub-q2-v4`, qos: 2, v5: false, node: pick(3) },
    { id: `s${seed}-sub-q1-v5`, qos: 1, v5: true, node: pick(3) },
    { id: `s${seed}-sub-q2-v5`, qos: 2, v5: true, node: pick(3) }
  ]
  const used = [...new Set([...publishers, ...subscribers].map(r => r.node))]
  const victim = used[pick(used.length)]
  const survivors = [0, 1, 2].filter(n => n !== victim)
  const context = `seed ${seed}: publishers on ${publishers.map(p => p.node).join(',')}, subscribers on ${subscribers.map(s => s.node).join(',')}, node ${victim} killed`

  const watcher = await connectClient(`mqtt://127.0.0.1:${nodes[survivors[pick(2)]].ports.mqtt}`, { clientId: `s${seed}-watcher` })
  await watcher.subscribeAsync(`wills/${seed}/#`, { qos: 1 })
  const got = new Map<string, Got>()
  for (const s of subscribers) {
    const list: Got = []
    got.set(s.id, list)
    s.client = await churnClient(nodes, s.node, s, seed)
    s.client.on('message', (topic, payload) => {
      const [, , from] = topic.split('/')
      if (from !== 'probe') list.push([from, Number(payload.toString())])
    })
    await s.client.subscribeAsync(`load/${seed}/#`, { qos: s.qos })
  }
  for (const p of publishers) p.client = await churnClient(nodes, p.node, p, seed)
  // every node routes to every subscriber before the count starts
  for (const p of publishers) await p.client?.publishAsync(`load/${seed}/probe/${p.id}`, 'probe', { qos: 1 })
  await waitFor(() => subscribers.every(s => s.client?.received.filter(m => m.topic.includes('/probe/')).length === publishers.length), `every probe on every subscriber (${context})`)

  let stopped = false
  const acked = new Map(publishers.map(p => [p.id, [] as number[]]))
  const failed: string[] = []
  const running = publishers.map(async p => await publishUntil(p.client as TestClient, `load/${seed}/${p.id}`, p.qos, () => stopped, acked.get(p.id) as number[], failed))
  const total = (): number => [...acked.values()].reduce((sum, a) => sum + a.length, 0)
  // mid-stream: after some hundreds of acknowledged messages
  const killAfter = 200 + pick(400)
  await waitFor(() => total() >= killAfter, `${killAfter} acknowledged before the kill (${context})`, 15_000)
  const onVictim = [...publishers, ...subscribers].filter(r => r.node === victim)
  let back = 0
  for (const r of onVictim) r.client?.once('close', () => r.client?.once('connect', () => { back++ }))
  await nodes[victim].kill9()
  // its clients reconnect to the other nodes; the publishers go on meanwhile and for a while after
  await waitFor(() => back === onVictim.length, `the victim's clients reconnected (${context})`, 10_000)
  // from now on no subscriber connects again: what it gets comes on the connection it has
  const reconnections = new Map(subscribers.map(s => [s.id, 0]))
  for (const s of subscribers) s.client?.on('connect', () => reconnections.set(s.id, (reconnections.get(s.id) ?? 0) + 1))
  const after = total()
  await waitFor(() => total() >= after + 300, `300 more acknowledged after the reconnection (${context})`, 15_000)
  stopped = true
  await Promise.all(running)

  const missing = (s: Role): string[] => publishers.flatMap(p => {
    const have = new Set((got.get(s.id) as Got).filter(([from]) => from === p.id).map(([, n]) => n))
    return (acked.get(p.id) as number[]).filter(n => !have.has(n)).map(n => `${p.id}:${n}`)
  })
  // a resumed session gets what other nodes queued for it before they had read its filters (docs/cluster.md, "How
  // messages travel": the holder of a session)
  await waitFor(() => subscribers.every(s => missing(s).length === 0), 'every acknowledged message on every subscriber', 10_000).catch(() => {})
  // the wills of the victim's clients, once each, by a survivor
  await waitFor(() => watcher.received.length >= onVictim.length, "the wills of the victim's clients", 8000).catch(() => {})
  const wills = watcher.received.map(m => m.payload).sort()
  // room for a duplicate to show
  await sleep(500)

  const problems = [...failed]
  for (const s of subscribers) {
    const lost = missing(s)
    if (lost.length > 0) problems.push(`${s.id} (node ${s.node}) lacks ${lost.length} acknowledged: ${ranges(lost)}; its queue in Redis holds ${await queued(s.id)}`)
    if ((reconnections.get(s.id) ?? 0) > 0) problems.push(`${s.id} reconnected ${String(reconnections.get(s.id))} times after the victim's clients were back (what it got may have come with a replay)`)
    const list = got.get(s.id) as Got
    for (const p of publishers) {
      const numbers = list.filter(([from]) => from === p.id).map(([, n]) => n)
      // in the order published: each message's first arrival after the one before
      const firsts = numbers.filter((n, i) => numbers.indexOf(n) === i)
      const behind = firsts.filter((n, i) => i > 0 && n < firsts[i - 1])
      if (behind.length > 0) problems.push(`${s.id} got ${p.id}'s messages out of order: ${behind.join(',')}`)
      const twice = numbers.filter((n, i) => numbers.indexOf(n) !== i)
      // a QoS 2 publisher on the killed node too: its resend to a survivor finds the record written with the queue
      // entries and the other nodes' stream entries
      if (s.qos === 2 && p.qos === 2 && twice.length > 0) problems.push(`${s.id} got ${p.id}'s QoS 2 messages twice: ${ranges(twice.map(n => `${p.id}:${n}`))}`)
    }
  }
  const expected = onVictim.map(r => r.id).sort()
  if (wills.join() !== expected.join()) problems.push(`wills published: ${wills.join(',')}; expected once each: ${expected.join(',')}`)
  if (problems.length > 0) {
    const warnings = survivors.flatMap(n => nodes[n].logs.filter(l => (l.level ?? 0) >= 40).map(l => `node ${n}: ${String(l.msg)} ${JSON.stringify({ ...l, msg: undefined, time: undefined, pid: undefined, hostname: undefined })}`))
    throw new Error(`${context}:\n${problems.join('\n')}\nwarnings of the survivors:\n${warnings.join('\n')}`)
  }
  for (const r of [...publishers, ...subscribers]) await endClient(r.client as TestClient)
  await endClient(watcher)
  for (const n of survivors) await nodes[n].stop()
}

describe('kill -9 of a node under load across three nodes', () => {
  it(`loses nothing acknowledged, keeps each publisher's order, delivers QoS 2 once (from every publisher, the killed node's included) and publishes the killed node's clients' wills once (seeds ${seeds().join(',')})`, async () => {
    for (const seed of seeds()) await churn(seed)
  }, 40_000 * seeds().length)
})
