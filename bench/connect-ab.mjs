#!/usr/bin/env node
// Connection set-up, A/B: one or more Culex builds in turn (rotated per round), each fresh. Per build: WARM clients
// connect, subscribe and disconnect unmeasured (the code compiled, the heap grown); then N clean clients as the
// connections scenario makes them (keep alive 60 s, one QoS 1 subscription each, 8 source addresses, 200 in
// flight) connect and subscribe, and then disconnect. The broker's CPU time per connect and per disconnect (from
// /proc, so it holds while other processes load the machine, where connects/s does not), connects/s, and the
// broker's socket writes per connect.
//
//   ROUNDS=3 N=3000 node bench/connect-ab.mjs A/dist/main.js B/dist/main.js[@--node-flag,...] [bench/ref/aedes-server.mjs]
//   (PROF=dir: --cpu-prof)
import { spawn } from 'node:child_process'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { performance } from 'node:perf_hooks'
import { freePort, stopBroker, waitForPort } from './lib/broker-process.mjs'
import { Client } from './lib/mqtt.mjs'
import { cpuSeconds } from './lib/proc.mjs'

const mains = process.argv.slice(2)
const N = Number(process.env.N ?? 3000)
const WARM = Number(process.env.WARM ?? 1000)
const syscw = pid => Number(/syscw: (\d+)/.exec(fs.readFileSync(`/proc/${pid}/io`, 'utf8'))[1])

async function connectAll (port, prefix, n) {
  const conns = []
  let next = 0
  await Promise.all(Array.from({ length: 200 }, async () => {
    while (next < n) {
      const i = next++
      const c = await Client.connect(port, { clientId: `${prefix}-${i}`, keepalive: 60, localAddress: `127.0.${1 + (i % 8)}.1`, timeoutMs: 30000 })
      await c.subscribe([{ topic: `${prefix}/${i}/cmd`, qos: 1 }])
      conns.push(c)
    }
  }))
  return conns
}

async function run (build) {
  // BUILD@FLAG,FLAG: node flags for that build's broker (e.g. dist/main.js@--single-threaded-gc)
  const [main, flags = ''] = build.split('@')
  const nodeArgs = flags === '' ? [] : flags.split(',')
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'connab-'))
  const port = await freePort()
  const prof = process.env.PROF ? ['--cpu-prof', '--cpu-prof-interval', '200', '--cpu-prof-dir=' + process.env.PROF] : []
  // bench/ref/aedes-server.mjs: bare aedes, for the floor under Culex's figures
  const args = main.endsWith('aedes-server.mjs') ? ['--port', String(port)] : ['start', '--mqtt-port', String(port), '--ws-port', '0', '--admin-port', '0', '--host', '127.0.0.1', '--data-dir', dir, '--log-level', 'warn']
  const proc = spawn(process.execPath, [...nodeArgs, ...prof, main, ...args], { stdio: 'ignore', env: { ...process.env, CULEX_LIMITS_MAX_CONNECTIONS: '0' } })
  await waitForPort(port, proc)
  for (const c of await connectAll(port, 'warm', WARM)) await c.disconnect()
  const w0 = syscw(proc.pid)
  const c0 = cpuSeconds(proc.pid)
  const t0 = performance.now()
  const from = process.hrtime.bigint() / 1000n
  const conns = await connectAll(port, 'ab', N)
  const to = process.hrtime.bigint() / 1000n
  const wallS = (performance.now() - t0) / 1000
  const c1 = cpuSeconds(proc.pid)
  const w1 = syscw(proc.pid)
  await Promise.all(conns.map(c => c.disconnect()))
  // the broker's close handling runs after the client saw its socket close: wait until its CPU stops moving
  let last = cpuSeconds(proc.pid)
  for (;;) {
    await new Promise(resolve => setTimeout(resolve, 300))
    const now = cpuSeconds(proc.pid)
    if (now === last) break
    last = now
  }
  await stopBroker(proc)
  fs.rmSync(dir, { recursive: true, force: true })
  // the window of the connects on the clock V8 stamps a profile with: bench/cpu-top.mjs --from --to
  if (process.env.PROF) console.error(`connects --from ${from} --to ${to}`)
  return { connectUs: (c1 - c0) * 1e6 / N, disconnectUs: (last - c1) * 1e6 / N, connectsPerS: N / wallS, writesPerConnect: (w1 - w0) / N }
}

for (let r = 0; r < Number(process.env.ROUNDS ?? 2); r++) {
  const order = r % 2 ? [...mains].reverse() : mains
  for (const m of order) {
    const x = await run(m)
    console.log(m.includes('aedes-server.mjs') ? 'aedes' : m.split('/').slice(-3, -2)[0], m.split('@')[1] ?? '', JSON.stringify(x, (k, v) => typeof v === 'number' ? Math.round(v * 10) / 10 : v), 'load', os.loadavg()[0].toFixed(1))
  }
}
