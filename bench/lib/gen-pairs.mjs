// Generator: publisher/subscriber pairs spread over the nodes of a cluster, the aggregate of a cluster as it grows.
// Pair j: a persistent QoS 1 subscriber of bench/pair/<j> on node j+1 and its publisher on node j (modulo the node
// count), so with two nodes or more every message crosses nodes and each node carries the same share; with one
// node both are on it. Reports the delivered messages per second summed over the pairs.
import { awaitRoute, nodePort } from './cluster-support.mjs'
import { measureRound } from './gen-fan.mjs'
import { Client, PAYLOAD_MIN, SeqSet, closeAll, discardSession } from './mqtt.mjs'
import { Publisher } from './publisher.mjs'

export async function pairs (o, ctx) {
  const { pairs = 6, qos = 1, duration = 3, window = 64, backlog = 1000, payloadSize = 64 } = o
  const recv = Array.from({ length: pairs }, () => new SeqSet())
  const stats = { dup: 0, lastRecvAt: 0 }
  const pubs = []
  const subs = []
  const subIds = []
  for (let j = 0; j < pairs; j++) {
    const topic = `bench/pair/${j}`
    const subPort = nodePort(ctx, j + 1)
    const pubPort = nodePort(ctx, j)
    subIds.push([subPort, `bench-pair-sub-${j}${o.round ?? ''}`])
    const sub = await Client.connect(subPort, { clientId: subIds[j][1], clean: false })
    await sub.subscribe([{ topic, qos }])
    if (subPort !== pubPort) await awaitRoute(sub, pubPort, topic)
    sub.onPublish = (c, q, id, b, ts, te, ps, pe, now) => {
      if (pe - ps < PAYLOAD_MIN) return // a late route probe
      if (recv[j].add(b.readUInt32BE(ps + 2))) { stats.lastRecvAt = now; pubs[j].schedule() } else stats.dup++
    }
    subs.push(sub)
    const c = await Client.connect(pubPort, { clientId: `bench-pair-pub-${j}` })
    pubs.push(new Publisher(c, { index: j, topic, qos, payloadSize, window, backlog, minBatch: 16, ahead: () => pubs[j].sent - recv[j].count }))
  }
  const result = { nodes: (ctx.ports ?? [ctx.port]).length, ...await measureRound({ pubs, recv, stats, qos, duration, ctx }) }
  await closeAll([...subs, ...pubs.map(p => p.client)])
  if (o.round !== undefined) for (const [port, id] of subIds) await discardSession(port, id)
  return result
}
