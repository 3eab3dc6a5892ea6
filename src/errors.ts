/**
 * The one catalogue of Culex error codes. Every error a user can see carries one of these codes;
 * docs/errors.md has a row per code with its meaning and the fix.
 */
export const errorCodes = {
  ERR_CONFIG_INVALID: 'the configuration has one or more invalid values',
  ERR_CONFIG_FILE: 'the configuration file cannot be read or parsed',
  ERR_USAGE: 'the command line is not understood',
  ERR_LISTENER_BIND: 'a listener cannot bind its address',
  ERR_TLS_FILES: 'a TLS certificate, key or CA file cannot be read or they do not load together',
  ERR_AUTH_FILE: 'the password file or ACL file cannot be read or parsed',
  ERR_STORE_OPEN: 'the data directory cannot be opened',
  ERR_STORE_LOCKED: 'the data directory is in use by another process',
  ERR_STORE_VERSION: 'the data directory was written by an unknown format version',
  ERR_STORE_CORRUPT: 'the data directory is corrupt',
  ERR_STORE_WRITE: 'a write to the data directory failed',
  ERR_STORE_REPLICAS: 'the Redis replicas did not confirm a write in time',
  ERR_SHUTDOWN_TIMEOUT: 'shutdown did not finish within shutdown.timeoutMs',
  ERR_ADMIN_API: "the running broker's admin API cannot be reached or refused the request",
  ERR_DEAD_LETTER_NOT_FOUND: 'no dead letter has the given id',
  ERR_AEDES_INTERNALS: 'the installed aedes or mqtt-packet lacks an internal Culex relies on',
  ERR_CLUSTER_CONFIG: 'the cluster settings cannot work together',
  ERR_CLUSTER_NODE_ID_IN_USE: 'another running node of the cluster has this node id',
  ERR_CLUSTER_REDIS: "the cluster's Redis does not answer",
  ERR_CLUSTER_NODES_RUNNING: 'nodes of the cluster are running, and the command needs them stopped',
  ERR_SESSION_CONNECTED: "the session's client is connected to a running node of the cluster"
} as const

export type ErrorCode = keyof typeof errorCodes

/** Exit codes of the culex command. */
export const exitCodes = {
  ok: 0,
  failure: 1,
  usage: 2,
  config: 2
} as const

export class CulexError extends Error {
  readonly code: ErrorCode
  /** Extra lines that explain the problem to a user, one per item (e.g. one per bad config key). */
  readonly details: readonly string[]

  constructor (code: ErrorCode, message: string, options: { details?: readonly string[], cause?: unknown } = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause })
    this.name = 'CulexError'
    this.code = code
    this.details = options.details ?? []
  }
}

export function isCulexError (err: unknown): err is CulexError {
  return err instanceof CulexError
}
