import { decodeHead } from '../codec.js'

/** A session queue as Redis holds it (keys.ts: q, qm, qx), read for a check. */
export interface QueueKeys {
  /** Members of `q:<client>` (the FIFO order). */
  order: string[]
  /** `qm:<client>`: seq → encoded packet. */
  bodies: Map<string, Buffer>
  /** `qx:<client>`: every field. */
  index: Record<string, string>
}

/** What the queue should be: each readable message once, with the lookups and counts the scripts keep. */
export interface QueueRebuild {
  order: number[]
  index: Record<string, string>
  /** Seqs whose message cannot be delivered (no body, or an undecodable one), with what Redis had of them. */
  lost: Array<{ seq: string, body?: Buffer, state?: string }>
}

export interface QueueInspection {
  problems: string[]
  queued: number
  inflight: number
  /** Payload bytes of the entries kept (what the queue totals count). */
  bytes: number
  rebuild: QueueRebuild
}

const STATE = /^([0-2])\|([pr])\|(\d*)\|(\d+)\|(\d+)\|(.*)$/
const INDEX_FIELD = /^(n|w|wb|e:\d+|m:\d+|c:.+:\d+)$/

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
 * Checks one session queue against the invariants the scripts keep: every seq in the order has a state and a
 * readable body and nothing else has either; the packet-id (`m:`) and broker-counter (`c:`) lookups point at the
 * entry that holds them; `w`/`wb` count the waiting messages and their bytes; `n` is at least the highest seq.
 * Returns the problems found and the queue as it should be (what `culex store repair` writes).
 */
export function inspectQueue (clientId: string, keys: QueueKeys): QueueInspection {
  const problems: string[] = []
  const where = `queue of ${JSON.stringify(clientId)}`
  const inOrder = new Set(keys.order)
  const seqs = new Set<string>([...keys.order, ...keys.bodies.keys()])
  for (const field of Object.keys(keys.index)) {
    if (field.startsWith('e:')) seqs.add(field.slice(2))
    if (!INDEX_FIELD.test(field)) problems.push(`${where}: unknown index field ${JSON.stringify(field)}`)
  }
  const rebuild: QueueRebuild = { order: [], index: {}, lost: [] }
  const lookups: Record<string, string> = {}
  let waiting = 0
  let waitingBytes = 0
  let inflight = 0
  let total = 0
  for (const seq of [...seqs].sort((a, b) => Number(a) - Number(b))) {
    const body = keys.bodies.get(seq)
    const state = keys.index[`e:${seq}`]
    if (!/^\d+$/.test(seq)) {
      problems.push(`${where}: seq ${JSON.stringify(seq)} is not a number`)
      rebuild.lost.push({ seq, body, state })
      continue
    }
    if (body === undefined) {
      problems.push(`${where}: entry ${seq} has no message body (${state === undefined ? 'no state either' : `state ${state}`})`)
      rebuild.lost.push({ seq, state })
      continue
    }
    let derived: string
    try {
      derived = stateFromBody(body)
    } catch (err) {
      problems.push(`${where}: entry ${seq}: ${(err as Error).message}`)
      rebuild.lost.push({ seq, body, state })
      continue
    }
    if (!inOrder.has(seq)) problems.push(`${where}: message ${seq} is missing from the queue order`)
    let kept = state
    if (state === undefined) problems.push(`${where}: entry ${seq} has no state`)
    else if (!STATE.test(state)) problems.push(`${where}: entry ${seq} has an invalid state ${JSON.stringify(state)}`)
    if (kept === undefined || !STATE.test(kept)) kept = derived
    const [, , kind, mid, bytes, , bk] = STATE.exec(kept) as RegExpExecArray
    rebuild.order.push(Number(seq))
    rebuild.index[`e:${seq}`] = kept
    total += Number(bytes)
    if (mid !== '') {
      inflight++
      lookups[`m:${mid}`] = seq
    } else if (kind === 'p') {
      waiting++
      waitingBytes += Number(bytes)
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
  counted('w', waiting)
  counted('wb', waitingBytes)
  const highest = Math.max(0, ...rebuild.order, ...rebuild.lost.map(l => Number(l.seq)).filter(Number.isFinite))
  const n = Number(keys.index.n ?? 0)
  if (!(n >= highest)) problems.push(`${where}: next seq n is ${keys.index.n ?? 'absent'}, below entry ${highest}`)
  Object.assign(rebuild.index, lookups, { n: String(Math.max(Number.isFinite(n) ? n : 0, highest)), w: String(waiting), wb: String(waitingBytes) })
  return { problems, queued: rebuild.order.length, inflight, bytes: total, rebuild }
}
