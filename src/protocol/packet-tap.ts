import type { Client } from 'aedes'
import { internals, type MqttParser } from './aedes-internals.js'

/**
 * The command a tap gives a packet it has dealt with entirely (an MQTT 5 AUTH, protocol/v5/enhanced-auth.ts): aedes
 * does not see it.
 */
export const CONSUMED = 'consumed'

/** The fields of a parsed packet every tap may read; a tap reads the others it needs from its own type. */
export interface TappedPacket { cmd: string, messageId?: number }

export type PacketTap<P extends TappedPacket = TappedPacket> = (packet: P) => void

interface Taps {
  /** Every tap, newest first: what an acknowledgement goes through. */
  all: PacketTap[]
  /** The taps of every packet, newest first: what any other packet goes through. */
  every: PacketTap[]
}

const tapsOf = new WeakMap<MqttParser, Taps>()

/** An acknowledgement as an MQTT 5 client may send it: with a reason code (absent = 0x00, success). */
export interface AcknowledgementPacket extends TappedPacket { reasonCode?: number }

/**
 * MQTT 5: a PUBACK or PUBREC with a reason code of 0x80 or more refuses the message. It ends the flow of the
 * PUBLISH it answers, as a PUBACK or PUBCOMP does (no PUBREL follows a refusing PUBREC, and the id is free again).
 * The v5 layer hands a refusing PUBREC to aedes as a PUBACK (v5/acknowledgements.ts); the taps that run before it
 * read it as sent.
 */
export function isRejection (ack: AcknowledgementPacket): boolean {
  return (ack.cmd === 'puback' || ack.cmd === 'pubrec') && (ack.reasonCode ?? 0) >= 0x80
}

/** Whether the acknowledgement completes its PUBLISH: PUBACK, PUBCOMP, or a refusing PUBREC. */
export function endsFlow (ack: AcknowledgementPacket): boolean {
  return ack.cmd === 'puback' || ack.cmd === 'pubcomp' || (ack.cmd === 'pubrec' && (ack.reasonCode ?? 0) >= 0x80)
}

/** The acknowledgements of the broker's own QoS 1/2 deliveries, the only packets most taps read. */
function isAcknowledgement (cmd: string): boolean {
  return cmd === 'puback' || cmd === 'pubrec' || cmd === 'pubcomp'
}

/**
 * Each feature that reads a connection's packets before aedes handles them registers here rather than on the
 * parser: one parser listener per connection runs them all. Half a dozen listeners of their own sent every packet
 * through EventEmitter's many-listener path (a copy of the listener array and a call per listener) and through every
 * feature's test of the command, a tenth of the broker's throughput at QoS 1.
 *
 * The order is the one prependListener gave: the newest tap runs first, all of them before aedes. The lists are
 * replaced, not changed, so a tap registered while a packet is handled (aedes runs the connect steps from its own
 * listener) sees the next packet, not this one, as with the emitter.
 */
function tapsFor (client: Client): Taps {
  const parser = internals(client)._parser
  const known = tapsOf.get(parser)
  if (known !== undefined) return known
  const taps: Taps = { all: [], every: [] }
  tapsOf.set(parser, taps)
  // aedes' own listener (lib/client.js enqueue, the only one) is called from this one, after the taps: with one
  // listener, emit calls it directly, with two it copies the listener array on every packet
  const handlers = parser.listeners('packet') as Array<(packet: TappedPacket) => void>
  parser.removeAllListeners('packet')
  parser.on('packet', function tapped (this: MqttParser, packet: TappedPacket) {
    const run = isAcknowledgement(packet.cmd) ? taps.all : taps.every
    for (let i = 0; i < run.length; i++) run[i](packet)
    if (packet.cmd === CONSUMED) return
    for (let i = 0; i < handlers.length; i++) handlers[i].call(this, packet)
  })
  return taps
}

/** `tap` sees every packet the client sends, before aedes and before the taps registered earlier. */
export function tapPackets<P extends TappedPacket> (client: Client, tap: PacketTap<P>): void {
  const taps = tapsFor(client)
  taps.all = [tap as PacketTap, ...taps.all]
  taps.every = [tap as PacketTap, ...taps.every]
}

/**
 * `tap` sees each PUBACK, PUBREC and PUBCOMP the client sends, in the same order as tapPackets' taps; the packets it
 * does not read cost it nothing.
 */
export function tapAcknowledgements<P extends TappedPacket> (client: Client, tap: PacketTap<P>): void {
  const taps = tapsFor(client)
  taps.all = [tap as PacketTap, ...taps.all]
}
