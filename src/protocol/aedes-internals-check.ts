import { Duplex } from 'node:stream'
import { readFileSync } from 'node:fs'
import { createRequire } from 'node:module'
import path from 'node:path'
import { Aedes } from 'aedes'
import { CulexError } from '../errors.js'
import { pinnedVersion } from '../version.js'
import { newBufferList } from './aedes-internals.js'

/**
 * The start-up check of every aedes and mqtt-packet internal Culex reads or patches (typed above).
 * Those are not public API: a version other than the pinned one may rename or drop any of them, and Culex would then
 * misbehave quietly (a wrapper on a field nobody calls any more). The check looks at a real aedes Client, created
 * on a stream that never connects, and at a real mqtt-packet parser — the one aedes itself requires.
 */
export interface InternalsProbe {
  versions: { aedes: string, 'mqtt-packet': string }
  broker: Record<string, unknown>
  client: Record<string, unknown>
  /** A fresh parser of the class aedes gives each client, for the behavioural checks. */
  newParser: () => Record<string, unknown>
  /** Whether aedes writes every packet through the mqtt-packet Culex wraps for MQTT 5. */
  writePath: () => boolean
  /** Whether aedes publishes a QoS 1/2 packet by the steps protocol/qos-publish.ts runs itself. */
  publishSteps: () => boolean
  /** Whether aedes' mqemitter reaches its matcher only through add, remove and match. */
  matcherCalls: () => boolean
}

type Owner = keyof InternalsProbe['versions']
interface Check { owner: Owner, what: string, holds: (p: InternalsProbe) => boolean }

const isFn = (v: unknown): boolean => typeof v === 'function'
const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null
const has = (o: Record<string, unknown>, ...keys: string[]): boolean => keys.every(k => k in o)
const areBooleans = (o: Record<string, unknown>, ...keys: string[]): boolean => keys.every(k => typeof o[k] === 'boolean')

const CHECKS: readonly Check[] = [
  { owner: 'aedes', what: 'Client#deliver0 and Client#deliverQoS (the delivery router and the slow-reader limit wrap them)', holds: p => isFn(p.client.deliver0) && isFn(p.client.deliverQoS) },
  { owner: 'aedes', what: 'Client#subscriptions (an object of filter → subscription)', holds: p => isObject(p.client.subscriptions) },
  { owner: 'aedes', what: 'Client#duplicates (replaced by the delivery router)', holds: p => isObject(p.client.duplicates) },
  { owner: 'aedes', what: 'Client#_nextId (the packet identifier counter, 1..65535)', holds: p => Number.isInteger(p.client._nextId) && (p.client._nextId as number) >= 1 && (p.client._nextId as number) <= 65535 },
  { owner: 'aedes', what: 'Client#waitForDrain', holds: p => isFn(p.client.waitForDrain) },
  { owner: 'aedes', what: 'Client#pause (stops reading until CONNACK 0; the CONNACK gate relies on it)', holds: p => isFn(p.client.pause) },
  { owner: 'aedes', what: 'Client#resume (reads again; MQTT 5 enhanced authentication reads AUTH during the login)', holds: p => isFn(p.client.resume) },
  { owner: 'aedes', what: 'Client#errored, #connackSent, #connecting, #connected, #closed and #_disconnected (booleans)', holds: p => areBooleans(p.client, 'errored', 'connackSent', 'connecting', 'connected', 'closed', '_disconnected') },
  { owner: 'aedes', what: 'Client#will, #_will and #_keepaliveTimer', holds: p => has(p.client, 'will', '_will', '_keepaliveTimer') },
  { owner: 'aedes', what: 'Client#_inboundInflight (a Set of the inbound QoS 2 ids awaiting PUBREL)', holds: p => p.client._inboundInflight instanceof Set },
  { owner: 'aedes', what: "Client#_eos and the connection's 'end' listener calling close bound at construction (the will delay re-registers both)", holds: p => isFn(p.client._eos) && isObject(p.client.conn) && isFn(p.client.conn.listeners) && (p.client.conn.listeners as (e: string) => Array<{ name: string }>).call(p.client.conn, 'end').some(l => l.name === 'bound close') },
  { owner: 'aedes', what: "Client#_parser (the connection's mqtt-packet parser, an EventEmitter with parse())", holds: p => isObject(p.client._parser) && isFn(p.client._parser.prependListener) && isFn(p.client._parser.parse) },
  { owner: 'aedes', what: 'Aedes#clients (connected clients by id)', holds: p => isObject(p.broker.clients) },
  { owner: 'aedes', what: 'Aedes#registerClient (the MQTT 5 layer tells a taken-over client why it is closed)', holds: p => isFn(p.broker.registerClient) },
  { owner: 'aedes', what: 'Aedes#mq.emit and Aedes#mq._matcher.match (its mqemitter)', holds: p => isObject(p.broker.mq) && isFn(p.broker.mq.emit) && isObject(p.broker.mq._matcher) && isFn(p.broker.mq._matcher.match) },
  { owner: 'aedes', what: 'Aedes#mq.on and Aedes#mq.removeListener (every subscription reaches the mqemitter through them; the cluster keeps its filters there)', holds: p => isObject(p.broker.mq) && isFn(p.broker.mq.on) && isFn(p.broker.mq.removeListener) },
  { owner: 'aedes', what: "Aedes#mq._matcher.add, .remove and .clear, and mqemitter reaching its matcher only through add, remove and match (the match cache is emptied on every change)", holds: p => isObject(p.broker.mq) && isObject(p.broker.mq._matcher) && isFn(p.broker.mq._matcher.add) && isFn(p.broker.mq._matcher.remove) && isFn(p.broker.mq._matcher.clear) && p.matcherCalls() },
  { owner: 'mqtt-packet', what: 'Parser#settings (the protocol level later packets are parsed at; the MQTT 5 layer sets it)', holds: p => isObject(p.newParser().settings) },
  { owner: 'mqtt-packet', what: 'Parser#_list, #_stateCounter and #error telling a packet split across reads (the fast path reads them)', holds: p => splitStateHolds(p.newParser()) },
  { owner: 'mqtt-packet', what: 'Parser#_parseString reading a string at #_pos of #_list into #packet (the UTF-8 check wraps it)', holds: p => stringReaderHolds(p.newParser()) },
  { owner: 'aedes', what: 'Aedes#publish of a QoS 1/2 packet as an aedes-packet through storeRetained, enqueueOffline, emitPacket and callPublished (protocol/qos-publish.ts runs these steps itself)', holds: p => p.publishSteps() },
  { owner: 'aedes', what: 'Aedes#maxTopicLevels and Aedes#published (the QoS 1/2 publish steps read them)', holds: p => typeof p.broker.maxTopicLevels === 'number' && isFn(p.broker.published) },
  { owner: 'aedes', what: "lib/write.js writing every packet as mqtt.writeToStream(packet, client.conn) with the mqtt-packet Culex loads (the MQTT 5 writer wraps it; otherwise MQTT 5 clients would get MQTT 3.1.1 packets)", holds: p => p.writePath() },
  { owner: 'mqtt-packet', what: "bl's BufferList as Parser#_list, without bl's stream (each connection's parser gets one)", holds: p => splitStateHolds(withPlainList(p.newParser())) && stringReaderHolds(withPlainList(p.newParser())) }
]

/**
 * MQTT 5 encoding of what aedes writes (protocol/v5/writer.ts) wraps mqtt-packet's writeToStream, which aedes 1.2
 * calls as `mqtt.writeToStream(packet, client.conn)` in lib/write.js for every packet it writes. That holds only if
 * aedes loads the same mqtt-packet as Culex and still writes that way.
 */
function installedWritePath (): boolean {
  const require = createRequire(import.meta.url)
  const aedesMain = require.resolve('aedes')
  const write = readFileSync(path.join(path.dirname(aedesMain), 'lib', 'write.js'), 'utf8')
  return require.resolve('mqtt-packet') === createRequire(aedesMain).resolve('mqtt-packet') &&
    write.includes('mqtt.writeToStream(packet, client.conn)')
}

/** aedes.js as installed: its QoS 1/2 publish steps, in order, on an aedes-packet it resolves (qos-publish.ts). */
function installedPublishSteps (): boolean {
  const fromAedes = createRequire(createRequire(import.meta.url).resolve('aedes'))
  const source = readFileSync(fromAedes.resolve('aedes'), 'utf8')
  return /const publishFuncsQoS = \[\s*storeRetained,\s*enqueueOffline,\s*emitPacket,\s*callPublished\s*\]/.test(source) &&
    source.includes('const p = new Packet(packet, this)') && typeof fromAedes('aedes-packet') === 'function'
}

/**
 * mqemitter.js as aedes installs it: every call on its matcher, which the match cache (protocol/match-cache.ts) must
 * see each change of. Any other call (a new mutator, or a second way to match) fails the check.
 */
function installedMatcherCalls (): boolean {
  const fromAedes = createRequire(createRequire(import.meta.url).resolve('aedes'))
  const source = readFileSync(fromAedes.resolve('mqemitter'), 'utf8')
  const calls = (source.match(/_matcher\.\w+\([^)]*\)/g) ?? []).sort()
  return JSON.stringify(calls) === JSON.stringify(['_matcher.add(topic, notify)', '_matcher.match(message.topic)', '_matcher.remove(topic)', '_matcher.remove(topic, notify)'])
}

function withPlainList (parser: Record<string, unknown>): Record<string, unknown> {
  parser._list = newBufferList()
  return parser
}

/** A SUBSCRIBE to `a/é` at QoS 1, packet identifier 1. */
const SUBSCRIBE = Buffer.from([0x82, 9, 0, 1, 0, 4, 0x61, 0x2f, 0xc3, 0xa9, 1])
/** A PUBACK for packet identifier 1: no strings, so the split check does not depend on the string reader. */
const PUBACK = Buffer.from([0x40, 2, 0, 1])

function splitStateHolds (parser: Record<string, unknown>): boolean {
  if (!isFn(parser.parse) || !isObject(parser._list)) return false
  const list = parser._list
  const idle = (): boolean => list.length === 0 && parser._stateCounter === 0 && parser.error === null
  const packets: unknown[] = []
  ;(parser as { on: (e: string, f: (p: unknown) => void) => void }).on('packet', p => { packets.push(p) })
  const parse = parser.parse as (b: Buffer) => number
  if (!idle()) return false
  parse.call(parser, PUBACK.subarray(0, 2))
  const heldTheFirstPart = !idle() && packets.length === 0
  parse.call(parser, PUBACK.subarray(2))
  return heldTheFirstPart && idle() && packets.length === 1
}

function stringReaderHolds (parser: Record<string, unknown>): boolean {
  if (!isFn(parser._parseString) || !isFn(parser.parse)) return false
  const read = parser._parseString as () => string | null
  let bytes: Buffer | undefined
  let into: unknown
  parser._parseString = function (this: Record<string, unknown>): string | null {
    const start = this._pos as number
    const text = read.call(this)
    const list = this._list as { slice?: (a: number, b: number) => Buffer }
    if (Number.isInteger(start) && isFn(list.slice)) bytes = list.slice?.(start + 2, this._pos as number)
    into = this.packet
    return text
  }
  let emitted: unknown
  ;(parser as { on: (e: string, f: (p: unknown) => void) => void }).on('packet', p => { emitted = p })
  ;(parser.parse as (b: Buffer) => number).call(parser, SUBSCRIBE)
  return bytes !== undefined && bytes.equals(SUBSCRIBE.subarray(6, 10)) && emitted !== undefined && into === emitted
}

/** The first internal the probe lacks, as the message of ERR_AEDES_INTERNALS; undefined when all are there. */
export function internalsProblem (probe: InternalsProbe): string | undefined {
  for (const check of CHECKS) {
    let holds: boolean
    try {
      holds = check.holds(probe)
    } catch {
      holds = false
    }
    if (!holds) return `${check.owner} ${probe.versions[check.owner]} does not have ${check.what}; Culex pins ${check.owner} ${pinnedVersion(check.owner)}`
  }
  return undefined
}

/** A real aedes broker (never started) and one of its clients on a stream that never connects, closed at once. */
export function probeInstalled (): InternalsProbe {
  const broker = new Aedes({})
  const conn = new Duplex({ read () {}, write (_chunk, _encoding, cb) { cb() } })
  const client = broker.handle(conn) as unknown as Record<string, unknown>
  ;(client as unknown as { close: () => void }).close()
  conn.destroy()
  // mqtt-packet as aedes resolves it, which may differ from the copy Culex itself would import
  const fromAedes = createRequire(createRequire(import.meta.url).resolve('aedes'))
  return {
    versions: {
      aedes: (broker as unknown as { version: string }).version,
      'mqtt-packet': (JSON.parse(readFileSync(fromAedes.resolve('mqtt-packet/package.json'), 'utf8')) as { version: string }).version
    },
    broker: broker as unknown as Record<string, unknown>,
    client,
    // the class of the parser aedes gave the client; its static parser() makes a fresh one
    newParser: () => ((client._parser as object).constructor as unknown as { parser: () => Record<string, unknown> }).parser(),
    writePath: installedWritePath,
    publishSteps: installedPublishSteps,
    matcherCalls: installedMatcherCalls
  }
}

/** Throws ERR_AEDES_INTERNALS unless every internal Culex relies on is where it expects it. */
export function assertAedesInternals (probe: InternalsProbe = probeInstalled()): void {
  const problem = internalsProblem(probe)
  if (problem !== undefined) throw new CulexError('ERR_AEDES_INTERNALS', problem)
}
