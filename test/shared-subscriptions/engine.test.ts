import { describe, expect, it } from 'vitest'
import { parseShare, type ShareName } from '../../src/shared-subscriptions/share-name.js'
import { setup } from './engine-support.js'

describe('shared engine', () => {
  it('sends each message to one member in turn and forgets it when acknowledged', async () => {
    const s = setup()
    s.join('a')
    s.join('b')
    expect(s.listening).toEqual(new Set(['g/jobs/#']))
    for (let i = 0; i < 4; i++) await s.publish(String(i))
    expect(s.to('a')).toEqual(['0', '2'])
    expect(s.to('b')).toEqual(['1', '3'])
    const first = s.sent[0].packet
    expect(first).toMatchObject({ qos: 1, dup: false, messageId: 1, topic: 'jobs/x' })
    expect(s.engine.ack('a', 1)).toBe(true)
    expect(s.engine.ack('a', 1)).toBe(false)
    expect(s.engine.inflightOf('a')).toBe(1)
    expect(s.engine.view()[0]).toMatchObject({ inflight: 3, delivered: 4, acknowledged: 1, durable: false })
    expect(s.stored.size).toBe(0)
  })

  it('moves what a closed connection held to another member at once, marked DUP', async () => {
    const s = setup()
    s.join('a')
    s.join('b')
    for (let i = 0; i < 4; i++) await s.publish(String(i))
    s.close('a')
    expect(s.to('b')).toEqual(['1', '3', '0', '2'])
    expect(s.sent.slice(4).every(x => x.packet.dup)).toBe(true)
    expect(s.logs.find(l => l.msg === 'shared messages moved to another member')?.fields).toMatchObject({ clientId: 'a', reason: 'disconnect', count: 2 })
    expect(s.engine.totals).toMatchObject({ delivered: 6, redelivered: 2, failovers: 2 })
  })

  it('moves an unacknowledged message after the ack timeout; the first acknowledgement wins', async () => {
    const s = setup()
    s.join('a')
    s.join('b')
    await s.publish('x')
    s.tick(999)
    s.engine.sweep()
    expect(s.sent.length).toBe(1)
    s.tick(1)
    s.engine.sweep()
    expect(s.to('b')).toEqual(['x'])
    // the late acknowledgement from a completes it; b's acknowledgement of its copy then only frees b's slot
    expect(s.engine.ack('a', 1)).toBe(true)
    expect(s.engine.view()[0]).toMatchObject({ inflight: 0, acknowledged: 1, redelivered: 1 })
    expect(s.engine.inflightOf('b')).toBe(1)
    expect(s.engine.ack('b', 1)).toBe(true)
    expect(s.engine.inflightOf('b')).toBe(0)
    expect(s.engine.ack('b', 1)).toBe(false)
    expect(s.engine.view()[0]).toMatchObject({ acknowledged: 1 })
  })

  it('counts timed-out deliveries against the cap, so a member that stops acknowledging is passed over', async () => {
    const s = setup({ maxInflightPerMember: 1 })
    s.join('stuck')
    s.join('ok')
    await s.publish('x')
    s.tick(1000)
    s.engine.sweep()
    expect(s.to('ok')).toEqual(['x'])
    s.engine.ack('ok', 1)
    for (const p of ['y', 'z']) {
      await s.publish(p)
      s.engine.ack('ok', s.sent[s.sent.length - 1].packet.messageId as number)
    }
    expect(s.to('stuck')).toEqual(['x'])
    expect(s.to('ok')).toEqual(['x', 'y', 'z'])
    expect(s.engine.inflightOf('stuck')).toBe(1)
  })

  it('gives up after maxDeliveries, with the attempt count', async () => {
    const s = setup()
    s.join('a')
    s.join('b')
    await s.publish('poison')
    for (let i = 0; i < 3; i++) {
      s.tick(1000)
      s.engine.sweep()
    }
    expect(s.to('a')).toEqual(['poison', 'poison'])
    expect(s.to('b')).toEqual(['poison'])
    expect(s.dead).toEqual([expect.objectContaining({ reason: 'max-deliveries', attempts: 3, group: 'g', share: '$share/g/jobs/#', packet: expect.objectContaining({ topic: 'jobs/x', qos: 1 }) })])
    expect(s.dead[0].packet.payload.toString()).toBe('poison')
  })

  it('caps the unacknowledged messages of a member; the rest wait and follow acknowledgements', async () => {
    const s = setup({ maxInflightPerMember: 2 })
    s.join('a')
    for (let i = 0; i < 5; i++) await s.publish(String(i))
    expect(s.to('a')).toEqual(['0', '1'])
    expect(s.engine.view()[0]).toMatchObject({ queued: 3, inflight: 2 })
    s.engine.ack('a', 1)
    expect(s.to('a')).toEqual(['0', '1', '2'])
    // QoS 0 needs no slot and never waits
    await s.publish('q0', 0)
    expect(s.to('a')).toEqual(['0', '1', '2', 'q0'])
    s.engine.ack('a', 2)
    s.engine.ack('a', 3)
    expect(s.to('a')).toEqual(['0', '1', '2', 'q0', '3', '4'])
  })

  it('downgrades to the member\'s QoS, drops QoS 0 nobody can take, and keeps $ topics from wildcard-first filters', async () => {
    const s = setup()
    s.engine.restoreMember(s.share, 'offline', 1)
    await s.publish('nobody', 0)
    expect(s.engine.view()[0]).toMatchObject({ dropped: 1, queued: 0 })
    s.join('a', { qos: 0 })
    await s.publish('two', 2)
    expect(s.sent[0].packet).toMatchObject({ qos: 0, dup: false })
    expect(s.sent[0].packet.messageId).toBeUndefined()
    expect(s.engine.view()[0]).toMatchObject({ inflight: 0, delivered: 1 })
    const dollar = setup()
    const wild = parseShare('$share/w/#') as ShareName
    dollar.open.add('a')
    dollar.engine.join(wild, 'a', { handle: 'a', token: 'f', qos: 1, persistent: false, ready: true })
    const group = dollar.engine.group('w/#')
    if (group === undefined) throw new Error('no group')
    await new Promise<void>(resolve => dollar.engine.publish(group, { topic: '$SYS/x', payload: Buffer.from('s'), qos: 1 }, () => resolve()))
    await new Promise<void>(resolve => dollar.engine.publish(group, { topic: 'x', payload: Buffer.from('x'), qos: 1 }, () => resolve()))
    expect(dollar.sent.map(x => x.packet.topic)).toEqual(['x'])
  })

  it('stores the messages of a group with a persistent member until acknowledged, and drains them to the first member back', async () => {
    const s = setup()
    s.engine.restoreMember(s.share, 'p', 1)
    await s.publish('0')
    await s.publish('1')
    expect(s.stored.size).toBe(2)
    await new Promise(resolve => setImmediate(resolve))
    // waiting durable messages keep no payload in memory
    expect(s.engine.view()[0]).toMatchObject({ durable: true, queued: 2, queuedBytes: 2 })
    s.join('p', { persistent: true, ready: false })
    expect(s.sent).toEqual([])
    s.engine.ready('p')
    await new Promise(resolve => setImmediate(resolve))
    expect(s.to('p')).toEqual(['0', '1'])
    s.engine.ack('p', 1)
    s.engine.ack('p', 2)
    await new Promise(resolve => setImmediate(resolve))
    expect(s.stored.size).toBe(0)
  })

  it('bounds the group queue: dropOldest gives the oldest up, dropNewest the newest', async () => {
    for (const policy of ['dropOldest', 'dropNewest'] as const) {
      const s = setup({ limits: { maxQueuedMessages: 2, maxQueuedBytes: 0, overflowPolicy: policy } })
      s.engine.restoreMember(s.share, 'p', 1)
      for (let i = 0; i < 4; i++) await s.publish(String(i))
      await new Promise(resolve => setImmediate(resolve))
      expect(s.dead.map(d => [d.reason, d.packet.payload.toString()])).toEqual(policy === 'dropOldest' ? [['queue-full', '0'], ['queue-full', '1']] : [['queue-full', '2'], ['queue-full', '3']])
      expect(s.stored.size).toBe(2)
    }
  })

  it('drops a group whose last member leaves or whose session ends, giving up what waits', async () => {
    const s = setup()
    s.engine.restoreMember(s.share, 'p', 1)
    await s.publish('w')
    s.engine.sessionEnded('p')
    await new Promise(resolve => setImmediate(resolve))
    expect(s.engine.view()).toEqual([])
    expect(s.listening.size).toBe(0)
    expect(s.dead.map(d => d.reason)).toEqual(['no-members'])
    expect(s.stored.size).toBe(0)
    const t = setup()
    t.join('c')
    await t.publish('held')
    t.close('c')
    expect(t.dead.map(d => [d.reason, d.attempts])).toEqual([['no-members', 1]])
  })

  it('restores stored messages in order with their attempt counts', async () => {
    const s = setup()
    s.engine.restoreMember(s.share, 'p', 1)
    const a = s.stored.size
    expect(a).toBe(0)
    s.stored.set('old-1', { message: { topic: 'jobs/1', payload: Buffer.from('one'), qos: 1 }, attempts: 2 })
    s.stored.set('old-2', { message: { topic: 'jobs/2', payload: Buffer.from('two'), qos: 1 }, attempts: 0 })
    expect(s.engine.restoreQueue('g/jobs/#', [
      { key: 'old-1', topic: 'jobs/1', qos: 1, bytes: 3, attempts: 2, enqueuedAt: 1 },
      { key: 'old-2', topic: 'jobs/2', qos: 1, bytes: 3, attempts: 0, enqueuedAt: 2 }
    ])).toBe(true)
    expect(s.engine.restoreQueue('other/x', [])).toBe(false)
    s.join('p', { persistent: true })
    await new Promise(resolve => setImmediate(resolve))
    expect(s.to('p')).toEqual(['one', 'two'])
    expect(s.sent.map(x => x.packet.dup)).toEqual([true, false])
    // a redelivery records its attempt count; the third attempt of "one" is its last (maxDeliveries 3)
    expect(s.stored.get('old-1')?.attempts).toBe(3)
    s.tick(1000)
    s.engine.sweep()
    expect(s.dead.map(d => [d.reason, d.attempts, d.packet.topic])).toEqual([['max-deliveries', 3, 'jobs/1']])
    expect(s.to('p')).toEqual(['one', 'two', 'two'])
  })
})
