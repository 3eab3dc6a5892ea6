#!/usr/bin/env node
// The offline drain, A/B: one or more Culex builds (and optionally mosquitto) in turn, rotated per round, each
// started fresh. Per build and round, the bench's `offline` scenario (bench/lib/gen-offline.mjs): WARM unmeasured
// rounds, then a warm drain, then a cold one (the broker stopped with SIGTERM after the messages are queued and
// started again before the reconnect). The figure is the broker's CPU time (all threads, from /proc) per drained
// message, which holds while other processes load the machine, where msgs/s does not.
//
//   ROUNDS=4 N=50000 node bench/drain-ab.mjs A/dist B/dist [mosquitto]
//   (PROF=dir: --cpu-prof for the Culex brokers; the warm and cold windows are printed for bench/cpu-top.mjs)
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { BROKERS, MOSQUITTO } from './lib/brokers.mjs'
import { freePort, startBroker, stopBroker } from './lib/broker-process.mjs'
import { offline } from './lib/gen-offline.mjs'
import { threadCpuSeconds } from './lib/proc.mjs'

const builds = process.argv.slice(2)
const fmt = (k, v) => typeof v === 'number' ? Math.round(v * 100) / 100 : v
const N = Number(process.env.N ?? 50000)
const WARM = Number(process.env.WARM ?? 2)

/** A broker definition of bench/lib/brokers.mjs for a Culex build's dist/ (the build's main.js), or mosquitto. */
function brokerFor (build) {
  if (build === 'mosquitto') return { name: 'mosquitto', def: BROKERS.mosquitto }
  const main = path.resolve(build, 'main.js')
  const cmd = (port, dir) => BROKERS.culex.cmd(port, dir).map((a, i) => i === 0 ? main : a)
  return { name: build, def: { ...BROKERS.culex, cmd } }
}

async function run (build) {
  const { def } = brokerFor(build)
  BROKERS['drain-ab'] = def
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'drainab-'))
  const port = await freePort()
  const profDir = process.env.PROF && def.node ? path.resolve(process.env.PROF) : undefined
  // NODE_ARGS: node flags for the brokers (e.g. --cpu-prof-interval=100 with PROF)
  const opts = { nodeArgs: (process.env.NODE_ARGS ?? '').split(' ').filter(Boolean) }
  let broker = await startBroker('drain-ab', port, dir, opts, profDir)
  const ctx = {
    port,
    ports: [port],
    dir,
    pid: broker.pid,
    // THREADS=1: the drain's CPU per message by thread name (main, libuv's pool, V8's helpers, LevelDB's)
    onDrain: (phase) => {
      if (process.env.THREADS === undefined) return
      const now = threadCpuSeconds(ctx.pid)
      if (phase === 'start') ctx.threads0 = now
      else ctx.threads = Object.fromEntries(Object.entries(now).map(([k, v]) => [k, (v - (ctx.threads0[k] ?? 0)) * 1e6 / N]))
    },
    restart: async (signal) => {
      await stopBroker(broker.proc, signal)
      broker = await startBroker('drain-ab', port, dir, opts, profDir)
      ctx.pid = broker.pid
      return broker.pid
    }
  }
  try {
    for (let w = 0; w < WARM; w++) await offline({ messages: N, round: `-warm-${w}` }, ctx)
    const warm = await offline({ messages: N }, ctx)
    const warmThreads = ctx.threads
    const cold = await offline({ messages: N, restart: 'SIGTERM' }, ctx)
    if (process.env.THREADS !== undefined) console.error(build, 'µs per message by thread, warm', JSON.stringify(warmThreads, fmt), 'cold', JSON.stringify(ctx.threads, fmt))
    if (profDir) console.error(`${build} warm --from ${warm.windowUs[0]} --to ${warm.windowUs[1]}; cold --from ${cold.windowUs[0]} --to ${cold.windowUs[1]}`)
    const lost = warm.lost + cold.lost + warm.pending + cold.pending
    return { warmUs: warm.drainCpuUsPerMsg, warmMainUs: warm.drainMainCpuUsPerMsg, coldUs: cold.drainCpuUsPerMsg, coldMainUs: cold.drainMainCpuUsPerMsg, warmRate: warm.drainRate, coldRate: cold.drainRate, warmFirstMs: warm.reconnectToFirstMs, coldFirstMs: cold.reconnectToFirstMs, warmAllMs: warm.reconnectToAllS * 1000, coldAllMs: cold.reconnectToAllS * 1000, lost, dup: warm.dup + cold.dup }
  } finally {
    await stopBroker(broker.proc)
    fs.rmSync(dir, { recursive: true, force: true })
  }
}

if (builds.includes('mosquitto') && !fs.existsSync(MOSQUITTO)) throw new Error(`no mosquitto at ${MOSQUITTO}`)
for (let r = 0; r < Number(process.env.ROUNDS ?? 2); r++) {
  const order = r % 2 ? [...builds].reverse() : builds
  for (const b of order) {
    const load = os.loadavg()[0].toFixed(1)
    console.log(b, JSON.stringify(await run(b), fmt), 'load', load)
  }
}
