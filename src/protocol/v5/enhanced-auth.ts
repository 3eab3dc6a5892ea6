import mqtt from 'mqtt-packet'
import type { AuthenticateStep } from '../../hook-chain.js'
import { noteMethodLogin, type AuthExchange, type AuthStepResult } from '../../auth/methods.js'
import { internals } from '../aedes-internals.js'
import { CONSUMED } from '../packet-tap.js'
import { v5Of, type V5Connection } from './connection.js'
import { NOT_AUTHORIZED, PROTOCOL_ERROR, sendDisconnect } from './disconnect.js'

const SUCCESS = 0x00
const CONTINUE_AUTHENTICATION = 0x18
const REAUTHENTICATE = 0x19

export interface AuthPacket {
  cmd: string
  reasonCode?: number
  properties?: { authenticationMethod?: string, authenticationData?: Buffer }
}

type Final = Exclude<AuthStepResult, { outcome: 'continue' }>

/**
 * MQTT 5 enhanced authentication on the wire (MQTT 5 §4.12): the method is looked up in the broker's registry
 * (src/auth/methods.ts, where the contract a method implements is) and given each Authentication Data; this file
 * carries its answers. During CONNECT the login waits while the method and the client exchange AUTH 0x18: reading,
 * which stops at CONNECT until CONNACK (connack-gate.ts, which lets AUTH through), is resumed only while an answer is
 * awaited, and each answer must come within `authTimeoutMs`. A connected client re-authenticates with AUTH 0x19,
 * answered AUTH 0x00 or, when the method refuses, DISCONNECT 0x87.
 */
export const authenticateWithMethod: AuthenticateStep = async (client, username) => {
  const connection = v5Of(client)
  const name = connection?.connect.authenticationMethod
  const method = name === undefined ? undefined : connection?.server.authMethods.get(name)
  // no method: not enhanced authentication; an unknown one was refused 0x8C by the first authenticate step
  if (connection === undefined || name === undefined || method === undefined || client.id === null) return undefined
  const result = await run(connection, method.start({ clientId: client.id, username, reauthentication: false }), connection.connect.authenticationData, true)
  if (result.outcome === 'failure') return { code: 5, refuse: 'not-authorized', detail: result.reason }
  noteMethodLogin(client, { method: name, username: result.username })
  connection.authenticated = { username: result.username, data: result.data }
  return undefined
}

/** An AUTH packet from a v5 client (accept.ts screens it): never seen by aedes, which does not know AUTH. */
export function screenAuth (connection: V5Connection, packet: AuthPacket): void {
  const { client, connect } = connection
  const method = connect.authenticationMethod
  const reason = packet.reasonCode ?? SUCCESS
  const data = packet.properties?.authenticationData
  // [MQTT-4.12.0-5]: the method of every AUTH is the CONNECT's; AUTH without enhanced authentication is a protocol error
  if (method === undefined || packet.properties?.authenticationMethod !== method) {
    protocolError(connection, packet, 'AUTH with another Authentication Method than the CONNECT\'s, or without one')
    return
  }
  if (reason === CONTINUE_AUTHENTICATION && connection.awaitingAuth !== undefined) {
    connection.awaitingAuth({ data })
    packet.cmd = CONSUMED
    return
  }
  const methodImpl = connection.server.authMethods.get(method)
  if (reason !== REAUTHENTICATE || connection.reauthenticating || connection.authenticated === undefined || methodImpl === undefined || client.id === null) {
    protocolError(connection, packet, 'AUTH out of turn')
    return
  }
  packet.cmd = CONSUMED
  const before = connection.authenticated
  const exchange = methodImpl.start({ clientId: client.id, username: before.username, reauthentication: true })
  connection.reauthenticating = true
  void run(connection, exchange, data, false).then(result => {
    connection.reauthenticating = false
    if (client.closed) return
    if (result.outcome === 'success' && result.username === before.username) {
      writeAuth(connection, SUCCESS, result.data)
      return
    }
    sendDisconnect(client, NOT_AUTHORIZED, result.outcome === 'failure' ? `re-authentication failed: ${result.reason}` : 're-authentication as another user')
    client.close()
  })
}

function protocolError (connection: V5Connection, packet: AuthPacket, reason: string): void {
  sendDisconnect(connection.client, PROTOCOL_ERROR, reason)
  packet.cmd = 'protocol-violation'
  connection.awaitingAuth?.(undefined)
}

/** Runs an exchange to its end: the method's steps, with an AUTH 0x18 round trip for each `continue`. */
async function run (connection: V5Connection, exchange: AuthExchange, first: Buffer | undefined, duringConnect: boolean): Promise<Final> {
  let result = await step(exchange, first)
  while (result.outcome === 'continue') {
    const answer = await ask(connection, result.data, duringConnect)
    if (answer === undefined) return { outcome: 'failure', reason: `no AUTH answer within ${connection.server.authTimeoutMs} ms` }
    result = await step(exchange, answer.data)
  }
  return result
}

async function step (exchange: AuthExchange, data: Buffer | undefined): Promise<AuthStepResult> {
  try {
    return await exchange.step(data)
  } catch (err) {
    return { outcome: 'failure', reason: `authentication method error: ${(err as Error).message}` }
  }
}

/** Sends AUTH 0x18 with the method's data; the client's AUTH 0x18, or undefined after a timeout or a close. */
async function ask (connection: V5Connection, data: Buffer, duringConnect: boolean): Promise<{ data: Buffer | undefined } | undefined> {
  const { client } = connection
  if (client.closed || !client.conn.writable) return undefined
  return await new Promise(resolve => {
    const finish = (answer: { data: Buffer | undefined } | undefined): void => {
      clearTimeout(timer)
      client.conn.off('close', closed)
      connection.awaitingAuth = undefined
      if (duringConnect) internals(client).pause()
      resolve(answer)
    }
    const closed = (): void => { finish(undefined) }
    const timer = setTimeout(closed, connection.server.authTimeoutMs)
    client.conn.once('close', closed)
    connection.awaitingAuth = finish
    writeAuth(connection, CONTINUE_AUTHENTICATION, data)
    if (duringConnect) internals(client).resume()
  })
}

function writeAuth (connection: V5Connection, reasonCode: number, data: Buffer | undefined): void {
  const properties: AuthPacket['properties'] = { authenticationMethod: connection.connect.authenticationMethod }
  if (data !== undefined) properties.authenticationData = data
  if (reasonCode !== SUCCESS) connection.server.reasonCodesSent.add('auth', reasonCode)
  connection.client.conn.write(mqtt.generate({ cmd: 'auth', reasonCode, properties }, { protocolVersion: 5 }))
}
