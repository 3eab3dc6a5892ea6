#!/usr/bin/env node
// Culex benchmark driver. Starts every broker fresh for every run (empty data dir, free port), runs one scenario
// with the load generator (bench/gen.mjs, a child process), stops the broker, and interleaves the brokers within
// each repetition, rotating their order. Prints markdown tables: medians with [min–max] and ratios vs bare aedes
// (aedes-mem) and vs mosquitto, then the issue's targets with PASS / MISS.
//
//   npm run bench                                  # all scenarios, default brokers, 3 repetitions (~15 min)
//   npm run bench -- --quick                       # smoke run, short durations, 1 repetition (~3 min)
//   node bench/run.mjs --scenarios fanin-q1-persist,offline-kill --brokers culex,aedes-mem --reps 5
//   node bench/run.mjs --report bench/results/run-….jsonl   # re-render tables from raw results
//
// See docs/performance.md for the scenarios, the method and the figures.
import { fork, spawn, execFileSync } from 'node:child_process'
import fs from 'node:fs'
import net from 'node:net'
import os from 'node:os'
import path from 'node:path'
import { parseArgs } from 'node:util'
import { fileURLToPath } from 'node:url'
import { setTimeout as sleep } from 'node:timers/promises'
import { cpuTop, renderTop } from './cpu-top.mjs'

const benchDir = path.dirname(fileURLToPath(import.meta.url))
const repoDir = path.resolve(benchDir, '..')
const MOSQUITTO = process.env.MOSQUITTO ?? '/usr/sbin/mosquitto'
/** Where Culex runs from: a snapshot of dist/ taken at the start (see snapshotCulex), so a rebuild mid-run is harmless. */
let culexMain = path.join(repoDir, 'dist/main.js')

// ---------------------------------------------------------------------------------------------------------------
// brokers

/** Every broker: how to start it on 127.0.0.1:port with its state under dir. `node` brokers take --node-args. */
const BROKERS = {
  culex: {
    desc: 'Culex (dist/main.js), LevelDB store, store.sync false (default)',
    node: true,
    cmd: (port, dir) => [culexMain, 'start', '--mqtt-port', String(port), '--ws-port', '0', '--admin-port', '0',
      '--host', '127.0.0.1', '--data-dir', dir, '--log-level', 'warn', '--log-format', 'json'],
    env: { CULEX_STORE_SYNC: 'false' }
  },
  'culex-sync': {
    desc: 'Culex with CULEX_STORE_SYNC=true (every write batch fsynced)',
    node: true,
    cmd: (port, dir) => BROKERS.culex.cmd(port, dir),
    env: { CULEX_STORE_SYNC: 'true' }
  },
  'aedes-mem': {
    desc: 'bare aedes 1.2.0, `await Aedes.createBroker()` defaults (in-memory persistence), net server',
    node: true,
    cmd: port => ['bench/ref/aedes-server.mjs', '--port', String(port)]
  },
  'aedes-level': {
    desc: 'aedes 1.2.0 + aedes-persistence-level 9.2.0 on level 10 (LevelDB)',
    node: true,
    cmd: (port, dir) => ['bench/ref/aedes-server.mjs', '--port', String(port), '--persistence', 'level', '--dir', path.join(dir, 'level')]
  },
  mosquitto: {
    desc: 'mosquitto (Debian), persistence on, max_queued_messages 100000, max_inflight_messages 0',
    node: false,
    cmd: (port, dir) => {
      const conf = path.join(dir, 'mosquitto.conf')
      fs.writeFileSync(conf, [
        `listener ${port} 127.0.0.1`,
        'allow_anonymous true',
        'persistence true',
        `persistence_location ${dir}/`,
        'max_queued_messages 100000',
        'max_queued_bytes 0',
        'max_inflight_messages 0',
        'user root',
        'log_dest stderr',
        'log_type error',
        'log_type warning',
        ''
      ].join('\n'))
      return [MOSQUITTO, '-c', conf]
    }
  }
}

const REFERENCES = ['aedes-mem', 'mosquitto']

// ---------------------------------------------------------------------------------------------------------------
// scenarios (definitions follow research/perf-baseline.md; durations are shorter to fit the run in ~15 minutes)

function scenarioTable (quick) {
  const dur = quick ? 1 : 3
  const latDur = quick ? 1.5 : 4
  const fanin = (qos, persistent) => ({
    kind: 'fanin',
    qos,
    persistent,
    duration: dur,
    sync: persistent && qos > 0,
    table: 'rate',
    desc: `8 publishers -> 1 ${persistent ? 'persistent (clean=false)' : 'clean'} subscriber on bench/#, QoS ${qos} (sub QoS ${qos}), 64 B, ${dur} s; ` +
      (qos === 0 ? 'at most 1000 msgs per publisher ahead of the subscriber' : 'window 64 unacknowledged per publisher, at most 1000 ahead of the subscriber')
  })
  const offlineN = quick ? 3000 : 20000
  const idleMs = quick ? 2000 : 3000
  const maxDrainMs = quick ? 10000 : 15000
  return {
    'fanin-q0': fanin(0, false),
    'fanin-q1': fanin(1, false),
    'fanin-q2': fanin(2, false),
    'fanin-q0-persist': fanin(0, true),
    'fanin-q1-persist': fanin(1, true),
    'fanin-q2-persist': fanin(2, true),
    'fanout-q0': { kind: 'fanout', qos: 0, duration: dur, table: 'rate', desc: `1 publisher -> 50 clean subscribers on one topic, QoS 0, 64 B, ${dur} s; msgs/s = deliveries/s summed over subscribers` },
    'fanout-q1': { kind: 'fanout', qos: 1, duration: dur, table: 'rate', desc: `1 publisher -> 50 clean subscribers on one topic, QoS 1, window 64, ${dur} s; deliveries/s` },
    'latency-q1': { kind: 'latency', qos: 1, rate: 2000, warmup: 1, duration: latDur, table: 'latency', desc: `1 publisher -> 1 clean subscriber, QoS 1, fixed 2000 msg/s, 1 s warm-up + ${latDur} s measured; ms publish -> deliver (generator sockets with TCP_NODELAY)` },
    connections: { kind: 'connections', clients: quick ? 1000 : 5000, concurrency: 200, holdS: 1, table: 'connections', desc: `${quick ? 1000 : 5000} clean-session clients connect as fast as possible (200 connects in flight), held 1 s, then closed` },
    offline: { kind: 'offline', messages: offlineN, idleMs, maxDrainMs, sync: true, table: 'offline', desc: `persistent session (clean=false) subscribes QoS 1, disconnects; ${offlineN} QoS 1 msgs published; reconnect and time until all arrive (drain capped at ${maxDrainMs / 1000} s; what is still arriving then counts as pending, not lost)` },
    'offline-restart': { kind: 'offline', messages: offlineN, idleMs, maxDrainMs, restart: 'SIGTERM', table: 'offline', desc: 'as offline, but the broker is stopped with SIGTERM right after the last PUBACK and started again before the reconnect' },
    'offline-kill': { kind: 'offline', messages: offlineN, idleMs, maxDrainMs, restart: 'SIGKILL', table: 'offline', desc: 'as offline, but the broker is killed with SIGKILL (crash) right after the last PUBACK and started again before the reconnect' },
    retained: { kind: 'retained', messages: quick ? 20000 : 100000, probes: 3, table: 'retained', desc: `${quick ? 20000 : 100000} retained QoS 1 messages on bench/r/<i>/x (every 1000th i) or bench/r/<i>/y; then SUBSCRIBE bench/r/+/x (${quick ? 20 : 100} matches) and an exact topic (1 match), 3 probes each on fresh clients` },
    shared: { kind: 'shared', members: 4, messages: quick ? 3000 : 20000, table: 'shared', desc: `1 publisher -> 4 subscribers in $share/g/bench/shared, QoS 1, ${quick ? 3000 : 20000} msgs; each message must reach exactly one member` }
  }
}

// ---------------------------------------------------------------------------------------------------------------
// running

function freePort () {
  return new Promise((resolve, reject) => {
    const srv = net.createServer()
    srv.once('error', reject)
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address()
      srv.close(() => resolve(port))
    })
  })
}

async function waitForPort (port, proc, timeoutMs = 30000) {
  const start = Date.now()
  while (Date.now() - start < timeoutMs) {
    if (proc.exitCode !== null || proc.signalCode !== null) throw new Error(`broker exited (${proc.exitCode ?? proc.signalCode}) before listening`)
    const ok = await new Promise(resolve => {
      const s = net.connect({ port, host: '127.0.0.1' })
      s.once('connect', () => { s.destroy(); resolve(true) })
      s.once('error', () => resolve(false))
    })
    if (ok) return Date.now() - start
    await sleep(25)
  }
  throw new Error(`broker not listening on ${port} after ${timeoutMs} ms`)
}

async function startBroker (name, port, dir, opts, profDir) {
  const b = BROKERS[name]
  const argv = b.cmd(port, dir)
  const nodeArgs = profDir ? [...opts.nodeArgs, '--cpu-prof', `--cpu-prof-dir=${profDir}`] : opts.nodeArgs
  const [cmd, args] = b.node ? [process.execPath, [...nodeArgs, ...argv]] : [argv[0], argv.slice(1)]
  const log = fs.openSync(path.join(dir, `broker-${Date.now()}.log`), 'a')
  const proc = spawn(cmd, args, { cwd: repoDir, env: { ...process.env, ...b.env }, stdio: ['ignore', log, log] })
  fs.closeSync(log)
  proc.on('error', () => {})
  const readyMs = await waitForPort(port, proc)
  return { proc, pid: proc.pid, readyMs }
}

function exited (proc) {
  if (proc.exitCode !== null || proc.signalCode !== null) return Promise.resolve()
  return new Promise(resolve => proc.once('exit', resolve))
}

async function stopBroker (proc, signal = 'SIGTERM', timeoutMs = 15000) {
  if (proc.exitCode !== null || proc.signalCode !== null) return { code: proc.exitCode, signal: proc.signalCode }
  proc.kill(signal)
  const t = setTimeout(() => proc.kill('SIGKILL'), timeoutMs)
  await exited(proc)
  clearTimeout(t)
  return { code: proc.exitCode, signal: proc.signalCode }
}

function tail (dir, lines = 15) {
  try {
    const logs = fs.readdirSync(dir).filter(f => f.startsWith('broker-')).sort()
    return logs.map(f => fs.readFileSync(path.join(dir, f), 'utf8').split('\n').slice(-lines).join('\n')).join('\n')
  } catch { return '' }
}

async function runOne (brokerName, scenarioName, spec, rep, opts) {
  const dir = fs.mkdtempSync(path.join(opts.tmp, `${brokerName}-${scenarioName}-`))
  const port = await freePort()
  const record = { scenario: scenarioName, broker: brokerName, rep, ok: false, startedAt: new Date().toISOString() }
  const t0 = Date.now()
  const profDir = opts.cpuProf && BROKERS[brokerName].node ? path.resolve(opts.cpuProf, `${brokerName}-${scenarioName}-r${rep + 1}`) : undefined
  let broker
  let gen
  try {
    broker = await startBroker(brokerName, port, dir, opts, profDir)
    record.brokerReadyMs = broker.readyMs
    const result = await new Promise((resolve, reject) => {
      gen = fork(path.join(benchDir, 'gen.mjs'), [JSON.stringify({ spec, port, pid: broker.pid })], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] })
      const timer = setTimeout(() => { gen.kill('SIGKILL'); reject(new Error('generator timed out')) }, opts.runTimeoutMs)
      let brokerDied = null
      const onBrokerExit = (code, sig) => { brokerDied = `broker exited unexpectedly (${code ?? sig})` }
      broker.proc.on('exit', onBrokerExit)
      gen.on('message', async m => {
        if (m.type === 'result') { clearTimeout(timer); resolve(m.result) }
        if (m.type === 'error') { clearTimeout(timer); reject(new Error((brokerDied ? brokerDied + '; ' : '') + m.error)) }
        if (m.type === 'restart') {
          try {
            broker.proc.off('exit', onBrokerExit)
            const stopped = await stopBroker(broker.proc, m.signal)
            record.stopped = stopped
            const r0 = Date.now()
            broker = await startBroker(brokerName, port, dir, opts, profDir)
            broker.proc.on('exit', onBrokerExit)
            record.restartMs = Date.now() - r0
            gen.send({ type: 'restarted', pid: broker.pid })
          } catch (err) {
            gen.send({ type: 'restarted', error: String(err.message ?? err) })
          }
        }
      })
      gen.on('exit', code => {
        clearTimeout(timer)
        if (code !== 0) reject(new Error(`generator exited with ${code}${brokerDied ? '; ' + brokerDied : ''}`))
      })
    })
    Object.assign(record, result)
    record.ok = true
  } catch (err) {
    record.error = String(err.message ?? err).split('\n').slice(0, 4).join(' | ')
    record.brokerLog = tail(dir)
  } finally {
    if (gen && gen.exitCode === null) gen.kill('SIGKILL')
    if (broker) record.exit = await stopBroker(broker.proc)
  }
  record.wallS = (Date.now() - t0) / 1000
  if (profDir && fs.existsSync(profDir)) {
    // The profile covers the broker's whole life; keep only the generator's measured window when there is one.
    const [from, to] = record.windowUs ?? [-Infinity, Infinity]
    record.profiles = fs.readdirSync(profDir).filter(f => f.endsWith('.cpuprofile')).map(f => path.join(profDir, f))
    for (const f of record.profiles) {
      const top = cpuTop(f, { top: 15, from, to })
      record.profileTop = top
      process.stderr.write(renderTop(top, `${brokerName} ${scenarioName} rep ${rep + 1}: ${f}${record.windowUs ? ' (measured window)' : ''}`) + '\n\n')
    }
  }
  if (record.ok || !opts.keep) fs.rmSync(dir, { recursive: true, force: true })
  else record.dir = dir
  return record
}

/**
 * Copies dist/ and package.json under bench/results/ (git-ignored; node_modules still resolves from the repository)
 * and runs Culex from there: other people rebuilding dist/ during a 15-minute run must not change what is measured.
 */
function snapshotCulex (stamp) {
  const root = path.join(benchDir, 'results', `.culex-${stamp}`)
  fs.cpSync(path.join(repoDir, 'dist'), path.join(root, 'dist'), { recursive: true })
  fs.copyFileSync(path.join(repoDir, 'package.json'), path.join(root, 'package.json'))
  culexMain = path.join(root, 'dist/main.js')
  return root
}

function rotate (list, k) {
  const n = list.length
  return list.map((_, i) => list[(i + k) % n])
}

// ---------------------------------------------------------------------------------------------------------------
// reporting

const nf0 = new Intl.NumberFormat('en-US', { maximumFractionDigits: 0 })

function fmtNum (v, digits) {
  if (v === null || v === undefined || !Number.isFinite(v)) return '–'
  if (digits === 0) return nf0.format(v)
  return v.toFixed(digits)
}

function median (xs) {
  const v = xs.filter(x => x !== null && x !== undefined && Number.isFinite(x)).sort((a, b) => a - b)
  if (v.length === 0) return null
  return v.length % 2 ? v[(v.length - 1) >> 1] : (v[v.length / 2 - 1] + v[v.length / 2]) / 2
}

/** Column kinds: m = median [min–max]; r = ratio of medians vs a reference broker; s = sum; c = custom(fn). */
const TABLES = {
  rate: [
    { label: 'msgs/s', key: 'rate', kind: 'm', d: 0, ratios: true, better: 'higher' },
    { label: 'broker CPU', key: 'brokerCpu', kind: 'm', d: 2 },
    { label: 'gen CPU', key: 'genCpu', kind: 'm', d: 2 },
    { label: 'broker peak RSS MB', key: 'peakRssMB', kind: 'm', d: 0, noRange: true },
    { label: 'lost (sum)', key: 'lost', kind: 's' },
    { label: 'pending at cap (sum)', key: 'pending', kind: 's' },
    { label: 'dup (sum)', key: 'dup', kind: 's' },
    { label: 'unacked (sum)', key: 'unacked', kind: 's' }
  ],
  latency: [
    { label: 'p50 ms', key: 'p50', kind: 'm', d: 3, ratios: true, better: 'lower' },
    { label: 'p99 ms', key: 'p99', kind: 'm', d: 3, ratios: true, better: 'lower' },
    { label: 'p99.9 ms', key: 'p999', kind: 'm', d: 3 },
    { label: 'max ms', key: 'max', kind: 'm', d: 2, noRange: true },
    { label: 'achieved msg/s', key: 'achieved', kind: 'm', d: 0, noRange: true },
    { label: 'broker CPU', key: 'brokerCpu', kind: 'm', d: 2 },
    { label: 'lost (sum)', key: 'lost', kind: 's' },
    { label: 'dup (sum)', key: 'dup', kind: 's' }
  ],
  connections: [
    { label: 'connects/s', key: 'rate', kind: 'm', d: 0, ratios: true, better: 'higher' },
    { label: 'KB per conn', key: 'kbPerConn', kind: 'm', d: 1, ratios: true, better: 'lower' },
    { label: 'connect p50 ms', key: 'connectP50Ms', kind: 'm', d: 0 },
    { label: 'connect p99 ms', key: 'connectP99Ms', kind: 'm', d: 0 },
    { label: 'RSS before MB', key: 'rssBeforeMB', kind: 'm', d: 0, noRange: true },
    { label: 'RSS connected MB', key: 'rssConnectedMB', kind: 'm', d: 0, noRange: true },
    { label: 'RSS after close MB', key: 'rssAfterMB', kind: 'm', d: 0, noRange: true },
    { label: 'broker CPU', key: 'brokerCpu', kind: 'm', d: 2 },
    { label: 'gen CPU', key: 'genCpu', kind: 'm', d: 2 },
    { label: 'failed (sum)', key: 'failed', kind: 's' }
  ],
  offline: [
    { label: 'drain msgs/s', key: 'drainRate', kind: 'm', d: 0, ratios: true, refs: ['aedes-mem', 'aedes-level', 'mosquitto'], better: 'higher' },
    { label: 'reconnect→all s', key: 'reconnectToAllS', kind: 'm', d: 2 },
    { label: 'enqueue msgs/s', key: 'enqueueRate', kind: 'm', d: 0, ratios: true, better: 'higher' },
    { label: 'received', key: 'received', kind: 'm', d: 0 },
    { label: 'session present', key: 'sessionPresent', kind: 'c', fn: rs => `${rs.filter(r => r.sessionPresent).length}/${rs.length}` },
    { label: 'queued RSS MB', key: 'queuedRssMB', kind: 'm', d: 0, noRange: true },
    { label: 'restart s', key: 'restartMs', kind: 'm', d: 2, scale: 1 / 1000 },
    { label: 'lost (sum)', key: 'lost', kind: 's' },
    { label: 'pending at cap (sum)', key: 'pending', kind: 's' },
    { label: 'dup (sum)', key: 'dup', kind: 's' }
  ],
  retained: [
    { label: 'SUB wildcard → 1st ms', key: 'wildFirstMs', kind: 'm', d: 2, ratios: true, better: 'lower' },
    { label: 'wildcard → all ms', key: 'wildAllMs', kind: 'm', d: 2 },
    { label: 'SUB exact → 1st ms', key: 'exactFirstMs', kind: 'm', d: 2, ratios: true, better: 'lower' },
    { label: 'store msgs/s', key: 'storeRate', kind: 'm', d: 0, ratios: true, better: 'higher' },
    { label: 'RSS stored MB', key: 'rssAfterStoreMB', kind: 'm', d: 0, noRange: true },
    { label: 'wildcard got', key: 'wildReceived', kind: 'c', fn: rs => `${fmtNum(median(rs.map(r => r.wildReceived)), 0)}/${rs[0]?.wildExpected ?? '?'}` }
  ],
  shared: [
    { label: 'delivered/sent', key: 'deliveredRatio', kind: 'm', d: 3, ratios: true, better: 'higher' },
    { label: 'msgs/s', key: 'rate', kind: 'm', d: 0 },
    { label: 'SUBACK codes (rep 1)', key: 'granted', kind: 'c', fn: rs => (rs[0]?.granted ?? []).map(c => '0x' + c.toString(16).padStart(2, '0')).join(' ') },
    { label: 'members (rep 1)', key: 'perMember', kind: 'c', fn: rs => (rs[0]?.perMember ?? []).join('/') },
    { label: 'lost (sum)', key: 'lost', kind: 's' },
    { label: 'dup (sum)', key: 'dup', kind: 's' }
  ]
}

function cellMedian (rs, col) {
  const scale = col.scale ?? 1
  const vals = rs.map(r => r[col.key]).filter(v => typeof v === 'number' && Number.isFinite(v)).map(v => v * scale)
  if (vals.length === 0) return '–'
  const m = median(vals)
  if (col.noRange || vals.length === 1) return fmtNum(m, col.d)
  return `${fmtNum(m, col.d)} [${fmtNum(Math.min(...vals), col.d)}–${fmtNum(Math.max(...vals), col.d)}]`
}

function ratio (a, b) {
  if (a === null || b === null || !Number.isFinite(a) || !Number.isFinite(b) || b === 0) return null
  return a / b
}

function med (records, scenario, broker, key) {
  return median(records.filter(r => r.ok && r.scenario === scenario && r.broker === broker).map(r => r[key]))
}

function renderScenario (records, scenario, brokers, specs) {
  const spec = specs[scenario] ?? {}
  const cols = TABLES[spec.table ?? records.find(r => r.scenario === scenario)?.table ?? 'rate']
  const present = brokers.filter(b => records.some(r => r.scenario === scenario && r.broker === b))
  const header = ['broker']
  for (const c of cols) {
    header.push(c.label)
    if (c.ratios) for (const ref of c.refs ?? REFERENCES) if (present.includes(ref)) header.push(`× ${ref}`)
  }
  header.push('runs ok')
  const lines = [`### ${scenario}`, '', spec.desc ?? '', '', `| ${header.join(' | ')} |`, `| ${header.map(() => '---').join(' | ')} |`]
  for (const b of present) {
    const all = records.filter(r => r.scenario === scenario && r.broker === b)
    const ok = all.filter(r => r.ok)
    const row = [b]
    for (const c of cols) {
      if (c.kind === 'm') row.push(cellMedian(ok, c))
      else if (c.kind === 's') row.push(ok.some(r => typeof r[c.key] === 'number') ? fmtNum(ok.reduce((s, r) => s + (r[c.key] ?? 0), 0), 0) : '–')
      else row.push(c.fn(ok))
      if (c.ratios) {
        for (const ref of c.refs ?? REFERENCES) {
          if (!present.includes(ref)) continue
          row.push(fmtNum(ratio(med(records, scenario, b, c.key), med(records, scenario, ref, c.key)), 2))
        }
      }
    }
    row.push(`${ok.length}/${all.length}`)
    lines.push(`| ${row.join(' | ')} |`)
  }
  const failures = records.filter(r => r.scenario === scenario && !r.ok)
  for (const f of failures) lines.push('', `- ${f.broker} rep ${f.rep + 1} failed: ${f.error}`)
  return lines.join('\n')
}

/** One row per headline metric, one column per broker: median (× aedes-mem / × mosquitto). */
const SUMMARY = [
  ['fanin-q0', 'rate', 'fan-in QoS 0, 8→1 clean (msgs/s)'],
  ['fanin-q1', 'rate', 'fan-in QoS 1, 8→1 clean (msgs/s)'],
  ['fanin-q2', 'rate', 'fan-in QoS 2, 8→1 clean (msgs/s)'],
  ['fanin-q0-persist', 'rate', 'fan-in QoS 0, 8→1 persistent sub (msgs/s)'],
  ['fanin-q1-persist', 'rate', 'fan-in QoS 1, 8→1 persistent sub (msgs/s)'],
  ['fanin-q2-persist', 'rate', 'fan-in QoS 2, 8→1 persistent sub (msgs/s)'],
  ['fanout-q0', 'rate', 'fan-out QoS 0, 1→50 (deliveries/s)'],
  ['fanout-q1', 'rate', 'fan-out QoS 1, 1→50 (deliveries/s)'],
  ['latency-q1', 'p50', 'latency QoS 1 @ 2000/s, p50 (ms)', 3],
  ['latency-q1', 'p99', 'latency QoS 1 @ 2000/s, p99 (ms)', 3],
  ['connections', 'rate', 'connections: connects/s'],
  ['connections', 'kbPerConn', 'connections: RSS per connection (KB)', 1],
  ['offline', 'enqueueRate', 'offline: enqueue QoS 1 (msgs/s)'],
  ['offline', 'drainRate', 'offline: drain after reconnect (msgs/s)'],
  ['offline', 'reconnectToAllS', 'offline: reconnect → all delivered (s)', 2],
  ['offline-restart', 'received', 'offline after SIGTERM restart: received (median)'],
  ['offline-kill', 'received', 'offline after SIGKILL restart: received (median)'],
  ['retained', 'wildFirstMs', 'retained: SUBSCRIBE wildcard → first msg (ms)', 2],
  ['retained', 'exactFirstMs', 'retained: SUBSCRIBE exact → first msg (ms)', 2],
  ['retained', 'storeRate', 'retained: store rate (msgs/s)'],
  ['shared', 'deliveredRatio', 'shared $share/g 1→4: delivered/sent', 2]
]

function renderSummary (records, brokers) {
  const present = brokers.filter(b => records.some(r => r.broker === b))
  const lines = ['| scenario (metric) | ' + present.join(' | ') + ' |', '| --- | ' + present.map(() => '---').join(' | ') + ' |']
  for (const [s, key, label, d = 0] of SUMMARY) {
    if (!records.some(r => r.scenario === s)) continue
    const cells = present.map(b => {
      if (!records.some(r => r.scenario === s && r.broker === b)) return ''
      const m = med(records, s, b, key)
      const rs = REFERENCES.filter(ref => ref !== b && present.includes(ref)).map(ref => {
        const x = ratio(m, med(records, s, ref, key))
        return x === null ? null : `${x.toFixed(2)}× ${ref === 'aedes-mem' ? 'aedes' : 'mosq'}`
      }).filter(Boolean)
      return fmtNum(m, d) + (rs.length ? ` (${rs.join(', ')})` : '')
    })
    lines.push(`| ${label} | ${cells.join(' | ')} |`)
  }
  return lines.join('\n')
}

function renderTargets (records) {
  const rows = []
  const target = (name, measure) => {
    const { measured, pass } = measure()
    rows.push(`| ${name} | ${measured} | ${pass === null ? 'n/a' : pass ? 'PASS' : 'MISS'} |`)
  }
  const has = (s, b) => records.some(r => r.ok && r.scenario === s && r.broker === b)
  const rateRatio = (s, b, ref, key, need) => () => {
    if (!has(s, b) || !has(s, ref)) return { measured: `needs ${b} and ${ref} in ${s}`, pass: null }
    const x = ratio(med(records, s, b, key), med(records, s, ref, key))
    return { measured: `${fmtNum(med(records, s, b, key), 0)} vs ${fmtNum(med(records, s, ref, key), 0)} = ${fmtNum(x, 2)}× (need ≥ ${need})`, pass: x !== null && x >= need }
  }
  for (const b of ['culex', 'culex-sync']) {
    if (!records.some(r => r.broker === b)) continue
    target(`${b}: fan-in QoS 1 to a persistent subscriber ≥ aedes-mem`, rateRatio('fanin-q1-persist', b, 'aedes-mem', 'rate', 1))
    target(`${b}: fan-in QoS 2 to a persistent subscriber ≥ aedes-mem`, rateRatio('fanin-q2-persist', b, 'aedes-mem', 'rate', 1))
    target(`${b}: offline drain ≥ 2× aedes-mem`, rateRatio('offline', b, 'aedes-mem', 'drainRate', 2))
    target(`${b}: offline drain ≥ 20× aedes-level`, rateRatio('offline', b, 'aedes-level', 'drainRate', 20))
    target(`${b}: SIGKILL between publish and reconnect, 0 lost`, () => {
      const rs = records.filter(r => r.scenario === 'offline-kill' && r.broker === b)
      if (rs.length === 0) return { measured: 'not run', pass: null }
      const ok = rs.filter(r => r.ok)
      const lost = ok.reduce((s, r) => s + r.lost, 0)
      const pending = ok.reduce((s, r) => s + (r.pending ?? 0), 0)
      const total = ok.reduce((s, r) => s + r.acked, 0)
      return { measured: `${fmtNum(lost, 0)} of ${fmtNum(total, 0)} acknowledged lost${pending ? ` (${fmtNum(pending, 0)} still pending at the drain cap)` : ''} over ${ok.length}/${rs.length} runs`, pass: ok.length === rs.length && lost === 0 && ok.every(r => r.received >= r.messages) }
    })
    target(`${b}: SUBSCRIBE with ${records.find(r => r.scenario === 'retained')?.stored ?? '100k'} retained → first message < 10 ms`, () => {
      if (!has('retained', b)) return { measured: 'not run', pass: null }
      const w = med(records, 'retained', b, 'wildFirstMs')
      const e = med(records, 'retained', b, 'exactFirstMs')
      const worst = Math.max(...records.filter(r => r.ok && r.scenario === 'retained' && r.broker === b).flatMap(r => [r.wildFirstMsMax, r.exactFirstMsMax]).map(v => v ?? Infinity))
      return { measured: `wildcard ${fmtNum(w, 2)} ms, exact ${fmtNum(e, 2)} ms (medians; worst probe ${fmtNum(worst, 2)} ms)`, pass: w !== null && e !== null && w < 10 && e < 10 }
    })
  }
  if (rows.length === 0) return '(no culex runs: targets not evaluated)'
  return ['| target | measured (medians, same run) | result |', '| --- | --- | --- |', ...rows].join('\n')
}

function machineFacts () {
  const cpu = (fs.readFileSync('/proc/cpuinfo', 'utf8').match(/model name\s*:\s*(.*)/) ?? [])[1] ?? os.cpus()[0]?.model
  let mosq = 'not installed'
  try { mosq = execFileSync(MOSQUITTO, ['-h'], { stdio: ['ignore', 'pipe', 'ignore'] }).toString().split('\n')[0] } catch (err) { mosq = (err.stdout?.toString() ?? '').split('\n')[0] || mosq }
  let commit = ''
  try { commit = execFileSync('git', ['rev-parse', '--short', 'HEAD'], { cwd: repoDir, stdio: ['ignore', 'pipe', 'ignore'] }).toString().trim() } catch {}
  const ver = p => { try { return JSON.parse(fs.readFileSync(path.join(repoDir, 'node_modules', p, 'package.json'), 'utf8')).version } catch { return '?' } }
  return {
    nproc: os.availableParallelism?.() ?? os.cpus().length,
    cpu,
    memGB: Math.round(os.totalmem() / 2 ** 30),
    node: process.version,
    mosquitto: mosq.trim(),
    aedes: ver('aedes'),
    aedesPersistenceLevel: ver('aedes-persistence-level'),
    level: ver('level'),
    mqttPacket: ver('mqtt-packet'),
    commit,
    loadavg: os.loadavg().map(x => x.toFixed(2)).join(' ')
  }
}

function render (records, specs, brokers, meta) {
  const scenarios = [...new Set(records.map(r => r.scenario))]
  const out = []
  if (meta) {
    out.push(`# Culex benchmark ${meta.date}`, '')
    out.push(`- command: \`${meta.command}\``)
    const m = meta.machine
    out.push(`- machine: nproc ${m.nproc}, CPU "${m.cpu}", ${m.memGB} GiB RAM; Node ${m.node}; ${m.mosquitto}; aedes ${m.aedes}, aedes-persistence-level ${m.aedesPersistenceLevel}, level ${m.level}, mqtt-packet ${m.mqttPacket}; commit ${m.commit}`)
    out.push(`- load average at start: ${m.loadavg}${meta.loadEnd ? `; at end: ${meta.loadEnd}` : ''}${meta.wallS ? `; wall time ${(meta.wallS / 60).toFixed(1)} min` : ''}`)
    out.push(`- repetitions: ${meta.reps}, brokers interleaved and rotated each repetition; cells are median [min–max]; × = ratio of medians`)
    out.push('')
  }
  out.push('## Summary (median; in brackets the ratio vs aedes-mem and vs mosquitto)', '', renderSummary(records, brokers), '')
  out.push('## Targets', '', renderTargets(records), '')
  out.push('## Per scenario', '')
  for (const s of scenarios) out.push(renderScenario(records, s, brokers, specs), '')
  return out.join('\n')
}

// ---------------------------------------------------------------------------------------------------------------

async function main () {
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
      help: { type: 'boolean', short: 'h' }
    }
  })
  const specs = scenarioTable(values.quick)
  if (values.help) {
    process.stdout.write(`node bench/run.mjs [--reps 3] [--quick] [--scenarios a,b] [--brokers x,y] [--out file.jsonl] [--node-args "..."] [--cpu-prof DIR] [--keep]
node bench/run.mjs --report file.jsonl [--report more.jsonl]

scenarios: ${Object.keys(specs).join(', ')}
brokers:   ${Object.keys(BROKERS).join(', ')} (default: culex, aedes-mem, aedes-level, mosquitto; culex-sync is added
           to the scenarios where fsync matters: ${Object.entries(specs).filter(([, s]) => s.sync).map(([n]) => n).join(', ')})
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
  const scenarioNames = values.scenarios ? values.scenarios.split(',') : Object.keys(specs)
  for (const s of scenarioNames) if (!specs[s]) throw new Error(`unknown scenario ${s}; one of ${Object.keys(specs).join(', ')}`)
  const explicit = values.brokers !== undefined
  let brokers = explicit ? values.brokers.split(',') : ['culex', 'culex-sync', 'aedes-mem', 'aedes-level', 'mosquitto']
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
  const brokersFor = s => explicit || specs[s].sync ? brokers : brokers.filter(b => b !== 'culex-sync')

  const stamp = new Date().toISOString().replace(/[:.]/g, '-').slice(0, 19)
  const out = values.out ?? path.join(benchDir, 'results', `run-${stamp}${values.quick ? '-quick' : ''}.jsonl`)
  fs.mkdirSync(path.dirname(path.resolve(out)), { recursive: true })
  fs.writeFileSync(out, '')
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'culex-bench-'))
  const snapshot = brokers.some(b => b.startsWith('culex')) ? snapshotCulex(stamp) : undefined
  const cleanup = () => {
    fs.rmSync(tmp, { recursive: true, force: true })
    if (snapshot) fs.rmSync(snapshot, { recursive: true, force: true })
  }
  process.once('SIGINT', () => { cleanup(); process.exit(130) })
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

function summarizeRecord (r) {
  switch (r.table) {
    case 'rate': return `${fmtNum(r.rate, 0)} msgs/s, broker CPU ${fmtNum(r.brokerCpu, 2)}, gen CPU ${fmtNum(r.genCpu, 2)}, lost ${r.lost}, dup ${r.dup}${r.drained === true ? '' : r.drained === 'cap' ? `, pending ${r.pending} (drain cap)` : ' (stalled before drained)'}`
    case 'latency': return `p50 ${fmtNum(r.p50, 3)} ms, p99 ${fmtNum(r.p99, 3)} ms, lost ${r.lost}`
    case 'connections': return `${fmtNum(r.rate, 0)} connects/s, ${fmtNum(r.kbPerConn, 1)} KB/conn, failed ${r.failed}`
    case 'offline': return `enqueue ${fmtNum(r.enqueueRate, 0)}/s, drain ${fmtNum(r.drainRate, 0)}/s (${fmtNum(r.reconnectToAllS, 2)} s), received ${r.received}/${r.messages}, session ${r.sessionPresent}, lost ${r.lost}${r.pending ? `, pending ${r.pending} (drain cap)` : ''}, dup ${r.dup}${r.restartMs ? `, restart ${(r.restartMs / 1000).toFixed(2)} s` : ''}`
    case 'retained': return `store ${fmtNum(r.storeRate, 0)}/s, wildcard first ${fmtNum(r.wildFirstMs, 2)} ms, exact first ${fmtNum(r.exactFirstMs, 2)} ms`
    case 'shared': return `delivered ${r.delivered}/${r.sent}, granted ${r.granted}`
    default: return ''
  }
}

main().catch(err => { console.error(err); process.exit(1) })
