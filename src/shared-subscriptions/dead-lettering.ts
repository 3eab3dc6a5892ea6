import type { Entry } from './group.js'
import { shareTopic } from './share-name.js'
import type { DeadLetterReason, EngineOptions, EngineTotals, GroupStore } from './types.js'

/** What giving up a shared message needs of the dispatcher. */
export interface GiveUpContext<H> {
  store: GroupStore | undefined
  opts: Pick<EngineOptions, 'onDeadLetter' | 'log'>
  totals: EngineTotals
  /** The entry is done with: its record goes (Dispatcher#finish). */
  finish: (entry: Entry<H>) => void
}

/**
 * Gives a shared message up (queue full, expired, no members, max deliveries, rejected): counted, reported to
 * onDeadLetter with its payload (read back from the durable group queue when not in memory), its record removed.
 */
export function deadLetterEntry<H> (ctx: GiveUpContext<H>, entry: Entry<H>, reason: DeadLetterReason): void {
  const group = entry.group
  group.counts.deadLettered++
  ctx.totals.deadLettered++
  const report = (payload: Buffer | undefined): void => {
    try {
      ctx.opts.onDeadLetter({ reason, ...(reason === 'rejected' && entry.refusal !== undefined ? { detail: entry.refusal } : {}), attempts: entry.attempts, attemptTimes: entry.attemptTimes ?? [], group: group.share.group, share: shareTopic(group.share.key), packet: { topic: entry.topic, payload: payload ?? Buffer.alloc(0), qos: entry.qos } })
    } catch (err) {
      ctx.opts.log.error({ err }, 'onDeadLetter failed')
    }
  }
  const key = entry.storeKey
  const store = ctx.store
  if (entry.payload === undefined && key !== undefined && store !== undefined) {
    // The record is read back first and deleted in the tick it is reported, so the delete and the dead letter
    // (written synchronously by onDeadLetter) are one batch: a crash in between leaves it in the group queue.
    entry.storeKey = undefined
    ctx.finish(entry)
    void store.payloads([key]).then(p => p[0], () => undefined).then(payload => {
      report(payload)
      store.remove([key]).catch(noop)
    })
    return
  }
  report(entry.payload)
  ctx.finish(entry)
}

function noop (): void {}
