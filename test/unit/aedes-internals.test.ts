import { describe, expect, it } from 'vitest'
import { assertAedesInternals, internalsProblem, probeInstalled, type InternalsProbe } from '../../src/protocol/aedes-internals-check.js'
import { isCulexError } from '../../src/errors.js'

type Mutation = (p: InternalsProbe) => void

/** A parser factory whose parsers have had `change` done to them. */
const parsersWith = (change: (parser: Record<string, unknown>) => void): Mutation => p => {
  const make = p.newParser
  p.newParser = () => {
    const parser = make()
    change(parser)
    return parser
  }
}

// Each internal Culex reads or patches, taken away (or made to behave differently) on a real probe, and the words of
// the message that must name it.
const missing: Array<[string, Mutation, string]> = [
  ['deliver0', p => { delete p.client.deliver0 }, 'aedes 1.2.0 does not have Client#deliver0 and Client#deliverQoS'],
  ['deliverQoS', p => { p.client.deliverQoS = undefined }, 'Client#deliver0 and Client#deliverQoS'],
  ['subscriptions', p => { delete p.client.subscriptions }, 'Client#subscriptions'],
  ['duplicates', p => { delete p.client.duplicates }, 'Client#duplicates'],
  ['_nextId', p => { delete p.client._nextId }, 'Client#_nextId'],
  ['_nextId out of range', p => { p.client._nextId = 0 }, 'Client#_nextId'],
  ['waitForDrain', p => { p.client.waitForDrain = 1 }, 'Client#waitForDrain'],
  ['pause', p => { p.client.pause = undefined }, 'Client#pause'],
  ['connackSent', p => { delete p.client.connackSent }, 'Client#errored, #connackSent'],
  ['_disconnected', p => { p.client._disconnected = undefined }, '#_disconnected'],
  ['_will', p => { delete p.client._will }, 'Client#will, #_will and #_keepaliveTimer'],
  ['_keepaliveTimer', p => { delete p.client._keepaliveTimer }, '#_keepaliveTimer'],
  ['_parser', p => { delete p.client._parser }, 'Client#_parser'],
  ['_eos', p => { delete p.client._eos }, 'Client#_eos and the connection'],
  ["'end' bound close", p => { (p.client.conn as NodeJS.EventEmitter).removeAllListeners('end') }, "Client#_eos and the connection's 'end' listener"],
  ['clients', p => { delete p.broker.clients }, 'Aedes#clients'],
  ['mq.emit', p => { p.broker.mq = { _matcher: { match: () => [] } } }, 'Aedes#mq.emit'],
  ['mq._matcher', p => { p.broker.mq = { emit: () => {} } }, 'Aedes#mq._matcher.match'],
  ['mq.on', p => { p.broker.mq = { emit: () => {}, _matcher: { match: () => [] }, removeListener: () => {} } }, 'Aedes#mq.on and Aedes#mq.removeListener'],
  ['mq.removeListener', p => { p.broker.mq = { emit: () => {}, _matcher: { match: () => [] }, on: () => {} } }, 'Aedes#mq.on and Aedes#mq.removeListener'],
  ['mq._matcher.clear', p => { (p.broker.mq as { _matcher: Record<string, unknown> })._matcher.clear = undefined }, 'Aedes#mq._matcher.add, .remove and .clear'],
  ['mq._matcher.remove', p => { (p.broker.mq as { _matcher: Record<string, unknown> })._matcher.remove = 1 }, 'Aedes#mq._matcher.add, .remove and .clear'],
  ['matcher calls', p => { p.matcherCalls = () => false }, 'mqemitter reaching its matcher only through add, remove and match'],
  ['parser _list', parsersWith(parser => { parser._list = undefined }), 'mqtt-packet 9.0.2 does not have Parser#_list'],
  ['parser _stateCounter', parsersWith(parser => { Object.defineProperty(parser, '_stateCounter', { get: () => 0, set: () => {} }) }), 'Parser#_list, #_stateCounter'],
  ['parser _parseString', parsersWith(parser => { parser._parseString = undefined }), 'Parser#_parseString'],
  ['write path', p => { p.writePath = () => false }, 'lib/write.js writing every packet'],
  ['publish steps', p => { p.publishSteps = () => false }, 'Aedes#publish of a QoS 1/2 packet'],
  ['maxTopicLevels', p => { delete p.broker.maxTopicLevels }, 'Aedes#maxTopicLevels and Aedes#published'],
  ['published', p => { p.broker.published = undefined }, 'Aedes#maxTopicLevels and Aedes#published'],
  ['registerClient', p => { p.broker.registerClient = undefined }, 'Aedes#registerClient'],
  ['parser settings', parsersWith(parser => { parser.settings = undefined }), 'Parser#settings'],
  ['parser _pos', parsersWith(parser => { Object.defineProperty(parser, '_pos', { get: () => undefined, set: () => {} }) }), 'Parser#_parseString reading a string at #_pos']
]

describe('the start-up check of aedes internals', () => {
  it('passes on the installed aedes and mqtt-packet, the versions package.json pins', () => {
    const probe = probeInstalled()
    expect(probe.versions).toEqual({ aedes: '1.2.0', 'mqtt-packet': '9.0.2' })
    expect(internalsProblem(probe)).toBeUndefined()
    expect(() => { assertAedesInternals() }).not.toThrow()
  })

  it.each(missing)('fails on a probe without %s, naming it, the version found and the version pinned', (_name, mutate, words) => {
    const probe = probeInstalled()
    mutate(probe)
    let thrown: unknown
    try {
      assertAedesInternals(probe)
    } catch (err) {
      thrown = err
    }
    expect(isCulexError(thrown) && thrown.code).toBe('ERR_AEDES_INTERNALS')
    const message = (thrown as Error).message
    expect(message).toContain(words)
    expect(message).toMatch(/^(aedes 1\.2\.0|mqtt-packet 9\.0\.2) does not have .+; Culex pins (aedes 1\.2\.0|mqtt-packet 9\.0\.2)$/)
  })

  it('names the installed version, not the pinned one, when they differ', () => {
    const probe = probeInstalled()
    probe.versions.aedes = '1.3.0'
    delete probe.client._nextId
    expect(internalsProblem(probe)).toMatch(/^aedes 1\.3\.0 does not have Client#_nextId .+; Culex pins aedes 1\.2\.0$/)
  })
})
