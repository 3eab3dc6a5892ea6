#!/usr/bin/env node
// The Redis commands behind one QoS 1 message from a publisher on node A to a persistent subscriber on node B, as
// `redis-cli monitor` shows them, for Culex's cluster or aedes' recipe (bench/ref/cluster.mjs): which commands,
// from which connection, in which order (what the publisher's PUBACK waits for). Heartbeats and stream reads are
// left out. Needs `npm run build` for Culex, and redis-cli.
//   node bench/cluster-trace.mjs --broker culex|aedes [--main dist/main.js]
import { spawn } from 'node:child_process'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { parseArgs } from 'node:util'
import mqtt from 'mqtt'
import { freePort, waitForPort } from './lib/broker-process.mjs'
import { benchDir, repoDir } from './lib/paths.mjs'

const { values } = parseArgs({ options: { broker: { type: 'string', default: 'culex' }, main: { type: 'string', default: path.join(repoDir, 'dist/main.js') } } })
const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'culex-trace-'))
const ports = [await freePort(), await freePort()]
const cluster = spawn(process.execPath, [path.join(benchDir, 'ref/cluster.mjs'), '--broker', values.broker, '--main', values.main, '--ports', ports.join(','), '--dir', dir], { cwd: repoDir, stdio: 'ignore' })
try {
  for (const port of ports) await waitForPort(port, cluster)
  const redisPort = fs.readFileSync(path.join(dir, 'redis-port'), 'utf8')
  const sub = await mqtt.connectAsync(`mqtt://127.0.0.1:${ports[1]}`, { clientId: 'trace-sub', clean: false, reconnectPeriod: 0 })
  await sub.subscribeAsync('trace/#', { qos: 1 })
  const pub = await mqtt.connectAsync(`mqtt://127.0.0.1:${ports[0]}`, { clientId: 'trace-pub', reconnectPeriod: 0 })
  let got = 0
  sub.on('message', () => got++)
  // until node A routes to B (and a first message has warmed every path)
  for (let i = 0; i < 100 && got === 0; i++) { await pub.publishAsync('trace/x', 'warm', { qos: 1 }); await sleep(50) }
  await sleep(1500)
  const monitor = spawn('redis-cli', ['-p', redisPort, 'monitor'])
  let out = ''
  monitor.stdout.on('data', d => { out += d })
  await sleep(300)
  const before = got
  const t0 = performance.now()
  await pub.publishAsync('trace/x', 'traced', { qos: 1 })
  const ackMs = performance.now() - t0
  while (got === before) await sleep(1)
  const deliveredMs = performance.now() - t0
  await sleep(500)
  monitor.kill()
  const noise = /"(ping|info|xread|mget|smembers|multi|exec)"|"hget" "culex:cluster:filter-versions"|"(hset|set|pexpire)" "culex:cluster:(nodes|alive)|\$SYS|"hgetall" "culex:cluster/i
  const lines = out.split('\n').filter(l => l.trim() !== '' && l !== 'OK' && !noise.test(l))
  console.log(`${values.broker}: PUBACK ${ackMs.toFixed(2)} ms, delivered ${deliveredMs.toFixed(2)} ms after the PUBLISH was sent; ${lines.filter(l => !l.includes('[0 lua]')).length} commands from the nodes, ${lines.filter(l => l.includes('[0 lua]')).length} inside scripts`)
  for (const l of lines) console.log(l.replace(/\\x[0-9a-f]{2}/g, '').slice(0, 150))
  await sub.endAsync()
  await pub.endAsync()
} finally {
  cluster.kill('SIGTERM')
  await new Promise(resolve => cluster.once('exit', resolve))
  fs.rmSync(dir, { recursive: true, force: true })
}
