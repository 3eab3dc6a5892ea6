#!/usr/bin/env node
// Retained delivery, A/B: one or more Culex builds in turn (rotated per round), each fresh, with 100,000 retained
// messages stored as the bench's retained scenario stores them; then SUBSCRIBE probes on fresh clients: 20 matching
// 100 (bench/r/+/x) and BULK (default 5) matching 10,000 (bench/r/+/z). Per probe kind: the broker's socket writes
// (syscw of /proc/<pid>/io) and CPU per probe, the median ms from SUBSCRIBE to the first and last message. These
// counts hold on a machine others share, where the times do not.
//
//   ROUNDS=3 BULK=10 node bench/retained-ab.mjs A/dist/main.js B/dist/main.js      (PROF=dir: --cpu-prof)
import { spawn } from 'node:child_process'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { performance } from 'node:perf_hooks'
import { freePort, stopBroker, waitForPort } from './lib/broker-process.mjs'
import { settle } from './lib/drain.mjs'
import { Client, PublishTemplate } from './lib/mqtt.mjs'
import { cpuSeconds } from './lib/proc.mjs'
import { Publisher } from './lib/publisher.mjs'
import { median } from './lib/stats.mjs'
const [mainA, mainB] = process.argv.slice(2)
const N = 100000
const topic = i => `bench/r/${i}/${i % 1000 === 0 ? 'x' : i % 10 === 5 ? 'z' : 'y'}`
const syscw = pid => Number(/syscw: (\d+)/.exec(fs.readFileSync(`/proc/${pid}/io`, 'utf8'))[1])
async function probe (port, id, filter, expected) {
  let n = 0; let last = 0; let first = 0
  const c = await Client.connect(port, { clientId: id, noDelay: true, init: cl => { cl.onPublish = (x, q, i, b, ts, te, ps, pe, now) => { n++; last = now; if (!first) first = now } } })
  const t0 = performance.now()
  await c.subscribe([{ topic: filter, qos: 0 }])
  await settle({ done: () => n >= expected, progress: () => n, idleMs: 2000, maxMs: 30000 })
  await c.disconnect()
  return { n, allMs: last - t0, firstMs: first - t0 }
}
async function run (main) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'retab-'))
  const port = await freePort()
  const proc = spawn(process.execPath, [...(process.env.PROF ? ['--cpu-prof', '--cpu-prof-dir=' + process.env.PROF] : []), main, 'start', '--mqtt-port', String(port), '--ws-port', '0', '--admin-port', '0', '--host', '127.0.0.1', '--data-dir', dir, '--log-level', 'warn'], { stdio: 'ignore', env: { ...process.env, CULEX_RETAINED_MAX_MESSAGES: '0' } })
  await waitForPort(port, proc)
  const pc = await Client.connect(port, { clientId: 'pub' })
  const pub = new Publisher(pc, { index: 0, topic: 'bench/r/0/x', qos: 1, retain: true, window: 256 })
  pub.topicFor = seq => new PublishTemplate({ topic: topic(seq), qos: 1, payloadSize: 64, retain: true })
  const c0 = cpuSeconds(proc.pid)
  pub.start(N)
  await settle({ done: () => pub.ackedCount === N, progress: () => pub.ackedCount, idleMs: 10000, maxMs: 300000 })
  const storeRate = N / ((pub.lastAckAt - pub.firstSendAt) / 1000)
  const storeCpuUs = (cpuSeconds(proc.pid) - c0) * 1e6 / N
  await pc.disconnect()
  await probe(port, 'sync', topic(N - 1), 1)
  const res = { storeRate, storeCpuUs }
  console.error('probes from', Number(process.hrtime.bigint() / 1000n))
  for (const [kind, filter, expected, k] of [['wild', 'bench/r/+/x', 100, 20], ['bulk', 'bench/r/+/z', 10000, Number(process.env.BULK ?? 5)]]) {
    const w0 = syscw(proc.pid); const cpu0 = cpuSeconds(proc.pid)
    const ps = []
    for (let i = 0; i < k; i++) ps.push(await probe(port, `${kind}${i}`, filter, expected))
    res[kind] = { writesPerProbe: (syscw(proc.pid) - w0) / k, cpuMsPerProbe: (cpuSeconds(proc.pid) - cpu0) * 1000 / k, allMs: median(ps.map(p => p.allMs)), firstMs: median(ps.map(p => p.firstMs)) }
  }
  await stopBroker(proc)
  fs.rmSync(dir, { recursive: true, force: true })
  return res
}
for (let r = 0; r < Number(process.env.ROUNDS ?? 2); r++) {
  for (const m of r % 2 ? [mainB, mainA] : [mainA, mainB]) {
    const x = await run(m)
    console.log(m.split('/').slice(-3, -2)[0], JSON.stringify(x, (k, v) => typeof v === 'number' ? Math.round(v * 100) / 100 : v), 'load', os.loadavg()[0].toFixed(1))
  }
}
