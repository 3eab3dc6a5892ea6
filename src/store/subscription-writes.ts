import { encodeRecord } from './codec.js'
import { encodeClientId, subscriptionKey } from './layout.js'
import type { SubscriptionRecord } from './types.js'
import type { WriteOp } from './write-queue.js'

/**
 * A session's subscription changes as LevelDB writes, one key per (client, filter) with the record as its value:
 * the one place that turns what the subscription index changed into ops, for SUBSCRIBE, UNSUBSCRIBE and a session's end.
 */
export function subscriptionWrites (clientId: string, puts: Iterable<[string, SubscriptionRecord]>, dels: Iterable<string>): WriteOp[] {
  const enc = encodeClientId(clientId)
  const ops: WriteOp[] = []
  for (const [filter, record] of puts) ops.push({ type: 'put', key: subscriptionKey(enc, filter), value: encodeRecord({ ...record }) })
  for (const filter of dels) ops.push({ type: 'del', key: subscriptionKey(enc, filter) })
  return ops
}
