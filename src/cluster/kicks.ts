import { randomBytes } from 'node:crypto'
import type { Logger } from '../log/logger.js'
import { encodeKick, encodeKicked, type BusEntry } from './codec.js'

type KickEntry = Extract<BusEntry, { kind: 'kick' | 'kicked' }>

export interface KickDeps {
  nodeId: string
  send: (nodeId: string, fields: Array<string | Buffer>) => Promise<unknown>
  /** The other nodes a client may be connected to. */
  others: () => Iterable<string>
  /** How long an answer is waited for: a node that died meanwhile never answers (cluster.nodeTimeoutMs). */
  timeoutMs: number
  /**
   * Closes this node's connection of the client id, as an administrator's kick; resolves once it is closed and the
   * store has applied what the close wrote (whether there was one).
   */
  closeHere: (clientId: string, by: string) => Promise<boolean>
  log: Logger
}

/**
 * The admin API's kick of a client connected to another node (its purge of that client's session closes it first):
 * the request goes on every other node's stream, and each answers on the asking node's stream once it has closed its
 * connection of that id, or found none. A node that has the client answers only after its store applied the writes
 * of that close (the packet ids it held back, lazy-ids.ts), so a purge that follows is not undone by them (queue keys
 * of the removed session written again). A node of an earlier version skips the request: its client is not found,
 * after `timeoutMs`.
 */
export function createKicks (deps: KickDeps): { kick: (clientId: string) => Promise<boolean>, receive: (entry: KickEntry) => Promise<void> } {
  const pending = new Map<string, { waiting: number, done: (found: boolean) => void }>()

  const kick = async (clientId: string): Promise<boolean> => {
    const targets = [...deps.others()]
    if (targets.length === 0) return false
    const request = randomBytes(8).toString('hex')
    return await new Promise<boolean>((resolve) => {
      const timer = setTimeout(() => { done(false) }, deps.timeoutMs)
      const done = (found: boolean): void => {
        clearTimeout(timer)
        pending.delete(request)
        resolve(found)
      }
      pending.set(request, { waiting: targets.length, done })
      for (const nodeId of targets) {
        deps.send(nodeId, encodeKick(clientId, deps.nodeId, request)).catch((err: unknown) => {
          deps.log.warn({ err, clientId, nodeId }, 'cluster kick not sent')
          answered(request, false)
        })
      }
    })
  }

  const answered = (request: string, found: boolean): void => {
    const waiting = pending.get(request)
    if (waiting === undefined) return
    if (found || --waiting.waiting === 0) waiting.done(found)
  }

  const receive = async (entry: KickEntry): Promise<void> => {
    if (entry.kind === 'kicked') {
      answered(entry.request, entry.found)
      return
    }
    const found = await deps.closeHere(entry.clientId, entry.from)
    await deps.send(entry.from, encodeKicked(entry.request, found))
  }

  return { kick, receive }
}
