/**
 * Key schema of the LevelDB store (docs/store.md has the full table).
 *
 *   m!format                      {formatVersion}
 *   s!<client>!<filter>           one subscription
 *   o!<client>!<seq:16 digits>    one queued outgoing publish or pubrel
 *   i!<client>!<messageId:5>      one inbound QoS 2 packet awaiting PUBREL
 *   w!<client>                    the client's will
 *   r!<topic>                     one retained message
 *   c!<client>                    one persistent session (created, last connected and disconnected times)
 *   g!<share>!<seq:16 digits>     one message of a shared subscription's durable queue (<share> = group/filter)
 *   d!<seq:16 digits>             one dead letter (src/store/dead-letters.ts, docs/dead-letter.md)
 *
 * <client> is the client id with '%' and '!' percent-encoded, so it never contains the separator:
 * the range of client `abc` (`o!abc!` … `o!abc"`) cannot reach into client `abcde`.
 */

/**
 * 1: JSON-header values only. 2: values may also be the binary publish form (publish-codec.ts); a version 1
 * directory is upgraded in place at open (nothing to rewrite: version 1 values stay readable).
 */
export const FORMAT_VERSION = 2
export const META_KEY = 'm!format'

export const PREFIX = {
  meta: 'm!',
  subscription: 's!',
  outgoing: 'o!',
  incoming: 'i!',
  will: 'w!',
  retained: 'r!',
  session: 'c!',
  group: 'g!',
  deadLetter: 'd!'
} as const

export function encodeClientId (clientId: string): string {
  if (!clientId.includes('%') && !clientId.includes('!')) return clientId
  return clientId.replaceAll('%', '%25').replaceAll('!', '%21')
}

export function decodeClientId (encoded: string): string {
  if (!encoded.includes('%')) return encoded
  return encoded.replace(/%2[15]/g, (seq) => seq === '%21' ? '!' : '%')
}

export function subscriptionKey (client: string, filter: string): string {
  return PREFIX.subscription + client + '!' + filter
}

export function outgoingKey (client: string, seq: number): string {
  return outgoingKeyPrefix(client) + seqDigits(seq)
}

/** `o!<client>!`: what every outgoing key of the client starts with. */
export function outgoingKeyPrefix (client: string): string {
  return PREFIX.outgoing + client + '!'
}

const ZEROS = '0000000000000000'

/** A sequence number as the 16 zero-padded digits keys hold (without padStart's intermediate strings). */
export function seqDigits (seq: number): string {
  const digits = String(seq)
  return digits.length >= 16 ? digits : ZEROS.slice(digits.length) + digits
}

export function incomingKey (client: string, messageId: number): string {
  return PREFIX.incoming + client + '!' + String(messageId).padStart(5, '0')
}

/** `share` is `<group>/<filter>`, encoded like a client id (it may contain "!" too). */
export function groupQueueKey (share: string, seq: number): string {
  return PREFIX.group + share + '!' + String(seq).padStart(16, '0')
}

export function deadLetterKey (seq: number): string {
  return PREFIX.deadLetter + String(seq).padStart(16, '0')
}

export function willKey (client: string): string {
  return PREFIX.will + client
}

export function retainedKey (topic: string): string {
  return PREFIX.retained + topic
}

/** Iterator bounds for every key that starts with `prefix` (which ends in '!'). */
export function prefixRange (prefix: string): { gte: string, lt: string } {
  return { gte: prefix, lt: prefix.slice(0, -1) + '"' }
}

/** Splits `<kind>!<client>!<rest>` into the decoded client id and the rest; undefined if malformed. */
export function splitClientKey (key: string): { clientId: string, rest: string } | undefined {
  const end = key.indexOf('!', 2)
  if (end < 0) return undefined
  return { clientId: decodeClientId(key.slice(2, end)), rest: key.slice(end + 1) }
}

/** True when the key parses as `<kind>!<client>!<digits>` with the digit count the schema uses. */
export function parseNumberedKey (key: string, digits: number): { clientId: string, n: number } | undefined {
  const parts = splitClientKey(key)
  if (parts === undefined || parts.rest.length !== digits || !/^\d+$/.test(parts.rest)) return undefined
  return { clientId: parts.clientId, n: Number(parts.rest) }
}

/**
 * Whether a queued write must be visible to reads before it commits (see ValueReader): writes to keys read back
 * while the broker runs (replay, retained lookups, group and dead-letter reads). Of an outgoing entry only the
 * enqueue's put is: the session's index keeps the entry's later record (its packet id, its PUBREL) in memory and
 * replays it from there, and drops an entry before its delete is queued, so nothing reads those writes back.
 */
export function isReadBack (key: string, op: 'put' | 'del'): boolean {
  if (key.startsWith(PREFIX.outgoing)) return op === 'put'
  return key.startsWith(PREFIX.retained) || key.startsWith(PREFIX.group) || key.startsWith(PREFIX.deadLetter)
}
