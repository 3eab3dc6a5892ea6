#!/usr/bin/env node
// A cluster for the benchmark: a private redis-server (AOF on, appendfsync as given) with its files in --dir, then
// one broker node per port on it, and all of them stopped together. `--broker culex`: Culex nodes in cluster mode
// (dist/main.js, CULEX_CLUSTER_REDIS_URL). `--broker aedes`: the aedes recipe, bench/ref/aedes-server.mjs with
// mqemitter-redis and aedes-persistence-redis. Writes the Redis port to <dir>/redis-port, so the generator can read
// Redis' command counts. For scenarios that stop the broker with SIGTERM only: a SIGKILL of this process would leave
// the children running.
//   node bench/ref/cluster.mjs --broker culex --main dist/main.js --ports 1883,1884 --dir /tmp/x [--appendfsync everysec|always]
import { spawn } from 'node:child_process'
import fs from 'node:fs'
import net from 'node:net'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { parseArgs } from 'node:util'

const { values } = parseArgs({
  options: {
    broker: { type: 'string', default: 'culex' },
    main: { type: 'string' },
    ports: { type: 'string' },
    dir: { type: 'string' },
    appendfsync: { type: 'string', default: 'everysec' }
  }
})
if (!values.ports || !values.dir) throw new Error('--ports and --dir are required')
if (values.broker === 'culex' && !values.main) throw new Error('--broker culex needs --main')

const freePort = () => new Promise((resolve, reject) => {
  const server = net.createServer()
  server.once('error', reject)
  server.listen(0, '127.0.0.1', () => { const { port } = server.address(); server.close(() => resolve(port)) })
})

const answers = (port) => new Promise((resolve) => {
  const socket = net.connect(port, '127.0.0.1')
  socket.once('connect', () => { socket.write('PING\r\n'); socket.once('data', d => { socket.destroy(); resolve(d.toString().startsWith('+PONG')) }) })
  socket.once('error', () => { socket.destroy(); resolve(false) })
})

const redisPort = await freePort()
const redis = spawn('redis-server', ['--port', String(redisPort), '--bind', '127.0.0.1', '--dir', values.dir, '--save', '',
  '--appendonly', 'yes', '--appendfsync', values.appendfsync, '--loglevel', 'warning', '--protected-mode', 'no'], { stdio: 'inherit' })
for (let i = 0; i < 400 && !await answers(redisPort); i++) await new Promise(resolve => setTimeout(resolve, 25))
fs.writeFileSync(path.join(values.dir, 'redis-port'), String(redisPort))

const aedesServer = path.join(path.dirname(fileURLToPath(import.meta.url)), 'aedes-server.mjs')
// unused in cluster mode, but each node gets its own
const nodeDir = (i) => { const d = path.join(values.dir, `node-${i + 1}`); fs.mkdirSync(d, { recursive: true }); return d }
const node = (port, i) => values.broker === 'aedes'
  ? spawn(process.execPath, [...process.execArgv, aedesServer, '--port', port, '--persistence', 'redis', '--redis-port', String(redisPort)], { stdio: 'inherit' })
  : spawn(process.execPath, [...process.execArgv, values.main, 'start', '--mqtt-port', port, '--ws-port', '0', '--admin-port', '0',
    '--host', '127.0.0.1', '--data-dir', nodeDir(i), '--log-level', 'warn', '--log-format', 'json'], {
    stdio: 'inherit', env: { ...process.env, CULEX_CLUSTER_REDIS_URL: `redis://127.0.0.1:${redisPort}`, CULEX_CLUSTER_NODE_ID: `node-${i + 1}` }
  })
const nodes = values.ports.split(',').map(node)

// A node that dies on its own takes the cluster down with it (exit code 1), so the driver sees a broker that exited
// instead of one that never gets ready.
let left = nodes.length
let stopping = false
let code = 0
const stopRedis = () => { redis.once('exit', () => process.exit(code)); redis.kill('SIGTERM') }
const stop = (signal) => { stopping = true; for (const n of nodes) if (n.exitCode === null && n.signalCode === null) n.kill(signal) }
for (const n of nodes) {
  n.on('exit', () => {
    if (!stopping) { code = 1; stop('SIGTERM') }
    if (--left === 0) stopRedis()
  })
}
process.on('SIGTERM', () => stop('SIGTERM'))
process.on('SIGINT', () => stop('SIGINT'))
