/** One connection to probe: `ping` sends a PING on it, or answers undefined while it is down (not probed then). */
export interface Probed {
  role: string
  ping: () => Promise<unknown> | undefined
}

export interface LivenessEvents {
  /** A PING on this connection went unanswered past the deadline; once per episode. */
  hung: (role: string, why: string) => void
  /** The unanswered PING was answered at last. */
  answered: (role: string) => void
}

/**
 * Notices a Redis that hangs with its connections open (a stopped process, a frozen host, a link that drops
 * packets): it answers nothing and closes nothing, so ioredis sees no error and the publishers simply wait. Every
 * `intervalMs` each connection that is up gets a PING, one at a time; a PING unanswered after `timeoutMs` reports the
 * connection as hung until its reply arrives. The PING queues behind the commands sent before it on the same
 * connection, so it measures what a publish waits there. Nothing is failed or resent for it: ioredis'
 * `commandTimeout` would reject writes in flight that Redis may still apply, and a publish rejected so could be
 * acknowledged twice or lost. Connections blocked in `XREAD BLOCK` cannot take a PING and are not probed.
 */
export function probeLiveness (conns: readonly Probed[], opts: { intervalMs: number, timeoutMs: number }, events: LivenessEvents): { close: () => void } {
  const waiting = new Set<string>()
  const hung = new Set<string>()
  const probe = ({ role, ping }: Probed): void => {
    if (waiting.has(role)) return
    const answer = ping()
    if (answer === undefined) return
    waiting.add(role)
    const deadline = setTimeout(() => {
      hung.add(role)
      events.hung(role, `no answer to PING within ${opts.timeoutMs} ms`)
    }, opts.timeoutMs)
    const settle = (answered: boolean): void => {
      clearTimeout(deadline)
      waiting.delete(role)
      if (hung.delete(role) && answered) events.answered(role)
    }
    // rejected only when the connection is closed for good: ioredis resends a PING in flight once it reconnects
    answer.then(() => { settle(true) }, () => { settle(false) })
  }
  const timer = setInterval(() => { for (const conn of conns) probe(conn) }, opts.intervalMs)
  timer.unref()
  return { close: () => { clearInterval(timer) } }
}
