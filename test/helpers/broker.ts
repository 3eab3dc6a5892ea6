import { mkdtemp, rm } from 'node:fs/promises'
import os from 'node:os'
import path from 'node:path'
import { Writable } from 'node:stream'
import { loadConfig } from '../../src/config/load.js'
import { createLogger } from '../../src/log/logger.js'
import { startBroker, type Culex } from '../../src/broker.js'
import { startTestRedis, type TestRedis } from './redis-server.js'

export interface TestBroker {
  broker: Culex
  dataDir: string
  /** mqtt://127.0.0.1:<port> */
  mqttUrl: string
  /** ws://127.0.0.1:<port>/mqtt */
  wsUrl: string
  mqttPort: number
  wsPort: number
  adminUrl: string
  /** Every log line written so far, parsed. */
  logs: Array<Record<string, unknown>>
  /** Graceful stop and start again on the same data dir (new ports). */
  restart: () => Promise<TestBroker>
  /** Stops the broker and removes its data dir. */
  close: () => Promise<void>
}

/**
 * The store broker-level tests run on: LevelDB, or Redis with TEST_STORE=redis (docs/testing.md). A test of
 * something one store does differently by design says so with it, and checks what that store does instead.
 */
export function testStore (): 'leveldb' | 'redis' {
  return process.env.TEST_STORE === 'redis' ? 'redis' : 'leveldb'
}

/**
 * A real broker in this process on free ports (port 0) with its own temporary data dir. `settings` are dotted
 * config keys, e.g. { 'sessions.maxQueuedMessages': 10 }.
 */
export async function startTestBroker (settings: Record<string, unknown> = {}, existingDir?: string): Promise<TestBroker> {
  // TEST_STORE=redis runs a broker-level test file on the Redis store (cluster mode), a private redis-server
  // per broker (AOF always, kept across restart()), instead of LevelDB (docs/testing.md).
  if (process.env.TEST_STORE === 'redis' && settings['cluster.redisUrl'] === undefined) {
    const redis = await startTestRedis({ appendfsync: 'always' })
    const broker = await startTestBroker({ ...settings, 'cluster.redisUrl': redis.url }, existingDir).catch(async (err: unknown) => {
      await redis.close()
      throw err
    })
    return withRedis(broker, redis)
  }
  const dataDir = existingDir ?? await mkdtemp(path.join(os.tmpdir(), 'culex-test-'))
  const { config } = await loadConfig({
    flags: {
      'listeners.mqtt.port': 0,
      'listeners.mqtt.host': '127.0.0.1',
      'listeners.ws.port': 0,
      'listeners.ws.host': '127.0.0.1',
      'admin.port': 0,
      'log.level': 'info',
      dataDir,
      ...settings
    }
  })
  const logs: Array<Record<string, unknown>> = []
  const sink = new Writable({
    write (chunk: Buffer, _enc, cb) {
      for (const line of chunk.toString().split('\n')) if (line !== '') logs.push(JSON.parse(line) as Record<string, unknown>)
      cb()
    }
  })
  const log = createLogger({ level: config.log.level, format: 'json', destination: sink })
  const broker = await startBroker(config, log)
  const port = (name: string): number => broker.listeners.find(l => l.name === name)?.port ?? -1
  const self: TestBroker = {
    broker,
    dataDir,
    mqttPort: port('mqtt'),
    wsPort: port('ws'),
    mqttUrl: `mqtt://127.0.0.1:${port('mqtt')}`,
    wsUrl: `ws://127.0.0.1:${port('ws')}${config.listeners.ws.path}`,
    adminUrl: broker.admin === undefined ? '' : `http://127.0.0.1:${broker.admin.port}`,
    logs,
    restart: async () => {
      await broker.close()
      return await startTestBroker(settings, dataDir)
    },
    close: async () => {
      await broker.close()
      await rm(dataDir, { recursive: true, force: true })
    }
  }
  return self
}

/** The broker of TEST_STORE=redis: its redis-server stays across restarts and goes with close. */
function withRedis (broker: TestBroker, redis: TestRedis): TestBroker {
  return {
    ...broker,
    restart: async () => withRedis(await broker.restart(), redis),
    close: async () => {
      await broker.close()
      await redis.close()
    }
  }
}
