#!/usr/bin/env node
// Culex in cluster mode for the benchmark: starts a private redis-server (AOF on, appendfsync as given) with its
// files in --dir, then Culex on it, and stops both together. For scenarios that stop the broker with SIGTERM only:
// a SIGKILL of this process would leave both children running.
//   node bench/ref/culex-redis.mjs --main dist/main.js --port 1883 --dir /tmp/x [--appendfsync everysec|always]
import { spawn } from 'node:child_process'
import net from 'node:net'
import { parseArgs } from 'node:util'

const { values } = parseArgs({ options: { main: { type: 'string' }, port: { type: 'string' }, dir: { type: 'string' }, appendfsync: { type: 'string', default: 'everysec' } } })

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

const culex = spawn(process.execPath, [...process.execArgv, values.main, 'start', '--mqtt-port', values.port, '--ws-port', '0', '--admin-port', '0',
  '--host', '127.0.0.1', '--data-dir', values.dir, '--log-level', 'warn', '--log-format', 'json'], {
  stdio: 'inherit', env: { ...process.env, CULEX_CLUSTER_REDIS_URL: `redis://127.0.0.1:${redisPort}` }
})
const stop = (signal) => { culex.kill(signal) }
process.on('SIGTERM', () => stop('SIGTERM'))
process.on('SIGINT', () => stop('SIGINT'))
culex.on('exit', (code) => {
  redis.once('exit', () => process.exit(code ?? 1))
  redis.kill('SIGTERM')
})
