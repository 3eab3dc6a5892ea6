import type { Aedes, Client } from 'aedes'
import { NO_CONNACK, refusalReasons, type Totals } from './totals.js'

/** CONNACK codes that mean the credentials were refused, as auth-failure reasons. */
const authRefusals: Record<number, string> = {
  4: 'bad_username_or_password',
  5: 'not_authorized'
}

/**
 * Feeds the connection counts from aedes' events: accepted connections ('client', with the clients connected by
 * protocol level until 'clientDisconnect'; aedes emits one for each), refusals with their CONNACK code
 * ('connackSent'), and connections that closed before any CONNACK ('connectionError').
 */
export function countConnections (aedes: Aedes, totals: Totals): void {
  const refusedWithConnack = new WeakSet<Client>()

  aedes.on('client', client => {
    totals.connections++
    if (aedes.connectedClients > totals.maxConnected) totals.maxConnected = aedes.connectedClients
    totals.connectedByLevel[client.version]++
  })
  aedes.on('clientDisconnect', client => { totals.connectedByLevel[client.version]-- })
  aedes.on('connackSent', (packet, client) => {
    const code = packet.returnCode ?? 0
    if (code === 0) return
    refusedWithConnack.add(client)
    totals.refuse(refusalReasons[code] ?? `connack_${code}`)
    const auth = authRefusals[code]
    if (auth !== undefined) totals.authFailure(auth)
  })
  aedes.on('connectionError', client => {
    // aedes reports a refused CONNECT here too when it was refused before the client id was set.
    if (refusedWithConnack.has(client)) return
    totals.refuse(NO_CONNACK)
  })
}
