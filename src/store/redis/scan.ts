import type { Redis } from 'ioredis'

/** Every key matching the glob, a SCAN page at a time (never KEYS, which blocks Redis). */
export async function * scanKeys (redis: Redis, match: string): AsyncGenerator<string[]> {
  let cursor = '0'
  do {
    const [next, keys] = await redis.scan(cursor, 'MATCH', match, 'COUNT', 1000)
    cursor = next
    if (keys.length > 0) yield keys
  } while (cursor !== '0')
}

/** Every field and value of a hash, a HSCAN page at a time, values as Buffers. */
export async function * scanHash (redis: Redis, key: string, match = '*'): AsyncGenerator<Array<[string, Buffer]>> {
  let cursor = '0'
  do {
    const [next, flat] = await redis.hscanBuffer(key, cursor, 'MATCH', match, 'COUNT', 1000)
    cursor = next.toString()
    const page: Array<[string, Buffer]> = []
    for (let i = 0; i < flat.length; i += 2) page.push([flat[i].toString(), flat[i + 1]])
    if (page.length > 0) yield page
  } while (cursor !== '0')
}
