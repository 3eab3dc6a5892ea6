#!/usr/bin/env node
// CPU per message of the session-queue store alone (no broker, no sockets), for an A/B of store changes: the
// round trip aedes makes for an online persistent QoS 1 subscriber (enqueue, packet id, PUBACK), an offline enqueue
// and a replay, each 100,000 messages, in process CPU time (all threads), so a busy machine moves it less than wall time.
//
//   for r in 1 2 3 4; do for d in base/dist new/dist; do node bench/store-cpu-ab.mjs $d; done; done

import { mkdtempSync, rmSync } from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { pino } from 'pino'
const { openStore } = await import(path.resolve(process.argv[2], 'store/index.js'))
const limits = { maxQueuedMessages: 0, maxQueuedBytes: 0, maxTotalQueuedMessages: 0, maxTotalQueuedBytes: 0, overflowPolicy: 'dropOldest', messageExpiryMs: 0, queueQos0: false, maxRetainedMessages: 0 }
const dir = mkdtempSync(path.join(os.tmpdir(), 'hot-ab-'))
const store = await openStore({ dir, sync: false, logger: pino({ level: 'silent' }), limits })
const client = { id: 'online', clean: false }
const payload = Buffer.alloc(64, 1)
const cpu = () => { const c = process.cpuUsage(); return (c.user + c.system) / 1000 }
const total = 100000
// warm-up: the first 50,000 round trips are not measured
const run = async (from, n) => {
  const inflight = []
  for (let i = from; i < from + n; i++) {
    inflight.push((async () => {
      const packet = { cmd: 'publish', topic: 'bench/t', payload, qos: 1, retain: false, brokerId: 'b', brokerCounter: i }
      await store.outgoingEnqueueCombi([{ clientId: 'online', qos: 1 }], packet)
      await store.outgoingUpdate(client, { ...packet, messageId: (i % 65535) + 1 })
      await store.outgoingClearMessageId(client, { messageId: (i % 65535) + 1 })
    })())
    if (inflight.length >= 1000) { await Promise.all(inflight); inflight.length = 0 }
  }
  await Promise.all(inflight)
}
await run(1, 50000)
const c0 = cpu()
await run(50001, total)
const roundTripUs = (cpu() - c0) * 1000 / total
// offline enqueue then replay
const c1 = cpu()
for (let i = 0; i < total; i += 1000) {
  const batch = []
  for (let j = i; j < i + 1000; j++) batch.push(store.outgoingEnqueueCombi([{ clientId: 'offline', qos: 1 }], { cmd: 'publish', topic: 'bench/t', payload, qos: 1, retain: false, brokerId: 'b', brokerCounter: 1e6 + j }))
  await Promise.all(batch)
}
const enqueueUs = (cpu() - c1) * 1000 / total
const c2 = cpu()
let n = 0
for await (const p of store.outgoingStream({ id: 'offline' })) n++
const replayUs = (cpu() - c2) * 1000 / n
await store.close()
rmSync(dir, { recursive: true, force: true })
console.log(JSON.stringify({ roundTripUs: +roundTripUs.toFixed(2), enqueueUs: +enqueueUs.toFixed(2), replayUs: +replayUs.toFixed(2) }))
