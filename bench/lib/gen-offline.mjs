// Generator: the offline queue of a persistent session, optionally across a broker restart or crash; the driver
// performs the restart (ctx.restart), since only it owns the broker process. On a cluster broker the session starts
// on node `subNode`, the messages are published on node `pubNode` and the session comes back on `reconnectNode`
// (default: all on the first node).
import { performance } from 'node:perf_hooks'
import { setTimeout as sleep } from 'node:timers/promises'
import { awaitRoute, callsPerMessage, nodePort, redisCalls } from './cluster-support.mjs'
import { settle } from './drain.mjs'
import { Client, PAYLOAD_MIN, SeqSet, discardSession } from './mqtt.mjs'
import { mainThreadCpuSeconds, rssMB, treeCpuSeconds } from './proc.mjs'
import { Publisher } from './publisher.mjs'

// offline queue: persistent subscriber, disconnect, publish N QoS 1, [restart the broker], reconnect and drain

export async function offline (o, ctx) {
  const { messages = 20000, restart = null, killDelayMs = 0, window = 64, payloadSize = 64, idleMs = 3000, maxDrainMs = 60000 } = o
  // A warm-up round (o.round) has its own session and ends it, so nothing of it reaches the measured round.
  const subId = `bench-offline-sub${o.round ?? ''}`
  const subPort = nodePort(ctx, o.subNode)
  const pubPort = nodePort(ctx, o.pubNode)
  const first = await Client.connect(subPort, { clientId: subId, clean: false })
  await first.subscribe([{ topic: 'bench/offline', qos: 1 }])
  // the publisher's node knows the subscription before the session goes offline
  if (subPort !== pubPort) await awaitRoute(first, pubPort, 'bench/offline')
  await first.disconnect()

  const calls0 = await redisCalls(ctx)
  const pc = await Client.connect(pubPort, { clientId: 'bench-offline-pub' })
  const pub = new Publisher(pc, { index: 0, topic: 'bench/offline', qos: 1, payloadSize, window })
  const enqueueCpu0 = treeCpuSeconds(ctx.pid).total
  const enqueueMain0 = mainThreadCpuSeconds(ctx.pid)
  const e0 = process.hrtime.bigint()
  pub.start(messages)
  const enqueued = await settle({ done: () => pub.ackedCount === messages, progress: () => pub.ackedCount, idleMs: 10000 })
  const enqueueCpuS = treeCpuSeconds(ctx.pid).total - enqueueCpu0
  const enqueueMainCpuS = mainThreadCpuSeconds(ctx.pid) - enqueueMain0
  const enqueueWindowUs = [Number(e0 / 1000n), Number(process.hrtime.bigint() / 1000n)] // for run.mjs --cpu-prof
  const enqueueRate = pub.ackedCount / ((pub.lastAckAt - pub.firstSendAt) / 1000)
  const queuedRssMB = rssMB(ctx.pid)
  const calls1 = await redisCalls(ctx)
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
  let firstRecvAt = 0
  const cpu0 = treeCpuSeconds(ctx.pid).total
  const main0 = mainThreadCpuSeconds(ctx.pid)
  ctx.onDrain?.('start')
  const t0 = performance.now()
  const h0 = process.hrtime.bigint()
  const reconnect = () => Client.connect(nodePort(ctx, o.reconnectNode ?? o.subNode), {
    clientId: subId,
    clean: false,
    init: c => {
      c.onPublish = (cl, q, id, b, ts, te, ps, pe, now) => {
        if (pe - ps < PAYLOAD_MIN) return // a late route probe
        if (recv.add(b.readUInt32BE(ps + 2))) {
          lastRecvAt = now
          if (firstRecvAt === 0) firstRecvAt = now
        } else dup++
      }
    }
  })
  const sub = await reconnect()
  const sessionPresent = sub.sessionPresent
  const drained = await settle({ done: () => recv.count >= messages, progress: () => recv.count, idleMs, maxMs: maxDrainMs })
  const tEnd = recv.count >= messages ? lastRecvAt : performance.now()
  // Stopped by the time cap while messages were still arriving: the rest is pending, not lost.
  const timedOut = drained === 'cap'
  const windowUs = [Number(h0 / 1000n), Number(process.hrtime.bigint() / 1000n)] // the drain, for run.mjs --cpu-prof
  const drainCpuS = treeCpuSeconds(ctx.pid).total - cpu0
  const drainMainCpuS = mainThreadCpuSeconds(ctx.pid) - main0
  ctx.onDrain?.('end')
  const calls2 = await redisCalls(ctx)
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
    // from the reconnect to the first queued message: the CONNECT, the session's restore and the replay's first read
    reconnectToFirstMs: firstRecvAt === 0 ? null : firstRecvAt - t0,
    drainRate: recv.count === 0 ? 0 : recv.count / ((lastRecvAt - t0) / 1000),
    timedOut,
    lost,
    pending,
    dup,
    drainCpuUsPerMsg: recv.count > 0 ? drainCpuS * 1e6 / recv.count : null,
    // the broker's CPU (all its threads) from the first publish to the last PUBACK, per message acknowledged
    enqueueCpuUsPerMsg: pub.ackedCount > 0 ? enqueueCpuS * 1e6 / pub.ackedCount : null,
    enqueueMainCpuUsPerMsg: pub.ackedCount > 0 ? enqueueMainCpuS * 1e6 / pub.ackedCount : null,
    enqueueWindowUs,
    // the JavaScript thread alone (0 for a cluster broker's wrapper): what bounds a node broker's rate
    drainMainCpuUsPerMsg: recv.count > 0 ? drainMainCpuS * 1e6 / recv.count : null,
    redisCallsEnqueue: callsPerMessage(calls0, calls1, pub.ackedCount).redisCallsPerMsg,
    redisCallsDrain: callsPerMessage(calls1, calls2, recv.count).redisCallsPerMsg,
    windowUs
  }
  await sub.disconnect()
  if (o.secondConnect && missing > 0) {
    // what did not come after the reconnect: stranded in the queue (a later CONNECT gets it) or gone?
    const before = recv.count
    const again = await reconnect()
    await settle({ done: () => recv.count >= messages, progress: () => recv.count, idleMs })
    result.secondConnectReceived = recv.count - before
    await again.disconnect()
  }
  if (o.round !== undefined) await discardSession(subPort, subId)
  return result
}
