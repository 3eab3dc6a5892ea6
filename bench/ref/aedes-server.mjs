#!/usr/bin/env node
// Reference broker: bare aedes 1.2.0 with its defaults (in-memory aedes-persistence, mqemitter), or with
// aedes-persistence-level on level (LevelDB), behind a plain net server on 127.0.0.1.
//
//   node bench/ref/aedes-server.mjs --port 1883 [--persistence level --dir ./data/level]
import net from 'node:net'
import { parseArgs } from 'node:util'
import { Aedes } from 'aedes'

const { values } = parseArgs({
  options: {
    port: { type: 'string', default: '1883' },
    host: { type: 'string', default: '127.0.0.1' },
    persistence: { type: 'string', default: 'memory' },
    dir: { type: 'string' }
  }
})

const opts = {}
if (values.persistence === 'level') {
  if (!values.dir) throw new Error('--persistence level needs --dir')
  const { Level } = await import('level')
  const { default: aedesPersistenceLevel } = await import('aedes-persistence-level')
  opts.persistence = aedesPersistenceLevel(new Level(values.dir))
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
  broker.close(() => {
    const p = opts.persistence
    if (p && typeof p.destroy === 'function') p.destroy(() => process.exit(0))
    else process.exit(0)
  })
  setTimeout(() => process.exit(1), 10000).unref()
}
process.on('SIGTERM', stop)
process.on('SIGINT', stop)
