import { bool, int, oneOf, port, str, type ConfigOf } from './fields.js'

const hostDoc = 'Address to bind; 0.0.0.0 for every IPv4 interface, :: for every interface, 127.0.0.1 for this machine only.'
const tlsFiles = (what: string) => ({
  certFile: str('', `PEM certificate chain for ${what}; required when enabled.`),
  keyFile: str('', `PEM private key for ${what}; required when enabled.`),
  caFile: str('', 'PEM CA bundle that client certificates must chain to; required when requireClientCert is true.'),
  requireClientCert: bool(false, 'Refuse TLS clients that present no certificate signed by caFile.')
})
const wsPath = str('/mqtt', 'HTTP path that accepts MQTT-over-WebSocket upgrades (subprotocol "mqtt").', { pattern: /^\/\S*$/, patternDoc: 'a path starting with /' })

/**
 * Every configuration key, its default and its documentation. The README's config reference and
 * config/culex.yaml are checked against this tree by the test suite.
 */
export const schema = {
  brokerId: str('', 'Identity of this broker in stored messages and $SYS topics; empty picks a random id at each start.', { pattern: /^[A-Za-z0-9._-]+$/, patternDoc: 'letters, digits, ".", "_" or "-"' }),
  dataDir: str('./data', 'Directory for durable state (the LevelDB store lives in <dataDir>/store).', { nonEmpty: true }),
  log: {
    level: oneOf('info', ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'], 'Least severe level written; per-message lines appear at debug and trace.'),
    format: oneOf('auto', ['auto', 'json', 'pretty'], 'json: one JSON object per line; pretty: readable lines; auto: pretty on a terminal, json otherwise.')
  },
  listeners: {
    mqtt: {
      enabled: bool(true, 'Accept MQTT over plain TCP.'),
      host: str('0.0.0.0', hostDoc, { nonEmpty: true }),
      port: port(1883, 'TCP port for MQTT.')
    },
    mqtts: {
      enabled: bool(false, 'Accept MQTT over TLS.'),
      host: str('0.0.0.0', hostDoc, { nonEmpty: true }),
      port: port(8883, 'TCP port for MQTT over TLS.'),
      ...tlsFiles('the MQTT over TLS listener')
    },
    ws: {
      enabled: bool(true, 'Accept MQTT over WebSocket.'),
      host: str('0.0.0.0', hostDoc, { nonEmpty: true }),
      port: port(8083, 'TCP port for MQTT over WebSocket.'),
      path: wsPath
    },
    wss: {
      enabled: bool(false, 'Accept MQTT over secure WebSocket (TLS).'),
      host: str('0.0.0.0', hostDoc, { nonEmpty: true }),
      port: port(8084, 'TCP port for MQTT over secure WebSocket.'),
      path: wsPath,
      ...tlsFiles('the secure WebSocket listener')
    }
  },
  admin: {
    enabled: bool(true, 'Serve the HTTP admin endpoints (health checks).'),
    host: str('127.0.0.1', 'Address the admin server binds; keep it private unless it is protected.', { nonEmpty: true }),
    port: port(18083, 'TCP port of the admin server.')
  },
  mqtt: {
    connectTimeoutMs: int(30_000, 'Close a connection whose CONNECT has not arrived within this time.', { min: 100 }),
    drainTimeoutMs: int(60_000, 'Disconnect a client whose socket stays unwritable (a frozen reader) this long; 0 = never.'),
    maxInflightInboundMessages: int(1000, 'QoS 2 messages one client may have awaiting PUBREL; a client over it is disconnected. 0 = unlimited.'),
    maxTopicLevels: int(100, 'Topic levels allowed in a topic or filter (the matcher cannot handle more than 100).', { min: 1, max: 100 })
  },
  sessions: {
    maxQueuedMessages: int(100_000, 'Messages kept for one persistent session (offline queue plus in-flight); 0 = unlimited.'),
    maxQueuedBytes: int(104_857_600, 'Payload bytes kept for one persistent session; 0 = unlimited.'),
    overflowPolicy: oneOf('dropOldest', ['dropOldest', 'dropNewest'], 'Which message goes when a session queue is full; every drop is counted and logged.'),
    messageExpiryMs: int(0, 'Queued messages older than this are discarded instead of delivered; 0 = never expire.')
  },
  retained: {
    maxMessages: int(0, 'Retained topics kept; over the limit a new retained topic is refused (replacing or clearing one still works). 0 = unlimited.')
  },
  store: {
    sync: bool(false, 'false: every acknowledged message survives a process crash; true: it also survives power loss (each write batch is fsynced, slower).'),
    onCorrupt: oneOf('fail', ['fail', 'moveAside'], 'What to do when the store cannot be read: fail with an error, or move the bad directory aside and start empty (logged loudly).')
  },
  shutdown: {
    timeoutMs: int(10_000, 'How long a graceful shutdown may take before the process exits anyway.', { min: 100 })
  }
} as const

export type Config = ConfigOf<typeof schema>
