import { describe, expect, it } from 'vitest'
import type { Backoff } from '../../src/shared-subscriptions/backoff.js'
import type { Strategy } from '../../src/shared-subscriptions/strategies.js'
import { setup } from './engine-support.js'

const backoff = (b: Partial<Backoff> = {}): () => Backoff => () => ({ initialMs: 100, multiplier: 2, maxMs: 60_000, jitter: 0, ...b })

/** The retry backoff in the engine alone, on the test's clock: sweep() is the ack timeout, release() the wake. */
describe('shared engine: retries wait out the backoff', () => {
  it('offers a message that timed out again only after initialMs × multiplier^(attempt−1), then dead-letters it with every attempt time', async () => {
    const s = setup({ backoffFor: backoff(), maxDeliveries: 4 })
    s.join('a')
    await s.publish('poison')
    const sentAt: number[] = []
    const release = (): void => { s.engine.release() }
    for (const wait of [100, 200, 400]) {
      sentAt.push(s.now())
      s.tick(1000)
      s.engine.sweep()
      expect(s.engine.view()[0]).toMatchObject({ delayed: 1, inflight: 0, queued: 0 })
      expect(s.wakes.at(-1)).toBe(s.now() + wait)
      s.tick(wait - 1)
      release()
      expect(s.to('a').length).toBe(sentAt.length)
      s.tick(1)
      release()
      expect(s.to('a').length).toBe(sentAt.length + 1)
    }
    sentAt.push(s.now())
    s.tick(1000)
    s.engine.sweep()
    expect(s.dead).toEqual([expect.objectContaining({ reason: 'max-deliveries', attempts: 4, attemptTimes: sentAt })])
    expect(s.engine.view()[0]).toMatchObject({ delayed: 0, ackTimeouts: 4, redelivered: 3, deadLettered: 1 })
  })

  it('keeps other messages flowing while one waits, and a late acknowledgement still completes the waiting one', async () => {
    const s = setup({ backoffFor: backoff() })
    s.join('a')
    await s.publish('slow')
    s.tick(1000)
    s.engine.sweep()
    await s.publish('next')
    expect(s.to('a')).toEqual(['slow', 'next'])
    expect(s.engine.ack('a', 1)).toBe(true)
    s.tick(100)
    s.engine.release()
    expect(s.to('a')).toEqual(['slow', 'next'])
    expect(s.engine.view()[0]).toMatchObject({ delayed: 0, acknowledged: 1, ackTimeouts: 1 })
  })

  it('hash-topic: later messages of the topic wait behind the delayed one, other topics do not', async () => {
    const s = setup({ backoffFor: backoff(), strategyFor: (): Strategy => 'hash-topic' })
    s.join('a')
    await s.publish('t1', 1, 'jobs/t')
    s.tick(1000)
    s.engine.sweep()
    await s.publish('t2', 1, 'jobs/t')
    await s.publish('u1', 1, 'jobs/u')
    expect(s.to('a')).toEqual(['t1', 'u1'])
    s.tick(100)
    s.engine.release()
    expect(s.to('a')).toEqual(['t1', 'u1', 't1', 't2'])
  })

  it('round-robin promises no order: a later message of the topic goes on while the first one waits', async () => {
    const s = setup({ backoffFor: backoff() })
    s.join('a')
    await s.publish('t1', 1, 'jobs/t')
    s.tick(1000)
    s.engine.sweep()
    await s.publish('t2', 1, 'jobs/t')
    expect(s.to('a')).toEqual(['t1', 't2'])
  })

  it('treats a refusal like an ack timeout (the path an MQTT 5 reason code ≥ 0x80 takes), and a disconnect as no failure', async () => {
    const s = setup({ backoffFor: backoff() })
    s.join('a')
    s.join('b')
    await s.publish('r')
    expect(s.engine.reject('a', 1)).toBe(true)
    expect(s.engine.view()[0]).toMatchObject({ delayed: 1, rejections: 1, ackTimeouts: 0 })
    s.tick(100)
    s.engine.release()
    expect(s.to('b')).toEqual(['r'])
    s.close('b')
    expect(s.to('a')).toEqual(['r', 'r'])
  })

  it('records the attempt count and due time of a durable message, and a restored one waits for its due time', async () => {
    const s = setup({ backoffFor: backoff() })
    s.engine.restoreMember(s.share, 'p', 1)
    s.join('p', { persistent: true })
    await s.publish('d')
    s.tick(1000)
    s.engine.sweep()
    await new Promise(resolve => setImmediate(resolve))
    const [key, record] = [...s.stored.entries()][0]
    expect(record).toMatchObject({ attempts: 1, dueAt: s.now() + 100 })

    const t = setup({ backoffFor: backoff() })
    t.engine.restoreMember(t.share, 'p', 1)
    t.stored.set(key, record)
    t.engine.restoreQueue('g/jobs/#', [{ key, topic: 'jobs/x', qos: 1, bytes: 1, attempts: 1, enqueuedAt: 1, dueAt: t.now() + 50, attemptTimes: [1] }])
    t.join('p', { persistent: true })
    await new Promise(resolve => setImmediate(resolve))
    expect(t.sent).toEqual([])
    expect(t.wakes).toEqual([t.now() + 50])
    t.tick(50)
    t.engine.release()
    await new Promise(resolve => setImmediate(resolve))
    expect(t.to('p')).toEqual(['d'])
    expect(t.sent[0].packet.dup).toBe(true)
  })
})
