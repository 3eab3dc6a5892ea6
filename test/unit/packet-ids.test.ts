import { describe, expect, it } from 'vitest'
import { PacketIds } from '../../src/protocol/packet-ids.js'

describe('packet-id allocator', () => {
  it('goes round from the counter, skipping ids in use and ids the session holds, and wraps after 65535', () => {
    const counter = { _nextId: 65533 }
    const stored = new Set([65535, 2])
    const ids = new PacketIds(counter, id => stored.has(id))
    expect([ids.take(), ids.take(), ids.take(), ids.take()]).toEqual([65533, 65534, 1, 3])
    expect(counter._nextId).toBe(4)
    counter._nextId = 65534
    // 65534 and 1 are still in use, 65535 and 2 held by the store
    expect(ids.take()).toBe(4)
    ids.release(65534)
    counter._nextId = 65534
    expect(ids.take()).toBe(65534)
  })

  it('starts at 1 from a counter out of range (aedes draws its start at random, 0 included)', () => {
    expect(new PacketIds({ _nextId: 0 }).take()).toBe(1)
  })

  it('with every id held, hands out none; waiting deliveries get freed ids in the order they asked, new ones queue behind', () => {
    const ids = new PacketIds({ _nextId: 1 })
    for (let i = 1; i <= 65535; i++) expect(ids.take()).toBe(i)
    expect(ids.take()).toBeUndefined()
    expect(ids.available()).toBe(false)
    const got: Array<[string, number | undefined]> = []
    ids.wait(id => got.push(['first', id]))
    ids.wait(id => got.push(['second', id]))
    ids.release(500)
    expect(got).toEqual([['first', 500]])
    // an id freed while someone waits goes to the waiter, not to a new taker
    ids.release(7)
    expect(ids.take()).toBeUndefined()
    expect(got).toEqual([['first', 500], ['second', 7]])
    ids.release(9)
    expect(ids.take()).toBe(9)
  })

  it('serves a waiter once the store lets an id go (retry), and gives waiters nothing when the connection closes', () => {
    const stored = new Set(Array.from({ length: 65535 }, (_, i) => i + 1))
    const ids = new PacketIds({ _nextId: 1 }, id => stored.has(id))
    const got: Array<number | undefined> = []
    ids.wait(id => got.push(id))
    ids.wait(id => got.push(id))
    ids.retry()
    expect(got).toEqual([])
    stored.delete(42)
    ids.retry()
    expect(got).toEqual([42])
    ids.close()
    expect(got).toEqual([42, undefined])
    ids.wait(id => got.push(id))
    expect(got).toEqual([42, undefined, undefined])
    expect(ids.take()).toBeUndefined()
  })
})
