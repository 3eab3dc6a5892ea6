import type { Client } from 'aedes'
import { endsFlow, isRejection, tapAcknowledgements, type AcknowledgementPacket } from '../packet-tap.js'
import type { UndeliveredSink } from '../undelivered.js'
import { isShared, type ReceiveWindow } from './receive-window.js'

interface AckV5 extends AcknowledgementPacket {
  properties?: { reasonString?: string }
}

/**
 * An MQTT 5 client's acknowledgements of the broker's QoS 1/2 PUBLISHes: each that completes one makes room in its
 * Receive Maximum (receive-window.ts). A refusal (PUBACK or PUBREC with a reason code ≥ 0x80) settles the message:
 * aedes is handed a refusing PUBREC as a PUBACK, so it sends no PUBREL and takes the message out of a persistent
 * session's queue, as for any completed delivery (nothing is sent to this client again); the copy is reported as
 * `rejected`, with the reason code and string, unless a shared group delivered it (the group offers it to another
 * member, src/shared-subscriptions). Registered at CONNECT, before the slow-reader limit, retransmission, delivery
 * lag and shared subscriptions register theirs, so those run first and read the PUBREC as sent (packet-tap.ts).
 */
export function watchAcknowledgements (client: Client, window: ReceiveWindow, undelivered: UndeliveredSink): void {
  tapAcknowledgements(client, (ack: AckV5) => {
    const id = ack.messageId
    if (id === undefined || !endsFlow(ack)) return
    const copy = window.settle(id)
    if (!isRejection(ack)) return
    const answer = ack.cmd.toUpperCase()
    ack.cmd = 'puback'
    if (copy === undefined || isShared(copy)) return
    const reasonString = ack.properties?.reasonString
    const detail = `the subscriber refused it: ${answer} reason code ${hexCode(ack.reasonCode ?? 0)}` +
      (reasonString === undefined ? '' : `, reason string ${JSON.stringify(reasonString)}`)
    undelivered(client, [copy], 'rejected', detail)
  })
}

/** "0x87": how the reason codes are written in details and docs. */
export function hexCode (code: number): string {
  return `0x${code.toString(16).toUpperCase().padStart(2, '0')}`
}
