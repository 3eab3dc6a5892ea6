import { parseArgs } from 'node:util'
import { CulexError, exitCodes } from '../errors.js'
import { checkStore, inspectRedisStore, REDIS_FORMAT_VERSION, repairRedisStore, repairStore, type StoreCheck } from '../store/index.js'
import { storeDir } from './data-dir.js'
import { connectTarget, liveNodes, redisTarget } from './redis-target.js'
import { storageOptions } from './sessions-command.js'

export const storeHelp = `culex store check|repair [--data-dir dir | --redis-url url] [--json]    verify a store, or repair it

  check    reads every record and prints what is stored and any problem; exit 0 healthy, 1 problems found
  repair   a data directory: moves <dataDir>/store aside to store.corrupt-<time> and leaves an empty one (stop
           the broker first). A cluster's Redis: rebuilds damaged queues from the messages they hold, gives
           sessions left without a record one, pairs wills with their owners, and moves what cannot be read
           to the hash <prefix>repaired:<time>; every node must be stopped (ERR_CLUSTER_NODES_RUNNING)
  --data-dir defaults to ./data, like the broker. In cluster mode (--redis-url, default $CULEX_CLUSTER_REDIS_URL;
  key prefix $CULEX_CLUSTER_REDIS_KEY_PREFIX or culex:) the store in the cluster's Redis; check works with the
  nodes running.`

function print (where: string, result: StoreCheck, version: string): void {
  process.stdout.write(`${where}: ${result.ok ? 'healthy' : `${result.problems.length} problem(s)`}, ${version} ${String(result.formatVersion ?? 'none')}\n`)
  for (const [what, n] of Object.entries(result.counts)) process.stdout.write(`  ${what}: ${n}\n`)
  for (const p of result.problems) process.stdout.write(`  problem: ${p}\n`)
}

async function redisCommand (action: 'check' | 'repair', url: string, json: boolean): Promise<number> {
  const { redis, prefix, location } = await connectTarget(redisTarget(url))
  const where = `Redis at ${location} (key prefix ${prefix})`
  try {
    if (action === 'check') {
      const { check } = await inspectRedisStore(redis, prefix, REDIS_FORMAT_VERSION)
      if (json) process.stdout.write(JSON.stringify({ redis: location, prefix, ...check }) + '\n')
      else print(where, check, 'layout version')
      return check.ok ? exitCodes.ok : exitCodes.failure
    }
    const alive = await liveNodes(redis, prefix)
    if (alive.length > 0) {
      throw new CulexError('ERR_CLUSTER_NODES_RUNNING', `culex store repair rewrites what running nodes hold in memory: stop every node first (alive: ${alive.join(', ')})`)
    }
    const repair = await repairRedisStore(redis, prefix, REDIS_FORMAT_VERSION)
    if (json) process.stdout.write(JSON.stringify({ redis: location, prefix, ...repair }) + '\n')
    else {
      process.stdout.write(`${where}: ${repair.before.problems.length} problem(s) found before the repair\n`)
      for (const p of repair.before.problems) process.stdout.write(`  was: ${p}\n`)
      if (repair.setAside !== undefined) process.stdout.write(`set aside what could not be kept (${repair.lostMessages} queued message(s) without a readable body) in ${repair.setAside}\n`)
      print(where, repair.after, 'layout version')
    }
    return repair.after.ok ? exitCodes.ok : exitCodes.failure
  } finally {
    await redis.quit().catch(() => { redis.disconnect() })
  }
}

export async function storeCommand (args: string[]): Promise<number> {
  const { values, positionals } = parseArgs({ args, options: storageOptions, allowPositionals: true, strict: true })
  const action = positionals[0]
  if ((action !== 'check' && action !== 'repair') || positionals.length !== 1) {
    throw new CulexError('ERR_USAGE', 'usage: culex store check|repair [--data-dir dir | --redis-url url]')
  }
  if (values['redis-url'] !== '') return await redisCommand(action, values['redis-url'], values.json)
  const dir = storeDir(values['data-dir'])
  if (action === 'check') {
    const result = await checkStore(dir)
    if (values.json) process.stdout.write(JSON.stringify({ dir, ...result }) + '\n')
    else print(dir, result, 'format version')
    return result.ok ? exitCodes.ok : exitCodes.failure
  }
  const { movedTo } = await repairStore(dir)
  process.stdout.write(`moved ${dir} to ${movedTo}; the broker starts with an empty store\n`)
  return exitCodes.ok
}
