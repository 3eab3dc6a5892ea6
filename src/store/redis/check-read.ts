import type { Redis } from 'ioredis'
import { escapeGlob } from './keys.js'
import { scanHash, scanKeys } from './scan.js'

/** Per-client keys of the layout (keys.ts), by the kind their name starts with. */
export const CLIENT_KINDS = ['subs', 'q', 'qm', 'qx', 'qe', 'in'] as const
export type ClientKind = typeof CLIENT_KINDS[number]

/** Keys of the layout that are one per store, with the Redis type each must have. */
export const SINGLE_KEYS: Record<string, string> = {
  format: 'string',
  'subs-log': 'stream',
  'subs-gen': 'string',
  sessions: 'hash',
  'queue-totals': 'hash',
  retained: 'hash',
  wills: 'hash',
  'will-owners': 'hash',
  'wills-aside': 'hash',
  groups: 'hash',
  'group-seq': 'string',
  dlq: 'zset',
  'dlq-records': 'hash',
  'dlq-seq': 'string',
  'dlq-log': 'stream',
  'dlq-gen': 'string',
  'replica-mark': 'string'
}

const CLIENT_TYPES: Record<ClientKind, string> = { subs: 'hash', q: 'zset', qm: 'hash', qx: 'hash', qe: 'hash', in: 'hash' }

/**
 * Where `culex store repair` sets aside what it removes: `<prefix>repaired:<time>`, a hash "<key> <field>" → value,
 * and `<prefix>repaired:<time>:<name>` for a whole key of the wrong type.
 */
export const ASIDE = 'repaired:'

/** Every key under a prefix, sorted by what it is in the layout. */
export interface Inventory {
  /** Client id → the per-client keys it has. */
  clients: Map<string, Set<ClientKind>>
  /** Single keys present (names without the prefix). */
  singles: Set<string>
  epochs: number
  /** Keys of the cluster messaging and membership (`<prefix>cluster:…`), not the store's. */
  clusterKeys: number
  /** Keys of what earlier repairs set aside. */
  aside: string[]
  /** Keys that fit no part of the layout, and keys of the wrong type (full names). */
  unknown: string[]
  wrongType: Array<{ key: string, type: string, expected: string }>
  keys: number
}

function classify (name: string): { kind: ClientKind, clientId: string } | 'single' | 'epoch' | 'cluster' | 'aside' | undefined {
  if (SINGLE_KEYS[name] !== undefined) return 'single'
  if (name.startsWith('cluster:')) return 'cluster'
  if (name.startsWith('epoch:')) return 'epoch'
  if (name.startsWith(ASIDE)) return 'aside'
  const colon = name.indexOf(':')
  const kind = name.slice(0, colon) as ClientKind
  if (colon > 0 && CLIENT_KINDS.includes(kind)) return { kind, clientId: name.slice(colon + 1) }
  return undefined
}

/** SCANs every key under the prefix (never KEYS) and checks each one's type. */
export async function readInventory (redis: Redis, prefix: string): Promise<Inventory> {
  const inv: Inventory = { clients: new Map(), singles: new Set(), epochs: 0, clusterKeys: 0, aside: [], unknown: [], wrongType: [], keys: 0 }
  for await (const page of scanKeys(redis, `${escapeGlob(prefix)}*`)) {
    const types = await redis.pipeline(page.map(key => ['type', key])).exec() ?? []
    page.forEach((key, i) => {
      const type = String(types[i]?.[1])
      const name = key.slice(prefix.length)
      const what = classify(name)
      if (what === 'cluster') {
        inv.clusterKeys++
        return
      }
      inv.keys++
      if (what === 'aside') {
        inv.aside.push(key)
        return
      }
      const expected = what === undefined ? undefined : what === 'single' ? SINGLE_KEYS[name] : what === 'epoch' ? 'string' : CLIENT_TYPES[what.kind]
      if (expected === undefined) inv.unknown.push(key)
      else if (type !== expected) inv.wrongType.push({ key, type, expected })
      else if (what === 'single') inv.singles.add(name)
      else if (what === 'epoch') inv.epochs++
      else if (typeof what === 'object') {
        let kinds = inv.clients.get(what.clientId)
        if (kinds === undefined) inv.clients.set(what.clientId, kinds = new Set())
        kinds.add(what.kind)
      }
    })
  }
  return inv
}

/** Every field of a hash with values as Buffers, a HSCAN page at a time. */
export async function readHash (redis: Redis, key: string): Promise<Map<string, Buffer>> {
  const all = new Map<string, Buffer>()
  for await (const page of scanHash(redis, key)) for (const [field, value] of page) all.set(field, value)
  return all
}
