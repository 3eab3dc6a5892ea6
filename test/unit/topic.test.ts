import { describe, expect, it } from 'vitest'
import { topicMatches } from '../../src/protocol/topic.js'

describe('topicMatches (MQTT 3.1.1 section 4.7)', () => {
  const cases: Array<[string, string, boolean]> = [
    ['a/b', 'a/b', true],
    ['a/b', 'a/c', false],
    ['a/b', 'a/b/c', false],
    ['a/b/c', 'a/b', false],
    ['#', 'a', true],
    ['#', 'a/b/c', true],
    ['#', '/', true],
    ['sport/tennis/player1/#', 'sport/tennis/player1', true],
    ['sport/tennis/player1/#', 'sport/tennis/player1/ranking', true],
    ['sport/tennis/player1/#', 'sport/tennis/player1/score/wimbledon', true],
    ['sport/#', 'sport', true],
    ['sport/+', 'sport', false],
    ['sport/+', 'sport/', true],
    ['+/+', '/finance', true],
    ['/+', '/finance', true],
    ['+', '/finance', false],
    ['+', 'a', true],
    ['+', '', true],
    ['a/+/c', 'a/b/c', true],
    ['a/+/c', 'a//c', true],
    ['a/+/c', 'a/b/d', false],
    ['a/+/c', 'a/b/c/d', false],
    ['+/b/#', 'x/b', true],
    ['+/b/#', 'x/b/y/z', true],
    ['a/#', 'ab', false],
    ['bench/+/xy', 'bench/3/xz', false],
    ['bench/+/xy', 'bench/3/xy', true],
    ['beach/#', 'bench/3', false],
    ['é/+/ü', 'é/x/ü', true],
    ['ab/+', 'a/x', false],
    ['#', '$SYS/broker', false],
    ['+/monitor/Clients', '$SYS/monitor/Clients', false],
    ['$SYS/#', '$SYS/monitor/Clients', true],
    ['$SYS/monitor/+', '$SYS/monitor/Clients', true],
    ['$DLQ/+/orders/#', '$DLQ/unauthorized/orders/1', true]
  ]
  it.each(cases)('%s vs %s → %s', (filter, topic, expected) => {
    expect(topicMatches(filter, topic)).toBe(expected)
  })
})
