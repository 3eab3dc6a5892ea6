import type { Client } from 'aedes'

/**
 * Why a copy for one client was not delivered, though the message itself was: larger than the client's MQTT 5
 * Maximum Packet Size, refused by the client (a PUBACK or PUBREC with a reason code of 0x80 or more), or held for a
 * clean session past limits.maxInflightMessages / maxInflightBytes while it did not acknowledge (its Receive
 * Maximum reached). The dead-letter feature records each (docs/dead-letter.md).
 */
export type UndeliveredReason = 'too-large-for-client' | 'rejected' | 'slow-consumer'

export interface UndeliveredCopy {
  topic: string
  payload: unknown
  qos: number
  retain?: boolean
}

/** Told of copies a client did not get, once each; `detail` says why in words. */
export type UndeliveredSink = (client: Client, copies: readonly UndeliveredCopy[], reason: UndeliveredReason, detail: string) => void

export function tooLargeDetail (packetBytes: number, maximumPacketSize: number): string {
  return `the packet (${packetBytes} bytes) is larger than the subscriber's Maximum Packet Size (${maximumPacketSize} bytes)`
}
