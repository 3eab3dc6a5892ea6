import type { GroupMessage } from '../../src/store/group-queue.js'
import { SharedEngine } from '../../src/shared-subscriptions/engine.js'
import { parseShare, type ShareName } from '../../src/shared-subscriptions/share-name.js'
import type { DeadLetterEvent, EngineOptions, GroupStore, OutPacket } from '../../src/shared-subscriptions/types.js'

/** The engine on its own: connections are strings, the store is a Map, time is a number the test moves. */
export function setup (opts: Partial<EngineOptions> = {}) {
  const sent: Array<{ handle: string, packet: OutPacket }> = []
  const open = new Set<string>()
  const ids = new Map<string, number>()
  const listening = new Set<string>()
  const stored = new Map<string, { message: GroupMessage, attempts: number, dueAt?: number }>()
  const wakes: number[] = []
  const dead: DeadLetterEvent[] = []
  const logs: Array<{ msg: string, fields: Record<string, unknown> }> = []
  let now = 1000
  let seq = 0
  const store: GroupStore = {
    add: (_share, message) => {
      const key = `k${++seq}`
      stored.set(key, { message, attempts: 0 })
      return { key, done: Promise.resolve() }
    },
    setRetry: async (key, _m, _t, retry) => { const s = stored.get(key); if (s !== undefined) Object.assign(s, { attempts: retry.attempts, dueAt: retry.dueAt }) },
    remove: async keys => { for (const k of keys) stored.delete(k) },
    payloads: async keys => keys.map(k => stored.get(k)?.message.payload)
  }
  const log = (msg: string) => (fields: Record<string, unknown>) => { logs.push({ msg, fields }) }
  const engine = new SharedEngine<string>({
    mayReceive: (h) => open.has(h),
    allocateId: h => { const id = (ids.get(h) ?? 0) + 1; ids.set(h, id); return id },
    send: (handle, packet, done) => { sent.push({ handle, packet }); done() },
    listen: g => listening.add(g.share.key),
    unlisten: g => listening.delete(g.share.key),
    wake: at => wakes.push(at)
  }, store, {
    strategyFor: () => 'round-robin',
    backoffFor: () => ({ initialMs: 0, multiplier: 2, maxMs: 60_000, jitter: 0 }),
    ackTimeoutMs: 1000,
    maxDeliveries: 3,
    redispatchRejected: true,
    maxInflightPerMember: 0,
    limits: { maxQueuedMessages: 0, maxQueuedBytes: 0, overflowPolicy: 'dropOldest' },
    onDeadLetter: e => dead.push(e),
    log: { info: (f, m) => log(m)(f), warn: (f, m) => log(m)(f), error: (f, m) => log(m)(f) },
    now: () => now,
    ...opts
  })
  const share = parseShare('$share/g/jobs/#') as ShareName
  const join = (id: string, o: { qos?: number, persistent?: boolean, ready?: boolean } = {}): void => {
    open.add(id)
    engine.join(share, id, { handle: id, token: `f-${id}`, qos: o.qos ?? 1, persistent: o.persistent ?? false, ready: o.ready ?? true })
  }
  const publish = async (payload: string, qos = 1, topic = 'jobs/x'): Promise<void> => {
    const group = engine.group(share.key)
    if (group === undefined) throw new Error('no group')
    await new Promise<void>(resolve => engine.publish(group, { topic, payload: Buffer.from(payload), qos, clientId: 'pub' }, () => resolve()))
  }
  const to = (h: string): string[] => sent.filter(s => s.handle === h).map(s => s.packet.payload.toString())
  const close = (h: string): void => {
    open.delete(h)
    engine.disconnected(share.key, `f-${h}`)
    engine.gone(h, h)
  }
  return { engine, share, sent, open, listening, stored, dead, logs, wakes, join, publish, to, close, tick: (ms: number) => { now += ms }, now: () => now }
}
