#!/usr/bin/env node
// The load generator: runs one scenario against a broker on 127.0.0.1 and reports one JSON object.
//
//   node bench/gen.mjs --port 1883 --pid <broker pid> --scenario fanin --qos 1 [--persistent] [--duration 5]
//
// run.mjs forks it with an IPC channel: the scenario arrives as JSON in argv[2], the result goes back with
// process.send, and the offline-restart scenarios ask the driver to restart the broker ({type: 'restart'}).
// Standalone it prints the result on stdout (restart scenarios need the driver).
//
// The scenarios themselves are in bench/lib/gen-*.mjs; this file only parses the spec, runs the optional warm-up
// round and reports the result.
import { parseArgs } from 'node:util'
import { connections } from './lib/gen-connections.mjs'
import { fanin, fanout } from './lib/gen-fan.mjs'
import { latency } from './lib/gen-latency.mjs'
import { offline } from './lib/gen-offline.mjs'
import { pairs } from './lib/gen-pairs.mjs'
import { retained } from './lib/gen-retained.mjs'
import { shared } from './lib/gen-shared.mjs'

const round = (x, d = 0) => Number.isFinite(x) ? Math.round(x * 10 ** d) / 10 ** d : null

const scenarios = { fanin, fanout, latency, connections, offline, retained, shared, pairs }

async function main () {
  let spec
  let port
  let pid
  let ports
  let dir
  if (process.send) {
    ({ spec, port, ports, dir, pid } = JSON.parse(process.argv[2]))
  } else {
    const { values } = parseArgs({
      options: {
        port: { type: 'string' },
        pid: { type: 'string' },
        scenario: { type: 'string' },
        qos: { type: 'string' },
        persistent: { type: 'boolean' },
        duration: { type: 'string' },
        json: { type: 'string' },
        ports: { type: 'string' }
      }
    })
    spec = { kind: values.scenario, ...(values.json ? JSON.parse(values.json) : {}) }
    if (values.qos !== undefined) spec.qos = Number(values.qos)
    if (values.persistent) spec.persistent = true
    if (values.duration !== undefined) spec.duration = Number(values.duration)
    port = Number(values.port)
    pid = Number(values.pid)
    ports = values.ports ? values.ports.split(',').map(Number) : [port]
  }
  const fn = scenarios[spec.kind]
  if (!fn) throw new Error(`unknown scenario kind ${spec.kind}; one of ${Object.keys(scenarios).join(', ')}`)
  // ports: every node of a cluster broker (ports[0] === port); dir: the broker's data directory (a cluster's
  // wrapper writes its Redis port there)
  const ctx = {
    port,
    ports,
    dir,
    pid,
    restart: signal => new Promise((resolve, reject) => {
      if (!process.send) { reject(new Error('restart needs the driver (run.mjs)')); return }
      const onMsg = m => {
        if (m?.type !== 'restarted') return
        process.off('message', onMsg)
        if (m.error) reject(new Error(m.error)); else { ctx.pid = m.pid; resolve(m.pid) }
      }
      process.on('message', onMsg)
      process.send({ type: 'restart', signal })
    })
  }
  // A warm-up round (spec.warmupRound: overrides of the spec for it) runs the same load against the same broker
  // first, so the measured round sees a broker (and a generator) past JIT compilation: the steady state of a
  // long-running broker. Its headline figure is kept as `cold` so the first-round cost stays visible.
  // Its persistent sessions have their own ids (round) and are ended after it.
  const cold = spec.warmupRound ? await fn({ ...spec, ...spec.warmupRound, round: '-warm-up' }, ctx) : null
  const result = await fn(spec, ctx)
  if (cold) result.cold = cold[spec.headline ?? 'rate']
  for (const [k, v] of Object.entries(result)) if (typeof v === 'number') result[k] = round(v, 4)
  if (process.send) {
    process.send({ type: 'result', result }, () => process.exit(0))
  } else {
    process.stdout.write(JSON.stringify(result) + '\n')
    process.exit(0)
  }
}

main().catch(err => {
  if (process.send) process.send({ type: 'error', error: err.stack ?? String(err) }, () => process.exit(1))
  else { console.error(err); process.exit(1) }
})
