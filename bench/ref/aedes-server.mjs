#!/usr/bin/env node
// Reference broker: bare aedes 1.2.0 with its defaults (in-memory aedes-persistence, mqemitter), or with
// aedes-persistence-level on level (LevelDB), or a node of aedes' cluster recipe (aedes-persistence-redis and
// mqemitter-redis on one Redis, as its README advises), behind a plain net server on 127.0.0.1.
//
//   node bench/ref/aedes-server.mjs --port 1883 [--persistence level --dir ./data/level]
//   node bench/ref/aedes-server.mjs --port 1883 --persistence redis --redis-port 6379   # a cluster node
import net from 'node:net'
import { parseArgs } from 'node:util'
import { Aedes } from 'aedes'

const { values } = parseArgs({
  options: {
    port: { type: 'string', default: '1883' },
    host: { type: 'string', default: '127.0.0.1' },
    persistence: { type: 'string', default: 'memory' },
    dir: { type: 'string' },
    'redis-port': { type: 'string' }
  }
})

const opts = {}
if (values.persistence === 'level') {
  if (!values.dir) throw new Error('--persistence level needs --dir')
  const { Level } = await import('level')
  const { default: aedesPersistenceLevel } = await import('aedes-persistence-level')
  opts.persistence = aedesPersistenceLevel(new Level(values.dir))
} else if (values.persistence === 'redis') {
  // the recipe as shipped: every option at its default (maxSessionDelivery 1000, mqemitter-redis' 10k-entry LRU)
  if (!values['redis-port']) throw new Error('--persistence redis needs --redis-port')
  const redis = { host: '127.0.0.1', port: Number(values['redis-port']) }
  const { default: aedesPersistenceRedis } = await import('aedes-persistence-redis')
  const { default: mqemitterRedis } = await import('mqemitter-redis')
  opts.persistence = aedesPersistenceRedis(redis)
  opts.mq = mqemitterRedis(redis)
  // without a listener, a Redis connection error of the emitter (a timeout on a loaded machine) ends the process
  opts.mq.state.on('error', err => console.error('mqemitter-redis error', err))
} else if (values.persistence !== 'memory') {
  throw new Error(`unknown persistence ${values.persistence}`)
}

const broker = await Aedes.createBroker(opts)
broker.on('error', err => console.error('broker error', err))
const server = net.createServer(broker.handle)
server.listen(Number(values.port), values.host, () => {
  console.log(JSON.stringify({ msg: 'listening', port: server.address().port, persistence: values.persistence }))
})

let stopping = false
function stop () {
  if (stopping) process.exit(1)
  stopping = true
  server.close()
  const p = opts.persistence
  // the redis persistence unsubscribes through the emitter, so it goes before broker.close closes the emitter
  const first = values.persistence === 'redis' ? p.destroy() : Promise.resolve()
  first.finally(() => broker.close(() => {
    if (values.persistence === 'level') p.destroy(() => process.exit(0))
    else process.exit(0)
  }))
  setTimeout(() => process.exit(1), 10000).unref()
}
process.on('SIGTERM', stop)
process.on('SIGINT', stop)
