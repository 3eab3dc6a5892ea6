import { openRedisStore, type CulexStore } from '../../../src/store/index.js'
import { startTestRedis, type TestRedis } from '../../helpers/redis-server.js'
import { open, silentLogger, TempDirs, unlimited, type OpenOverrides } from './store.js'

/** One store backend as the shared store tests see it. */
export interface StoreBackend {
  name: 'LevelDB' | 'Redis'
  /** A fresh place for one store: a directory, or a key prefix on this test file's own redis-server. */
  make: () => Promise<string>
  /** Opens (again) the store at that place. */
  open: (where: string, overrides?: OpenOverrides) => Promise<CulexStore>
  /** After each test: removes the directories (the Redis keys stay under their unused prefixes). */
  cleanup: () => Promise<void>
  /** After the file: stops its redis-server. */
  close: () => Promise<void>
}

function levelBackend (): StoreBackend {
  const dirs = new TempDirs()
  return {
    name: 'LevelDB',
    make: async () => await dirs.make(),
    open: async (dir, overrides) => await open(dir, overrides),
    cleanup: async () => { await dirs.cleanup() },
    close: async () => undefined
  }
}

function redisBackend (): StoreBackend {
  let redis: Promise<TestRedis> | undefined
  let made = 0
  const server = async (): Promise<TestRedis> => await (redis ??= startTestRedis())
  return {
    name: 'Redis',
    make: async () => {
      await server()
      return `test-${++made}:`
    },
    open: async (prefix, overrides = {}) => {
      const { limits, dir: _dir, sync: _sync, onCorrupt: _onCorrupt, ...rest } = overrides
      return await openRedisStore({ redis: { url: (await server()).url, prefix }, logger: silentLogger(), ...rest, limits: { ...unlimited, ...limits } })
    },
    cleanup: async () => undefined,
    close: async () => { if (redis !== undefined) await (await redis).close() }
  }
}

/** LevelDB and Redis, for `describe.each(storeBackends())`; the Redis one starts its server on first use. */
export function storeBackends (): StoreBackend[] {
  return [levelBackend(), redisBackend()]
}
