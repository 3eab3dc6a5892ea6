import { describe, expect, it } from 'vitest'
import { blocksMade, ConnectionLag } from '../../src/delivery-lag/tracker.js'
import { FastHistogram } from '../../src/metrics/fast-histogram.js'

describe('ConnectionLag', () => {
  it('times each id from its arrival to its acknowledgement, across the whole id range and block boundaries', () => {
    const h = new FastHistogram({ name: 'x', help: 'x', buckets: [1, 10] })
    const one = h.series({ qos: '1', group: '' })
    const two = h.series({ qos: '2', group: 'g' })
    const lag = new ConnectionLag()
    // ids going round 65535 → 1, as a long-lived connection's do, with 100 unacknowledged at a time
    let id = 65_000
    const next = (): number => (id = id >= 65_535 ? 1 : id + 1)
    const held: number[] = []
    for (let n = 0; n < 5000; n++) {
      const m = next()
      lag.sent(m, 1000 + n, n % 2 === 0 ? one : two)
      held.push(m)
      if (held.length > 100) lag.completed(held.shift() as number, 1000 + n + 500)
    }
    expect(lag.unacked).toBe(100)
    expect(lag.oldestArrival()).toBe(1000 + 4900)
    expect(one.count + two.count).toBe(4900)
    // acknowledged 100 sends and 500 ms after it was sent: 600 ms each
    expect(one.sum + two.sum).toBeCloseTo(4900 * 0.6, 6)
    // an id sent again before it was acknowledged replaces the first send; an unknown or repeated ack counts nothing
    lag.sent(held[0], 9000, one)
    expect(lag.unacked).toBe(100)
    lag.completed(12_345, 99_999)
    for (const m of held) lag.completed(m, 10_000)
    lag.completed(held[0], 10_000)
    expect(lag.unacked).toBe(0)
    expect(lag.oldestArrival()).toBeUndefined()
    expect(one.count + two.count).toBe(5000)
  })
})

describe('ConnectionLag blocks', () => {
  it('reuses an emptied block: a subscriber acknowledging each message before the next costs no allocation per message', () => {
    const h = new FastHistogram({ name: 'y', help: 'y', buckets: [1, 10] })
    const one = h.series({ qos: '1', group: '' })
    const lag = new ConnectionLag()
    const other = new ConnectionLag()
    lag.sent(1, 1, one)
    other.sent(2000, 1, one)
    lag.completed(1, 2)
    other.completed(2000, 2)
    const before = blocksMade()
    // one message in flight at a time, as at a fixed low rate, over several blocks and on two connections
    for (let id = 2; id < 5000; id++) {
      lag.sent(id, id, one)
      other.sent(id, id, one)
      lag.completed(id, id + 2)
      other.completed(id, id + 3)
    }
    expect(blocksMade()).toBe(before)
    expect(one.count).toBe(2 + 2 * 4998)
    expect(one.sum).toBeCloseTo((2 + 4998 * 5) / 1000, 6)
    // a reused block starts empty: nothing is reported as unacknowledged
    expect(lag.unacked).toBe(0)
    expect(lag.oldestArrival()).toBeUndefined()
    lag.sent(7, 42, one)
    expect(lag.oldestArrival()).toBe(42)
  })
})
