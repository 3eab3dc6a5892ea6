import { describe, expect, it } from 'vitest'
import { ConnectionLag } from '../../src/delivery-lag/tracker.js'
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
