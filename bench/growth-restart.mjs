#!/usr/bin/env node
// Restart → ready and RSS of one or more Culex builds on the same data set, interleaved (an A/B of start-up cost).
//
//   node bench/growth.mjs --sizes 1000000 --no-single --keep /tmp/growth-data     # builds and keeps the data set
//   node bench/growth-restart.mjs --data /tmp/growth-data/many-1010000 --culex A/dist/main.js,B/dist/main.js --rounds 5
//
// Each round starts every build in turn (rotated) on a copy of the data set, reads the time from spawn to the MQTT
// port accepting and the RSS at that moment and 5 s later, and stops it. No client connects, so the data set is
// the same for every start.
import { spawn } from 'node:child_process'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { parseArgs } from 'node:util'
import { freePort, stopBroker, waitForPort } from './lib/broker-process.mjs'
import { NODE_FLAGS } from './lib/brokers.mjs'
import { repoDir } from './lib/paths.mjs'
import { cpuSeconds, rssMB } from './lib/proc.mjs'
import { median } from './lib/stats.mjs'

const { values } = parseArgs({
  options: {
    data: { type: 'string' },
    culex: { type: 'string', default: path.join(repoDir, 'dist/main.js') },
    rounds: { type: 'string', default: '3' },
    'node-args': { type: 'string', default: '' }
  }
})

async function once (main, data) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'culex-growth-restart-'))
  fs.cpSync(data, dir, { recursive: true })
  const port = await freePort()
  const args = [...NODE_FLAGS, ...values['node-args'].split(' ').filter(Boolean), main, 'start', '--mqtt-port', String(port), '--ws-port', '0',
    '--admin-port', '0', '--host', '127.0.0.1', '--data-dir', dir, '--log-level', 'warn']
  const t0 = performance.now()
  const proc = spawn(process.execPath, args, { cwd: repoDir, env: { ...process.env, CULEX_SESSIONS_MAX_TOTAL_QUEUED_MESSAGES: '0' }, stdio: 'ignore' })
  try {
    await waitForPort(port, proc, 300000, 5)
    const readyMs = performance.now() - t0
    // CPU time to ready (all threads): steadier than wall time on a machine others share
    const cpuMs = cpuSeconds(proc.pid) * 1000
    const rssReady = rssMB(proc.pid)
    await sleep(5000)
    return { readyMs, cpuMs, rssReady, rssSettled: rssMB(proc.pid) }
  } finally {
    await stopBroker(proc, 'SIGTERM', 60000)
    fs.rmSync(dir, { recursive: true, force: true })
  }
}

const builds = values.culex.split(',')
const results = builds.map(() => [])
for (let r = 0; r < Number(values.rounds); r++) {
  for (let k = 0; k < builds.length; k++) {
    const b = (k + r) % builds.length
    const m = await once(builds[b], values.data)
    results[b].push(m)
    process.stderr.write(`round ${r + 1} ${builds[b]}: ready ${m.readyMs.toFixed(0)} ms (CPU ${m.cpuMs.toFixed(0)} ms), RSS ${m.rssReady.toFixed(0)} → ${m.rssSettled.toFixed(0)} MB (load ${os.loadavg()[0].toFixed(1)})\n`)
  }
}
for (let b = 0; b < builds.length; b++) {
  const rs = results[b]
  const f = k => `${median(rs.map(x => x[k])).toFixed(0)} [${Math.min(...rs.map(x => x[k])).toFixed(0)}–${Math.max(...rs.map(x => x[k])).toFixed(0)}]`
  process.stdout.write(`${builds[b]}: ready ${f('readyMs')} ms, CPU to ready ${f('cpuMs')} ms, RSS at ready ${f('rssReady')} MB, 5 s later ${f('rssSettled')} MB\n`)
}
