import { decodeHead } from '../codec.js'

/** A session queue as Redis holds it (keys.ts: q, qm, qx, qe), read for a check. */
export interface QueueKeys {
  /** Members of `q:<client>` (the FIFO order). */
  order: string[]
  /** `qm:<client>`: seq → encoded packet. */
  bodies: Map<string, Buffer>
  /** `qx:<client>`: every field. */
  index: Record<string, string>
  /** The seqs `qe:<client>` lists: evicted by dropOldest, out of the order until their dead letters are written. */
  evicted: string[]
}

/**
 * What the queue should be: each readable message once, with the lookups and counts the scripts keep; the evicted
 * ones put back in the order as waiting messages (what a start does with those a crash left: RESTORE_EVICTED).
 */
export interface QueueRebuild {
  order: number[]
  index: Record<string, string>
  /** Seqs whose message cannot be delivered (no body, or an undecodable one), with what Redis had of them. */
  lost: Array<{ seq: string, body?: Buffer, state?: string }>
}

export interface QueueInspection {
  problems: string[]
  /** Entries in the queue (the evicted ones not), as it is, or as the rebuild leaves it when there are problems. */
  queued: number
  inflight: number
  /** Payload bytes of those entries (what the queue totals count). */
  bytes: number
  /** Entries evicted, awaiting their dead letters. */
  evicted: number
  rebuild: QueueRebuild
}

const STATE = /^([0-2])\|([pr])\|(\d*)\|(\d+)\|(\d+)\|(.*)$/
// h, hb, ht, hg: the node holding the session's connection (queue-holders.ts)
const INDEX_FIELD = /^(n|w|wb|h|hb|ht|hg|e:\d+|m:\d+|c:.+:\d+)$/

/** The entry state the scripts keep in `e:<seq>` (scripts.ts), derived from the stored packet. */
function stateFromBody (body: Buffer): string {
  const { fields, meta, payloadBytes } = decodeHead(body)
  const t = typeof meta?.t === 'number' ? meta.t : 0
  const mid = typeof fields.messageId === 'number' ? String(fields.messageId) : ''
  if (fields.cmd === 'pubrel') return `2|r|${mid}|0|${t}|`
  const bk = typeof fields.brokerId === 'string' && typeof fields.brokerCounter === 'number' ? `${fields.brokerId}:${fields.brokerCounter}` : ''
  return `${typeof fields.qos === 'number' ? fields.qos : 1}|p|${mid}|${payloadBytes}|${t}|${bk}`
}

/**
 * Checks one session queue against the invariants the scripts keep: every seq in the order or evicted (qe, never
 * both) has a state and a readable body and nothing else has either; the packet-id (`m:`) and broker-counter (`c:`) lookups point at the
 * entry that holds them; `w`/`wb` count the waiting messages and their bytes; `n` is at least the highest seq.
 * Returns the problems found and the queue as it should be (what `culex store repair` writes).
 */
export function inspectQueue (clientId: string, keys: QueueKeys): QueueInspection {
  const problems: string[] = []
  const where = `queue of ${JSON.stringify(clientId)}`
  const inOrder = new Set(keys.order)
  const evicted = new Set(keys.evicted)
  const seqs = new Set<string>([...keys.order, ...keys.bodies.keys(), ...keys.evicted])
  for (const field of Object.keys(keys.index)) {
    if (field.startsWith('e:')) seqs.add(field.slice(2))
    if (!INDEX_FIELD.test(field)) problems.push(`${where}: unknown index field ${JSON.stringify(field)}`)
  }
  const rebuild: QueueRebuild = { order: [], index: {}, lost: [] }
  const lookups: Record<string, string> = {}
  // as the rebuild leaves the queue (the evicted entries back in it), and as it is (without them)
  const all = { waiting: 0, waitingBytes: 0, entries: 0, bytes: 0 }
  const now = { waiting: 0, waitingBytes: 0, entries: 0, bytes: 0 }
  let inflight = 0
  let out = 0
  for (const seq of [...seqs].sort((a, b) => Number(a) - Number(b))) {
    const body = keys.bodies.get(seq)
    const state = keys.index[`e:${seq}`]
    const entry = evicted.has(seq) ? `evicted entry ${seq}` : `entry ${seq}`
    if (!/^\d+$/.test(seq)) {
      problems.push(`${where}: seq ${JSON.stringify(seq)} is not a number`)
      rebuild.lost.push({ seq, body, state })
      continue
    }
    if (body === undefined) {
      problems.push(`${where}: ${entry} has no message body (${state === undefined ? 'no state either' : `state ${state}`})`)
      rebuild.lost.push({ seq, state })
      continue
    }
    let derived: string
    try {
      derived = stateFromBody(body)
    } catch (err) {
      problems.push(`${where}: ${entry}: ${(err as Error).message}`)
      rebuild.lost.push({ seq, body, state })
      continue
    }
    const gone = evicted.has(seq) && !inOrder.has(seq)
    if (evicted.has(seq) && inOrder.has(seq)) problems.push(`${where}: entry ${seq} is both in the queue order and evicted`)
    else if (!gone && !inOrder.has(seq)) problems.push(`${where}: message ${seq} is missing from the queue order`)
    let kept = state
    if (state === undefined) problems.push(`${where}: ${entry} has no state`)
    else if (!STATE.test(state)) problems.push(`${where}: ${entry} has an invalid state ${JSON.stringify(state)}`)
    if (kept === undefined || !STATE.test(kept)) kept = derived
    const [, , kind, mid, bytes, , bk] = STATE.exec(kept) as RegExpExecArray
    if (gone && (kind !== 'p' || mid !== '')) problems.push(`${where}: ${entry} is not a waiting message`)
    rebuild.order.push(Number(seq))
    rebuild.index[`e:${seq}`] = kept
    const counts = gone ? [all] : [all, now]
    if (gone) out++
    for (const c of counts) {
      c.entries++
      c.bytes += Number(bytes)
    }
    if (mid !== '') {
      inflight++
      lookups[`m:${mid}`] = seq
    } else if (kind === 'p') {
      for (const c of counts) {
        c.waiting++
        c.waitingBytes += Number(bytes)
      }
    }
    if (bk !== '') lookups[`c:${bk}`] = seq
  }
  for (const [field, seq] of Object.entries(lookups)) {
    if (keys.index[field] === undefined) problems.push(`${where}: lookup ${field} of entry ${seq} is missing`)
    else if (keys.index[field] !== seq) problems.push(`${where}: lookup ${field} points at ${keys.index[field]}, the entry is ${seq}`)
  }
  for (const field of Object.keys(keys.index)) {
    if ((field.startsWith('m:') || field.startsWith('c:')) && lookups[field] === undefined) problems.push(`${where}: lookup ${field} points at no entry`)
  }
  const counted = (field: 'w' | 'wb', value: number): void => {
    if (Number(keys.index[field] ?? 0) !== value) problems.push(`${where}: ${field} is ${keys.index[field] ?? 'absent'}, the entries say ${value}`)
  }
  counted('w', now.waiting)
  counted('wb', now.waitingBytes)
  const highest = Math.max(0, ...rebuild.order, ...rebuild.lost.map(l => Number(l.seq)).filter(Number.isFinite))
  const n = Number(keys.index.n ?? 0)
  if (!(n >= highest)) problems.push(`${where}: next seq n is ${keys.index.n ?? 'absent'}, below entry ${highest}`)
  Object.assign(rebuild.index, lookups, { n: String(Math.max(Number.isFinite(n) ? n : 0, highest)), w: String(all.waiting), wb: String(all.waitingBytes) })
  const leaves = problems.length > 0 ? all : now
  return { problems, queued: leaves.entries, inflight, bytes: leaves.bytes, evicted: problems.length > 0 ? 0 : out, rebuild }
}
