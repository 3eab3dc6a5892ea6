#!/usr/bin/env node
// Growth: how Culex's restart, memory and drain grow with what its persistent sessions hold (issue 16).
//
//   node bench/growth.mjs                                   # 10 000 sessions; 10k, 100k, 1M queued messages
//   node bench/growth.mjs --sizes 1000000 --reps 3 --culex /path/to/dist/main.js --out bench/results/g.jsonl
//   npm run bench -- --growth                               # the same from the bench driver
//
// For every size N: a fresh Culex on an empty data directory; `sessions` persistent clients subscribe QoS 1 to
// growth/all and disconnect; N / sessions QoS 1 messages are published there (each queued for every session:
// N entries in all), and `probe` more on growth/probe, which only the first session (the probe) subscribes to.
// Everything is written through the broker. The broker is stopped (SIGTERM) and started again: restart → ready is
// spawn → the MQTT port accepting (the store is loaded before the listeners open); RSS is read at ready and 5 s
// later. Then the probe session reconnects and drains its queue (N / sessions + probe messages). The same probe
// queue alone in an otherwise empty store (one session, no other) is the single-session reference, measured the
// same way, in the same run. Other engineers share this machine: read several repetitions.
import { spawn } from 'node:child_process'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { parseArgs } from 'node:util'
import { freePort, stopBroker, waitForPort } from './lib/broker-process.mjs'
import { NODE_FLAGS } from './lib/brokers.mjs'
import { drainProbe, makeSessions, publish, ALL_TOPIC, PROBE_TOPIC } from './lib/growth-load.mjs'
import { cpuSeconds, memory, rssMB } from './lib/proc.mjs'
import { benchDir, repoDir } from './lib/paths.mjs'
import { median } from './lib/stats.mjs'

const { values } = parseArgs({
  options: {
    sizes: { type: 'string', default: '10000,100000,1000000' },
    sessions: { type: 'string', default: '10000' },
    probe: { type: 'string', default: '10000' },
    reps: { type: 'string', default: '1' },
    culex: { type: 'string', default: path.join(repoDir, 'dist/main.js') },
    single: { type: 'boolean', default: true },
    'node-args': { type: 'string', default: '' },
    'cpu-prof': { type: 'string' },
    out: { type: 'string' },
    keep: { type: 'string' }
  },
  allowNegative: true
})

const ENV = {
  CULEX_STORE_SYNC: 'false',
  CULEX_LIMITS_MAX_CONNECTIONS: '0',
  // lifted: the default bound over all queues (250 000) is below the largest size
  CULEX_SESSIONS_MAX_TOTAL_QUEUED_MESSAGES: '0'
}

async function start (port, dir, profDir) {
  const nodeArgs = [...NODE_FLAGS, ...values['node-args'].split(' ').filter(Boolean)]
  if (profDir) nodeArgs.push('--cpu-prof', `--cpu-prof-dir=${profDir}`)
  const args = [...nodeArgs, values.culex, 'start', '--mqtt-port', String(port), '--ws-port', '0', '--admin-port', '0',
    '--host', '127.0.0.1', '--data-dir', dir, '--log-level', 'warn', '--log-format', 'json']
  const log = fs.openSync(path.join(dir, 'broker.log'), 'a')
  const proc = spawn(process.execPath, args, { cwd: repoDir, env: { ...process.env, ...ENV }, stdio: ['ignore', log, log] })
  fs.closeSync(log)
  const readyMs = await waitForPort(port, proc, 300000, 5)
  return { proc, readyMs }
}

/** One data set: build it through the broker, restart, measure, drain the probe. */
async function measure (tmp, { sessions, perSession, probe, label }, profDir) {
  const dir = fs.mkdtempSync(path.join(tmp, `${label}-`))
  const port = await freePort()
  const rec = { label, sessions, perSession, probe, queued: sessions * perSession + probe }
  let broker = await start(port, dir)
  try {
    const t0 = performance.now()
    await makeSessions(port, sessions)
    rec.sessionsS = (performance.now() - t0) / 1000
    const t1 = performance.now()
    // each publish on growth/all is one batch of `sessions` entries: a few in flight keep the store busy
    rec.acked = await publish(port, ALL_TOPIC, perSession, Math.max(1, Math.min(64, Math.ceil(200000 / sessions)))) +
      await publish(port, PROBE_TOPIC, probe, 64)
    rec.publishS = (performance.now() - t1) / 1000
    rec.rssBeforeRestartMB = rssMB(broker.proc.pid)
    await stopBroker(broker.proc, 'SIGTERM', 120000)
    if (values.keep) {
      // the data set as the restart finds it, for restart-only A/B runs (bench/growth-restart.mjs) and drains by hand
      rec.kept = path.resolve(values.keep, `${label}-${rec.queued}`)
      fs.rmSync(rec.kept, { recursive: true, force: true })
      fs.cpSync(dir, rec.kept, { recursive: true })
    }
    broker = await start(port, dir, profDir)
    rec.readyMs = broker.readyMs
    // CPU to ready, all threads: what the start costs whatever else the machine runs
    rec.cpuToReadyMs = cpuSeconds(broker.proc.pid) * 1000
    rec.load = os.loadavg()[0]
    rec.rssReadyMB = rssMB(broker.proc.pid)
    await sleep(5000)
    rec.rssSettledMB = rssMB(broker.proc.pid)
    const cpu0 = cpuSeconds(broker.proc.pid)
    const drain = await drainProbe(port, perSession + probe)
    // the broker's CPU for the drain: whether a message costs more with the other sessions loaded, however busy the machine
    rec.drainCpuUsPerMsg = (cpuSeconds(broker.proc.pid) - cpu0) * 1e6 / drain.received
    Object.assign(rec, drain)
    rec.peakRssMB = memory(broker.proc.pid).hwmKB / 1024
    rec.ok = drain.received === drain.expected
  } catch (err) {
    rec.ok = false
    rec.error = String(err.message ?? err)
  } finally {
    await stopBroker(broker.proc, 'SIGTERM', 120000)
    fs.rmSync(dir, { recursive: true, force: true })
  }
  return rec
}

const fmt = (x, d = 0) => Number.isFinite(x) ? x.toLocaleString('en-US', { minimumFractionDigits: d, maximumFractionDigits: d }) : '–'

function table (records) {
  const rows = ['| queued messages (sessions × per session + probe) | restart → ready (s) | CPU to ready (s) | RSS at ready / 5 s later (MB) | probe drain (msgs/s) | single-session drain (msgs/s) | ratio | drain CPU per message, probe / single (µs) | load average |', '| --- | --- | --- | --- | --- | --- | --- | --- | --- |']
  const sizes = [...new Set(records.filter(r => r.label === 'many').map(r => r.queued))]
  for (const q of sizes) {
    const many = records.filter(r => r.label === 'many' && r.queued === q && r.ok)
    const single = records.filter(r => r.label === 'single' && r.perSession + r.probe === many[0]?.perSession + many[0]?.probe && r.ok)
    const m = k => median(many.map(r => r[k]))
    const s = median(single.map(r => r.drainRate))
    const range = k => many.length > 1 ? ` [${fmt(Math.min(...many.map(r => r[k])) / 1000, 2)}–${fmt(Math.max(...many.map(r => r[k])) / 1000, 2)}]` : ''
    const r0 = many[0]
    rows.push(`| ${fmt(q)} (${fmt(r0?.sessions)} × ${fmt(r0?.perSession)} + ${fmt(r0?.probe)}) | ${fmt(m('readyMs') / 1000, 2)}${range('readyMs')} | ${fmt(m('cpuToReadyMs') / 1000, 2)}${range('cpuToReadyMs')} | ${fmt(m('rssReadyMB'))} / ${fmt(m('rssSettledMB'))} | ${fmt(m('drainRate'))} | ${fmt(s)} | ${fmt(m('drainRate') / s, 2)} | ${fmt(m('drainCpuUsPerMsg'), 1)} / ${fmt(median(single.map(r => r.drainCpuUsPerMsg)), 1)} | ${fmt(m('load'), 1)} |`)
  }
  return rows.join('\n')
}

async function main () {
  const sizes = values.sizes.split(',').map(Number)
  const sessions = Number(values.sessions)
  const probe = Number(values.probe)
  const reps = Number(values.reps)
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'culex-growth-'))
  const out = values.out ?? path.join(benchDir, 'results', `growth-${new Date().toISOString().replace(/[:.]/g, '-').slice(0, 19)}.jsonl`)
  fs.mkdirSync(path.dirname(path.resolve(out)), { recursive: true })
  fs.writeFileSync(out, JSON.stringify({ type: 'meta', date: new Date().toISOString(), command: `node bench/growth.mjs ${process.argv.slice(2).join(' ')}`, load: os.loadavg() }) + '\n')
  const records = []
  try {
    for (let rep = 0; rep < reps; rep++) {
      for (const size of sizes) {
        const perSession = Math.round(size / sessions)
        const runs = [{ sessions, perSession, probe, label: 'many' }]
        if (values.single) runs.push({ sessions: 1, perSession, probe, label: 'single' })
        for (const run of rep % 2 === 0 ? runs : runs.reverse()) {
          const profDir = values['cpu-prof'] ? path.resolve(values['cpu-prof'], `${run.label}-${size}-r${rep + 1}`) : undefined
          const rec = { ...await measure(tmp, run, profDir), rep, size }
          records.push(rec)
          fs.appendFileSync(out, JSON.stringify(rec) + '\n')
          process.stderr.write(`[rep ${rep + 1}] ${run.label} ${fmt(rec.queued)} queued: ${rec.ok ? `ready ${fmt(rec.readyMs)} ms (CPU ${fmt(rec.cpuToReadyMs)} ms, load ${fmt(rec.load, 1)}), RSS ${fmt(rec.rssReadyMB)} → ${fmt(rec.rssSettledMB)} MB, drain ${fmt(rec.drainRate)} msgs/s (built in ${fmt(rec.sessionsS + rec.publishS, 1)} s)` : `FAILED ${rec.error ?? `${rec.received}/${rec.expected}`}`}\n`)
        }
      }
    }
  } finally {
    fs.rmSync(tmp, { recursive: true, force: true })
  }
  const md = table(records)
  fs.writeFileSync(out.replace(/\.jsonl$/, '.md'), md + '\n')
  process.stdout.write(md + '\n')
}

main().catch(err => { console.error(err); process.exit(1) })
