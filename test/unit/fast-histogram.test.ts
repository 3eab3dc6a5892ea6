import { Registry } from 'prom-client'
import { describe, expect, it } from 'vitest'
import { FastHistogram } from '../../src/metrics/fast-histogram.js'

describe('FastHistogram', () => {
  it('renders cumulative buckets, +Inf, sum and count per label set, like a prom-client histogram', async () => {
    const registry = new Registry()
    const h = new FastHistogram({ name: 'x_seconds', help: 'X.', buckets: [0.1, 1] })
    h.register(registry)
    const a = h.series({ qos: '1', group: '' })
    for (const v of [0.05, 0.1, 0.5, 3]) a.observe(v)
    expect(h.series({ qos: '1', group: '' })).toBe(a)
    h.series({ qos: '2', group: 'g' }).observe(0.2)
    expect(await registry.metrics()).toBe([
      '# HELP x_seconds X.',
      '# TYPE x_seconds histogram',
      'x_seconds_bucket{qos="1",group="",le="0.1"} 2',
      'x_seconds_bucket{qos="1",group="",le="1"} 3',
      'x_seconds_bucket{qos="1",group="",le="+Inf"} 4',
      'x_seconds_sum{qos="1",group=""} 3.65',
      'x_seconds_count{qos="1",group=""} 4',
      'x_seconds_bucket{qos="2",group="g",le="0.1"} 0',
      'x_seconds_bucket{qos="2",group="g",le="1"} 1',
      'x_seconds_bucket{qos="2",group="g",le="+Inf"} 1',
      'x_seconds_sum{qos="2",group="g"} 0.2',
      'x_seconds_count{qos="2",group="g"} 1',
      ''
    ].join('\n'))
    registry.resetMetrics()
    a.observe(0.5)
    expect(await registry.metrics()).toContain('x_seconds_count{qos="1",group=""} 1\n')
  })
})
