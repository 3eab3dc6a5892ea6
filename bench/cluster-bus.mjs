#!/usr/bin/env node
// Cross-node delivery through the cluster bus: a QoS 1 subscriber on node A, a QoS 1 publisher on node B (at most
// --window unacknowledged), both nodes culex processes (dist/, `npm run build` first) on one private redis-server.
// For comparison, in the same run and interleaved: publisher and subscriber on the same cluster node (no bus), and
// one node without a cluster. Reports messages per second at the subscriber and per CPU-second of the culex
// processes and of redis-server (the machine is shared: CPU per message is the steadier figure).
//
//   node bench/cluster-bus.mjs [--messages 20000] [--window 500] [--rounds 3] [--payload 64] [--node-args="--cpu-prof --cpu-prof-dir=DIR"] [--dist DIR]
import { spawn } from 'node:child_process'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { parseArgs } from 'node:util'
import { setTimeout as sleep } from 'node:timers/promises'
import mqtt from 'mqtt'
import { freePort } from './lib/broker-process.mjs'
import { cpuSeconds } from './lib/proc.mjs'
import { repoDir } from './lib/paths.mjs'

const { values } = parseArgs({ options: { messages: { type: 'string', default: '20000' }, window: { type: 'string', default: '500' }, rounds: { type: 'string', default: '3' }, payload: { type: 'string', default: '64' }, 'node-args': { type: 'string', default: '' }, dist: { type: 'string', default: path.join(repoDir, 'dist') } } })
const N = Number(values.messages)
const WINDOW = Number(values.window)
const payload = Buffer.alloc(Number(values.payload), 'x')
const children = []

async function startRedis () {
  const port = await freePort()
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'culex-bench-redis-'))
  const proc = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--dir', dir, '--save', '', '--appendonly', 'no'], { stdio: 'ignore' })
  children.push(proc)
  for (let i = 0; i < 200; i++) {
    if (await reachable(port)) return { url: `redis://127.0.0.1:${port}`, pid: proc.pid }
    await sleep(25)
  }
  throw new Error('redis-server did not start')
}

async function reachable (port) {
  const net = await import('node:net')
  return await new Promise(resolve => {
    const s = net.connect(port, '127.0.0.1')
    s.once('connect', () => { s.destroy(); resolve(true) })
    s.once('error', () => resolve(false))
  })
}

/** A culex process; resolves with its pid and MQTT port once it logs "broker started". */
async function startNode (env) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'culex-bench-node-'))
  const proc = spawn(process.execPath, [...values['node-args'].split(' ').filter(Boolean), path.join(values.dist, 'main.js'), 'start', '--mqtt-port', '0', '--ws-port', '0', '--admin-port', '0', '--host', '127.0.0.1', '--data-dir', dir, '--log-format', 'json'], { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'inherit'] })
  children.push(proc)
  let out = ''
  return await new Promise((resolve, reject) => {
    proc.stdout.on('data', (d) => {
      out += d.toString()
      const port = /"listener":"mqtt"[^\n]*"port":(\d+)/.exec(out)
      if (port !== null && out.includes('"broker started"')) resolve({ proc, pid: proc.pid, port: Number(port[1]) })
    })
    proc.once('exit', code => reject(new Error(`culex exited ${code}: ${out}`)))
  })
}

async function connect (port, clientId) {
  const c = mqtt.connect(`mqtt://127.0.0.1:${port}`, { clientId, protocolVersion: 4, reconnectPeriod: 0, clean: true })
  await new Promise((resolve, reject) => { c.once('connect', resolve); c.once('error', reject) })
  return c
}

/** Publishes N QoS 1 messages from `pubPort`, received on `subPort`; returns rate and CPU per message. */
async function measure (subPort, pubPort, pids, routed) {
  const sub = await connect(subPort, 'bench-sub')
  let got = 0
  let done
  const all = new Promise(resolve => { done = resolve })
  sub.on('message', () => { if (++got === N) done() })
  await sub.subscribeAsync('bench/#', { qos: 1 })
  const pub = await connect(pubPort, 'bench-pub')
  await routed()
  const cpu0 = pids.map(cpuSeconds)
  const t0 = performance.now()
  let sent = 0
  let inflight = 0
  await new Promise((resolve) => {
    const pump = () => {
      while (inflight < WINDOW && sent < N) {
        inflight++
        sent++
        pub.publish('bench/t', payload, { qos: 1 }, () => { inflight--; if (sent < N) pump(); else if (inflight === 0) resolve() })
      }
    }
    pump()
  })
  await all
  const seconds = (performance.now() - t0) / 1000
  const cpu = pids.map((pid, i) => cpuSeconds(pid) - cpu0[i])
  sub.end(true)
  pub.end(true)
  return { perSecond: N / seconds, perCulexCpuSecond: N / cpu.slice(0, -1).reduce((a, b) => a + b, 0), redisCpuMsPer1k: cpu.at(-1) * 1e6 / N, got }
}

async function main () {
  const redis = await startRedis()
  const cluster = { CULEX_CLUSTER_REDIS_URL: redis.url, CULEX_CLUSTER_HEARTBEAT_INTERVAL_MS: '1000', CULEX_CLUSTER_NODE_TIMEOUT_MS: '5000' }
  const a = await startNode({ ...cluster, CULEX_CLUSTER_NODE_ID: 'a' })
  const b = await startNode({ ...cluster, CULEX_CLUSTER_NODE_ID: 'b' })
  const single = await startNode({})
  // the publisher's node learns the subscriber's filter over pub/sub: a moment after SUBACK
  const routed = () => sleep(300)
  const rows = { 'cross-node (sub on A, pub on B)': [], 'same cluster node (sub and pub on A)': [], 'single node, no cluster': [] }
  for (let round = 0; round < Number(values.rounds); round++) {
    rows['cross-node (sub on A, pub on B)'].push(await measure(a.port, b.port, [a.pid, b.pid, redis.pid], routed))
    rows['same cluster node (sub and pub on A)'].push(await measure(a.port, a.port, [a.pid, redis.pid], routed))
    rows['single node, no cluster'].push(await measure(single.port, single.port, [single.pid, redis.pid], async () => {}))
  }
  const median = xs => [...xs].sort((x, y) => x - y)[Math.floor(xs.length / 2)]
  console.log(`${N} QoS 1 messages of ${payload.length} bytes, at most ${WINDOW} unacknowledged, ${values.rounds} rounds (median [min-max])`)
  console.log('| path | msgs/s at the subscriber | msgs per culex CPU-second | redis-server CPU ms per 1k msgs |\n| --- | --- | --- | --- |')
  for (const [name, rs] of Object.entries(rows)) {
    const f = k => `${Math.round(median(rs.map(r => r[k])))} [${Math.round(Math.min(...rs.map(r => r[k])))}-${Math.round(Math.max(...rs.map(r => r[k])))}]`
    console.log(`| ${name} | ${f('perSecond')} | ${f('perCulexCpuSecond')} | ${f('redisCpuMsPer1k')} |`)
  }
}

/** Culex nodes get SIGTERM (so `--cpu-prof` in NODE_OPTIONS writes its profile), redis-server last. */
async function stopAll () {
  for (const c of children.slice(1).reverse()) {
    const gone = new Promise(resolve => c.once('exit', resolve))
    c.kill('SIGTERM')
    await Promise.race([gone, sleep(10_000)])
  }
  children[0]?.kill('SIGKILL')
}

main().catch((err) => { console.error(err); process.exitCode = 1 }).finally(stopAll)
