import type { Client, ConnectPacket } from 'aedes'
import type { AuthenticateStep, ConnectStep } from '../../hook-chain.js'
import { internals } from '../aedes-internals.js'
import { tapPackets } from '../packet-tap.js'
import { grantedSessionExpiry, keepsSession, serverKeepAlive, type V5ServerInfo } from './connack.js'
import { markV5, v5Of, type V5Connect, type V5Connection } from './connection.js'
import { PROTOCOL_ERROR, sendDisconnect } from './disconnect.js'
import { encodeAedesWritesPerVersion } from './writer.js'
import { answerIdentifierInUse, noteSubscribe } from './suback.js'
import { screenAuth, type AuthPacket } from './enhanced-auth.js'
import { noteExistingSubscriptions } from './retained.js'
import { checkSubscriptionId, forgetSubscriptionIds } from './subscription-ids.js'
import { OutgoingAliases, resolveIncomingAlias } from './topic-aliases.js'

const NORMAL_DISCONNECTION = 0x00
const UNSUBSCRIBED = 0x00
const NO_SUBSCRIPTION_EXISTED = 0x11
const BAD_AUTHENTICATION_METHOD = 0x8C
/** The MQTT 3.1.1 refusal a v5-only refusal goes through aedes as; the CONNACK carries the v5 reason code. */
const NOT_AUTHORIZED = 5

interface ParsedPacket extends AuthPacket {
  cmd: string
  reasonCode?: number
  messageId?: number
  unsubscriptions?: string[]
  subscriptions?: Array<{ topic: string, rap?: boolean, nl?: boolean }>
  properties?: AuthPacket['properties'] & { topicAlias?: number, subscriptionIdentifier?: number | number[], sessionExpiryInterval?: number }
  clientId?: string
  topic?: string
}

interface ConnectV5 {
  protocolVersion?: number
  clientId?: string
  clean?: boolean
  keepalive?: number
  properties?: {
    sessionExpiryInterval?: number
    receiveMaximum?: number
    maximumPacketSize?: number
    topicAliasMaximum?: number
    requestResponseInformation?: boolean
    requestProblemInformation?: boolean
    userProperties?: Record<string, string | string[]>
    authenticationMethod?: string
    authenticationData?: Buffer
  }
}

/**
 * MQTT 5 clients accepted by aedes 1.2, which refuses protocol level 5 (lib/handlers/connect.js): the one place a
 * connection's protocol version is decided. The preConnect step runs first of all: it records what the client asked
 * for (V5Connect), marks the client as v5 — from then on every packet written to it is MQTT 5 (writer.ts, and
 * Culex's own encoders through isV5) — and hands aedes the CONNECT as level 4 with the clean flag that says whether
 * Culex keeps the session (keepsSession), and a keepalive within the limits (serverKeepAlive, told in CONNACK). The
 * first authenticate step, which aedes runs right after its level check, gives the client its real version back and
 * refuses a client that asked for an enhanced authentication method Culex does not offer (0x8C).
 */
export function createV5Connections (server: V5ServerInfo) {
  encodeAedesWritesPerVersion()
  const connectPackets = new WeakMap<Client, ConnectV5>()

  const acceptV5: ConnectStep = (client, aedesPacket) => {
    const packet = aedesPacket as ConnectPacket & ConnectV5
    if (packet.protocolVersion !== 5) return undefined
    const props = packet.properties ?? {}
    const connect: V5Connect = {
      cleanStart: packet.clean !== false,
      sessionExpiryInterval: props.sessionExpiryInterval ?? 0,
      receiveMaximum: props.receiveMaximum ?? 65_535,
      maximumPacketSize: props.maximumPacketSize,
      topicAliasMaximum: props.topicAliasMaximum ?? 0,
      requestResponseInformation: props.requestResponseInformation === true,
      requestProblemInformation: props.requestProblemInformation !== false,
      userProperties: props.userProperties,
      authenticationMethod: props.authenticationMethod,
      authenticationData: props.authenticationData,
      assignedClientId: (packet.clientId ?? '') === ''
    }
    const connection = markV5(client, connect, server, grantedSessionExpiry(connect, server))
    if (props.receiveMaximum === 0) {
      // MQTT 5 §3.1.2.11.3: a protocol error, refused with CONNACK once the login steps run
      connection.refusal = PROTOCOL_ERROR
      connection.refusalReason = 'a Receive Maximum of 0'
    } else if (connect.authenticationMethod !== undefined && server.authMethods.get(connect.authenticationMethod) === undefined) {
      // an enhanced authentication method this broker does not offer (src/auth/methods.ts) is refused once the login
      // steps run; one it offers is run by enhanced-auth.ts
      connection.refusal = BAD_AUTHENTICATION_METHOD
      connection.refusalReason = `authentication method ${connect.authenticationMethod} is not offered`
    }
    const aliases = Math.min(connect.topicAliasMaximum, server.topicAliasMaximum)
    if (aliases > 0) connection.aliasesOut = new OutgoingAliases(aliases)
    const keepalive = serverKeepAlive(packet.keepalive ?? 0, server)
    if (keepalive !== undefined) {
      // aedes and the connect limits read the keepalive from the packet: they see the one the server gives
      connection.serverKeepAlive = keepalive
      packet.keepalive = keepalive
    }
    const parser = internals(client)._parser
    // mqtt-packet parses what follows a CONNECT with that packet as its settings: it keeps level 5 of its own.
    parser.settings = { protocolVersion: 5 }
    packet.protocolVersion = 4
    packet.clean = !keepsSession(connection)
    connectPackets.set(client, packet)
    tapPackets(client, (p: ParsedPacket) => { screen(connection, p) })
    return undefined
  }

  const restoreVersion: AuthenticateStep = (client) => {
    const packet = connectPackets.get(client)
    const connection = v5Of(client)
    if (packet === undefined || connection === undefined) return undefined
    packet.protocolVersion = 5
    ;(client as { version: number }).version = 5
    return connection.refusal === undefined ? undefined : NOT_AUTHORIZED
  }

  return { acceptV5, restoreVersion }
}

/**
 * What a v5 client sends that aedes 1.2 or Culex would mishandle, dealt with before aedes sees it. A command aedes
 * does not know makes it close the connection without a normal disconnect (lib/handlers/index.js), which publishes
 * the will: what a DISCONNECT with any reason but 0x00 asks for (0x04 asks for it by name; MQTT 5 §3.1.2.5 deletes
 * the will only on 0x00), and what the specification asks for a protocol error: a Topic Alias out of range or
 * unknown (topic-aliases.ts), a Subscription Identifier of 0 (subscription-ids.ts) or in a client's PUBLISH, No
 * Local on a shared subscription. For the first two the server says why first (DISCONNECT with the reason code).
 */
function screen (connection: V5Connection, packet: ParsedPacket): void {
  switch (packet.cmd) {
    case 'auth':
      screenAuth(connection, packet)
      return
    case 'disconnect': {
      const interval = packet.properties?.sessionExpiryInterval
      if (interval !== undefined) {
        // MQTT 5 §3.14.2.2.2: a session that was to end with the connection cannot be kept by its DISCONNECT
        if (connection.connect.sessionExpiryInterval === 0 && interval > 0) {
          violation(connection, packet, PROTOCOL_ERROR, 'a Session Expiry Interval on DISCONNECT after a CONNECT with 0')
          return
        }
        connection.sessionExpiry = Math.min(interval, connection.server.sessionExpirySeconds)
      }
      if ((packet.reasonCode ?? NORMAL_DISCONNECTION) !== NORMAL_DISCONNECTION) packet.cmd = 'disconnect-with-will'
      return
    }
    case 'unsubscribe': {
      if (answerIdentifierInUse(connection, packet)) return
      // aedes handles the UNSUBSCRIBE right after this: what the client is subscribed to now is what it removes
      const subscriptions = internals(connection.client).subscriptions
      const filters = packet.unsubscriptions ?? []
      const codes = filters.map(filter => subscriptions[filter] === undefined ? NO_SUBSCRIPTION_EXISTED : UNSUBSCRIBED)
      if (packet.messageId !== undefined) connection.unsubscribes.set(packet.messageId, codes)
      forgetSubscriptionIds(connection, filters)
      return
    }
    case 'publish':
      // MQTT 5 §3.3.2.3.8: only the server sets Subscription Identifiers [MQTT-3.3.4-6]
      if (packet.properties?.subscriptionIdentifier !== undefined) {
        violation(connection, packet, PROTOCOL_ERROR, 'a Subscription Identifier in a PUBLISH from a client')
        return
      }
      if (packet.properties?.topicAlias !== undefined) {
        const refused = resolveIncomingAlias(connection.aliasesIn ??= new Map(), connection.server.topicAliasMaximum, packet as { topic: string })
        if (refused !== undefined) {
          violation(connection, packet, refused)
          return
        }
      }
      // aedes 1.2 does not say who published a message; No Local needs it (the delivery router, the queue replay)
      if (connection.client.id !== null) packet.clientId = connection.client.id
      return
    case 'subscribe': {
      if (answerIdentifierInUse(connection, packet)) return
      noteSubscribe(connection, packet as Parameters<typeof noteSubscribe>[1])
      const subs = packet.subscriptions ?? []
      if (!checkSubscriptionId(packet)) {
        violation(connection, packet, PROTOCOL_ERROR, 'a Subscription Identifier of 0')
        return
      }
      // [MQTT-3.8.3-4]: No Local on a shared subscription is a protocol error
      if (subs.some(s => s.nl === true && s.topic.startsWith('$share/'))) {
        violation(connection, packet, PROTOCOL_ERROR, 'No Local on a shared subscription')
        return
      }
      // Retain Handling 1 sends retained messages only for a subscription that did not exist (retained.ts)
      noteExistingSubscriptions(internals(connection.client).subscriptions, subs)
    }
  }
}

/** A packet that breaks the protocol: the server says why (DISCONNECT) and aedes closes the connection. */
function violation (connection: V5Connection, packet: ParsedPacket, reasonCode: number, reason?: string): void {
  sendDisconnect(connection.client, reasonCode, reason)
  packet.cmd = 'protocol-violation'
}
