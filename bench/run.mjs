#!/usr/bin/env node
// Culex benchmark driver. Starts every broker fresh for every run (empty data dir, free port), runs one scenario
// with the load generator (bench/gen.mjs, a child process), stops the broker, and interleaves the brokers within
// each repetition, rotating their order. Prints markdown tables: medians with [min–max] and ratios vs bare aedes
// (aedes-mem) and vs mosquitto, then the targets with PASS / MISS.
//
//   npm run bench                                  # all scenarios, default brokers, 3 repetitions (~15 min)
//   npm run bench -- --quick                       # smoke run, short durations, 1 repetition (~3 min)
//   npm run bench -- --growth [growth.mjs options]  # 10k sessions, 10k → 1M queued messages (bench/growth.mjs)
//   npm run bench -- --cluster                     # the cluster scenarios (Culex and the aedes recipe on Redis)
//   node bench/run.mjs --scenarios fanin-q1-persist,offline-kill --brokers culex,aedes-mem --reps 5
//   node bench/run.mjs --report bench/results/run-….jsonl   # re-render tables from raw results
//
//
// The pieces live in bench/lib/: brokers.mjs (what runs), scenarios.mjs (what is measured), run-one.mjs and
// broker-process.mjs (one measurement), report*.mjs and targets.mjs (the tables).
import { spawn, spawnSync } from 'node:child_process'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { parseArgs } from 'node:util'
import { killRunningBrokers } from './lib/broker-process.mjs'
import { BROKERS, MOSQUITTO, snapshotCulex } from './lib/brokers.mjs'
import { machineFacts } from './lib/machine-facts.mjs'
import { benchDir, repoDir } from './lib/paths.mjs'
import { render, summarizeRecord } from './lib/report.mjs'
import { runOne } from './lib/run-one.mjs'
import { scenarioTable } from './lib/scenarios.mjs'

function rotate (list, k) {
  const n = list.length
  return list.map((_, i) => list[(i + k) % n])
}

async function main () {
  if (process.argv.includes('--growth')) {
    // the growth benchmark has its own driver (a data set of a million queued messages, restarts): bench/growth.mjs
    const args = process.argv.slice(2).filter(a => a !== '--growth')
    const child = spawn(process.execPath, [path.join(benchDir, 'growth.mjs'), ...args], { stdio: 'inherit' })
    process.exitCode = await new Promise(resolve => child.on('exit', code => resolve(code ?? 1)))
    return
  }
  const { values } = parseArgs({
    options: {
      reps: { type: 'string' },
      scenarios: { type: 'string' },
      brokers: { type: 'string' },
      quick: { type: 'boolean', default: false },
      out: { type: 'string' },
      report: { type: 'string', multiple: true },
      'node-args': { type: 'string', default: '' },
      keep: { type: 'boolean', default: false },
      'cpu-prof': { type: 'string' },
      'culex-dist': { type: 'string' },
      cluster: { type: 'boolean', default: false },
      help: { type: 'boolean', short: 'h' }
    }
  })
  const specs = scenarioTable(values.quick)
  if (values.help) {
    process.stdout.write(`node bench/run.mjs [--reps 3] [--quick] [--cluster] [--scenarios a,b] [--brokers x,y] [--out file.jsonl] [--node-args "..."] [--cpu-prof DIR] [--culex-dist DIR] [--keep]
node bench/run.mjs --report file.jsonl [--report more.jsonl]

scenarios: ${Object.keys(specs).join(', ')}
brokers:   ${Object.keys(BROKERS).join(', ')} (default: culex, aedes-mem, aedes-level, mosquitto; culex-sync is added
           to the scenarios where fsync matters: ${Object.entries(specs).filter(([, s]) => s.sync).map(([n]) => n).join(', ')};
           the cluster scenarios (${Object.keys(specs).filter(n => specs[n].cluster).join(', ')}) run on the cluster
           brokers only: ${Object.keys(BROKERS).filter(b => BROKERS[b].cluster).join(', ')})
--cluster: the cluster scenarios, and fanin-q1-persist on culex and culex-redis (one node, LevelDB against Redis)
`)
    return
  }
  const allBrokers = Object.keys(BROKERS)
  if (values.report) {
    const records = values.report.flatMap(f => fs.readFileSync(f, 'utf8').split('\n').filter(Boolean).map(l => JSON.parse(l)))
    const meta = records.find(r => r.type === 'meta')
    const end = records.find(r => r.type === 'meta-end')
    if (meta && end) Object.assign(meta, { wallS: end.wallS, loadEnd: end.loadEnd })
    process.stdout.write(render(records.filter(r => !r.type?.startsWith('meta')), meta?.specs ?? specs, allBrokers, meta) + '\n')
    return
  }

  const reps = Number(values.reps ?? (values.quick ? 1 : 3))
  const clusterNames = Object.keys(specs).filter(n => specs[n].cluster)
  const scenarioNames = values.scenarios ? values.scenarios.split(',') : values.cluster ? ['fanin-q1-persist', ...clusterNames] : Object.keys(specs)
  for (const s of scenarioNames) if (!specs[s]) throw new Error(`unknown scenario ${s}; one of ${Object.keys(specs).join(', ')}`)
  const explicit = values.brokers !== undefined
  let brokers = explicit
    ? values.brokers.split(',')
    : values.cluster ? ['culex', 'culex-redis', 'culex-cluster', 'aedes-cluster'] : ['culex', 'culex-sync', 'aedes-mem', 'aedes-level', 'mosquitto', 'culex-cluster', 'aedes-cluster']
  for (const b of brokers) if (!BROKERS[b]) throw new Error(`unknown broker ${b}; one of ${allBrokers.join(', ')}`)
  if (brokers.some(b => b.startsWith('culex')) && !fs.existsSync(path.join(repoDir, 'dist/store/index.js'))) {
    if (explicit) throw new Error('dist/store/index.js is missing: run `npm run build` first (or leave culex out of --brokers)')
    process.stderr.write('warning: dist/store/index.js is missing (build Culex first); running the reference brokers only\n')
    brokers = brokers.filter(b => !b.startsWith('culex'))
  }
  if (brokers.includes('mosquitto') && !fs.existsSync(MOSQUITTO)) {
    if (explicit) throw new Error(`${MOSQUITTO} not found: apt-get install -y mosquitto (or set MOSQUITTO)`)
    process.stderr.write(`warning: ${MOSQUITTO} not found (apt-get install -y mosquitto); leaving mosquitto out\n`)
    brokers = brokers.filter(b => b !== 'mosquitto')
  }
  const needRedis = brokers.filter(b => b === 'culex-redis' || BROKERS[b].cluster)
  if (needRedis.length > 0 && spawnSync('redis-server', ['--version']).status !== 0) {
    if (explicit || values.cluster) throw new Error('redis-server not found: apt-get install -y redis-server')
    process.stderr.write('warning: redis-server not found (apt-get install -y redis-server); leaving the cluster brokers out\n')
    brokers = brokers.filter(b => !needRedis.includes(b))
  }
  // aedes 1.2 refuses MQTT 5: the MQTT 5 scenarios run on the brokers that speak it, named or not
  const speaks = s => b => specs[s].protocolVersion !== 5 || BROKERS[b].mqtt5 !== false
  // a cluster scenario runs on the cluster brokers, every other one on the others
  const fits = s => b => Boolean(specs[s].cluster) === Boolean(BROKERS[b].cluster)
  const brokersFor = s => (explicit || specs[s].sync ? brokers : brokers.filter(b => b !== 'culex-sync')).filter(speaks(s)).filter(fits(s))
  for (const s of scenarioNames) {
    const left = brokers.filter(b => !speaks(s)(b))
    if (explicit && left.length > 0) process.stderr.write(`note: ${s} is MQTT 5, which ${left.join(', ')} does not speak: left out of it\n`)
  }

  const stamp = new Date().toISOString().replace(/[:.]/g, '-').slice(0, 19)
  const out = values.out ?? path.join(benchDir, 'results', `run-${stamp}${values.quick ? '-quick' : ''}.jsonl`)
  fs.mkdirSync(path.dirname(path.resolve(out)), { recursive: true })
  fs.writeFileSync(out, '')
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'culex-bench-'))
  const snapshot = brokers.some(b => b.startsWith('culex')) ? snapshotCulex(stamp, values['culex-dist'] && path.resolve(values['culex-dist'])) : undefined
  const cleanup = () => {
    fs.rmSync(tmp, { recursive: true, force: true })
    if (snapshot) fs.rmSync(snapshot, { recursive: true, force: true })
  }
  process.once('SIGINT', () => { killRunningBrokers(); cleanup(); process.exit(130) })
  const opts = {
    tmp,
    keep: values.keep,
    nodeArgs: values['node-args'].split(' ').filter(Boolean),
    cpuProf: values['cpu-prof'],
    runTimeoutMs: 240000
  }
  const meta = {
    type: 'meta',
    date: new Date().toISOString(),
    command: `node bench/run.mjs ${process.argv.slice(2).join(' ')}`.trim(),
    reps,
    quick: values.quick,
    machine: machineFacts(),
    specs: Object.fromEntries(scenarioNames.map(n => [n, specs[n]]))
  }
  fs.appendFileSync(out, JSON.stringify(meta) + '\n')
  const records = []
  const t0 = Date.now()
  const total = reps * scenarioNames.reduce((s, n) => s + brokersFor(n).length, 0)
  let done = 0
  for (let rep = 0; rep < reps; rep++) {
    for (const s of scenarioNames) {
      const order = rotate(brokersFor(s), rep)
      for (const b of order) {
        const spec = specs[s]
        const rec = await runOne(b, s, { ...spec, desc: undefined }, rep, opts)
        rec.table = spec.table
        records.push(rec)
        fs.appendFileSync(out, JSON.stringify(rec) + '\n')
        done++
        const headline = rec.ok ? summarizeRecord(rec) : `FAILED: ${rec.error}`
        process.stderr.write(`[${done}/${total} rep ${rep + 1}/${reps} ${((Date.now() - t0) / 1000).toFixed(0)} s] ${s} ${b}: ${headline} (${rec.wallS.toFixed(1)} s)\n`)
      }
    }
  }
  meta.wallS = (Date.now() - t0) / 1000
  meta.loadEnd = os.loadavg().map(x => x.toFixed(2)).join(' ')
  fs.appendFileSync(out, JSON.stringify({ ...meta, type: 'meta-end' }) + '\n')
  cleanup()
  const md = render(records, specs, allBrokers, meta)
  fs.writeFileSync(out.replace(/\.jsonl$/, '') + '.md', md + '\n')
  process.stdout.write(md + '\n')
  process.stderr.write(`raw results: ${out}\ntables: ${out.replace(/\.jsonl$/, '')}.md\n`)
}

main().catch(err => { console.error(err); process.exit(1) })
