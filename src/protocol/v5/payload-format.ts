import type { PublishStep } from '../../hook-chain.js'

const decoder = new TextDecoder('utf-8', { fatal: true })

/**
 * MQTT 5 Payload Format Indicator 1 says the payload is UTF-8 (§3.3.2.3.2); the receiver may check it and refuse a
 * payload that is not, with PUBACK/PUBREC 0x99 (Payload format invalid). Culex does: the refusal is an
 * `invalid-payload` drop like the payload rules' (deadLetter.payloadRules), so the publisher is told 0x99
 * (refusals.ts) and the message is dead-lettered. Only an MQTT 5 PUBLISH carries properties: any other costs one
 * missing-property read.
 */
export const checkPayloadFormat: PublishStep = (_client, packet) => {
  const indicator = (packet as { properties?: { payloadFormatIndicator?: boolean } }).properties?.payloadFormatIndicator
  if (indicator !== true) return undefined
  try {
    decoder.decode(packet.payload as Buffer)
  } catch {
    return { drop: 'invalid-payload', detail: 'Payload Format Indicator 1 (UTF-8), but the payload is not valid UTF-8' }
  }
  return undefined
}
