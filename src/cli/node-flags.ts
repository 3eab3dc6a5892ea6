/**
 * The flags every entry point starts node with: the Dockerfile's ENTRYPOINT, `npm start` and the first line of
 * dist/main.js (the `culex` command); test/unit/node-flags.test.ts holds the three to this list, and the end-to-end
 * tests and the benchmark start the broker with it too. V8 sizes its heap when the process starts, so a running
 * broker cannot set these itself.
 *
 * --max-semi-space-size=32: every message allocates short-lived objects (packets, frames, callbacks, a queue entry
 * for a persistent subscriber), about 6 kB in all. V8's default young generation (16 MB semi-spaces) filled every
 * 15-20 ms at 180,000 QoS 1 messages a second, and each scavenge copied, then promoted to the old generation, the
 * messages still in flight (up to a few thousand waiting for their PUBACKs). Twice the room lets most of them
 * complete between two scavenges; four times (64) measured no better and held 50 MB more. Measured in
 * docs/performance.md ("The young generation").
 */
export const NODE_FLAGS: readonly string[] = ['--max-semi-space-size=32']

/**
 * The NODE_FLAGS this process was started without, by name: a flag given with another value (on node's command line
 * or in NODE_OPTIONS) is the operator's choice, not missing.
 */
export function missingNodeFlags (execArgv: readonly string[] = process.execArgv, nodeOptions = process.env.NODE_OPTIONS ?? ''): string[] {
  const given = new Set([...execArgv, ...nodeOptions.split(/\s+/)].map(flagName))
  return NODE_FLAGS.filter(flag => !given.has(flagName(flag)))
}

/** `--max-semi-space-size=32` → `--max-semi-space-size`; node treats `_` and `-` in V8 flag names alike. */
function flagName (arg: string): string {
  const eq = arg.indexOf('=')
  return (eq === -1 ? arg : arg.slice(0, eq)).replaceAll('_', '-')
}
