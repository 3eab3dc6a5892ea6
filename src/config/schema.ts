import { bool, int, oneOf, port, str, type ConfigOf } from './fields.js'
import { anonymousField } from '../auth/config-fields.js'
import { regexField } from '../limits/config-fields.js'
import { groupBackoffsField, groupStrategiesField, redeliveryBackoffSection } from '../shared-subscriptions/config-fields.js'
import { STRATEGIES } from '../shared-subscriptions/strategies.js'
import { payloadRulesField } from '../dead-letter/payload-rules.js'
import { payloadLimitsField } from '../limits/config-fields.js'
import { clusterSection } from '../cluster/config-fields.js'

const hostDoc = 'Address to bind; 127.0.0.1 for this machine only, 0.0.0.0 for every IPv4 interface, :: for every interface.'
// Per listener security settings (docs/security.md).
const listenerSecurity = {
  allowAnonymous: anonymousField('Let clients connect without a user name. auto: only while the listener is bound to a loopback address and no auth.passwordFile is set.'),
  maxConnections: int(0, 'Open connections on this listener; more are closed when accepted. 0 = only limits.maxConnections applies.')
}
const identityAsUsername = bool(false, "Use the client certificate's common name (CN) as the user name, without a password; needs requireClientCert.")
const tlsFiles = (what: string) => ({
  certFile: str('', `PEM certificate chain for ${what}; required when enabled.`),
  keyFile: str('', `PEM private key for ${what}; required when enabled.`),
  caFile: str('', 'PEM CA bundle that client certificates must chain to; required when requireClientCert is true.'),
  requireClientCert: bool(false, 'Refuse TLS clients that present no certificate signed by caFile.'),
  useIdentityAsUsername: identityAsUsername
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
    level: oneOf('info', ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'], 'Least severe level written; subscribe and unsubscribe lines appear at debug, one line per published message at trace.'),
    format: oneOf('auto', ['auto', 'json', 'pretty'], 'json: one JSON object per line; pretty: readable lines; auto: pretty on a terminal, json otherwise.')
  },
  listeners: {
    mqtt: {
      enabled: bool(true, 'Accept MQTT over plain TCP.'),
      host: str('127.0.0.1', hostDoc, { nonEmpty: true }),
      port: port(1883, 'TCP port for MQTT.'),
      ...listenerSecurity
    },
    mqtts: {
      enabled: bool(false, 'Accept MQTT over TLS.'),
      host: str('127.0.0.1', hostDoc, { nonEmpty: true }),
      port: port(8883, 'TCP port for MQTT over TLS.'),
      ...tlsFiles('the MQTT over TLS listener'),
      ...listenerSecurity
    },
    ws: {
      enabled: bool(true, 'Accept MQTT over WebSocket.'),
      host: str('127.0.0.1', hostDoc, { nonEmpty: true }),
      port: port(8083, 'TCP port for MQTT over WebSocket.'),
      path: wsPath,
      ...listenerSecurity
    },
    wss: {
      enabled: bool(false, 'Accept MQTT over secure WebSocket (TLS).'),
      host: str('127.0.0.1', hostDoc, { nonEmpty: true }),
      port: port(8084, 'TCP port for MQTT over secure WebSocket.'),
      path: wsPath,
      ...tlsFiles('the secure WebSocket listener'),
      ...listenerSecurity
    }
  },
  admin: {
    enabled: bool(true, 'Serve the HTTP admin server: health checks, Prometheus /metrics, the JSON API and the web console (docs/operations.md).'),
    host: str('127.0.0.1', 'Address the admin server binds; keep it private unless it is protected.', { nonEmpty: true }),
    port: port(18083, 'TCP port of the admin server.'),
    authToken: str('', 'Token every admin request must carry, as a bearer token (Authorization: Bearer ...) or as the basic-auth password; /healthz, /readyz and the console page stay open. Empty = no authentication.'),
    sysIntervalMs: int(10_000, 'Publish the $SYS/broker/... topics this often; 0 = never.')
  },
  mqtt: {
    connectTimeoutMs: int(30_000, 'Close a connection whose CONNECT has not arrived within this time.', { min: 100 }),
    drainTimeoutMs: int(60_000, 'Disconnect a client whose socket stays unwritable (a frozen reader) this long; 0 = never.'),
    maxPendingBeforeConnackBytes: int(2_097_152, 'Bytes of packets sent after CONNECT without waiting for CONNACK that are held, unhandled, until the login has succeeded: they are then handled in order, and dropped if the login is refused. Only packets read together with CONNECT are held (the rest stays unread until CONNACK); past this the connection is closed.', { min: 1 }),
    maxInflightInboundMessages: int(1000, 'QoS 2 messages one client may have awaiting PUBREL; a client over it is disconnected. 0 = unlimited.'),
    topicAliasMaximum: int(10, 'MQTT 5 Topic Aliases per connection, each way: an MQTT 5 client may set up to this many on its PUBLISHes (told as Topic Alias Maximum in CONNACK; one over it closes the connection with DISCONNECT 0x94), and the broker sets up to this many, within the Topic Alias Maximum of the client, on the PUBLISHes it sends (one per distinct topic, in the order they are first sent). 0 = none either way.', { max: 65_535 }),
    maxTopicLevels: int(100, 'Topic levels allowed in a topic or filter (the matcher cannot handle more than 100).', { min: 1, max: 100 }),
    responseTopicPrefix: str('response/', 'MQTT 5 Response Information: a client that asks for it (Request Response Information 1) is told this prefix followed by its client id and "/" as the root of its response topics (docs/protocol.md); empty = never told. With an ACL, a pattern rule such as `pattern readwrite response/%c/#` gives each client its own.', { pattern: /^[^$+#\u0000][^+#\u0000]*$/, patternDoc: 'a topic prefix without wildcards, not starting with $' }),
    retryIntervalMs: int(0, 'Resend a QoS 1/2 PUBLISH (DUP set, same packet id) or a PUBREL that a connected client has not acknowledged within this time, and again at this interval until it does or disconnects (docs/protocol.md). 0 = off: only a persistent session that reconnects gets them again.', { min: 100, orZero: true })
  },
  // Authentication and authorization (src/auth, docs/security.md).
  auth: {
    passwordFile: str('', 'File of username:hash lines, written by culex passwd; empty = no password logins. Reloaded on SIGHUP and when it changes.'),
    aclFile: str('', 'ACL file, Mosquitto text form or YAML (.yaml/.yml); empty = every client may use every topic except $ topics for publishing. Reloaded like the password file.'),
    watchFiles: bool(true, 'Reload the password and ACL files when they change on disk (SIGHUP reloads them either way).'),
    failedLoginDelayMs: int(1000, 'After a failed login, logins with that user name from that address (right or wrong) are answered only after this delay, doubled at each further failure; other user names from the address are not slowed. 0 = off.'),
    failedLoginMaxDelayMs: int(30_000, 'Cap of that delay; failures are forgotten 10 times this long after the last one.', { min: 1 }),
    failedLoginMaxUsersPerAddress: int(10, 'Distinct user names that may fail to log in from one address before every login from that address is slowed as well (a password spray), by the same doubling per user name over it; 0 = never.')
  },
  // Resource limits (src/limits, docs/security.md): each says what a client over it gets.
  limits: {
    maxConnections: int(10_000, 'Open connections on all listeners together (including those that have not sent CONNECT yet); more are closed when accepted. 0 = unlimited.'),
    connectionRatePerSecond: int(0, "New connections per second from one source address (a second's worth may come at once); more are closed when accepted. 0 = unlimited."),
    maxPayloadBytes: int(1_048_576, 'Largest PUBLISH payload: a larger one is acknowledged and dropped; a packet declaring more than this plus 256 KiB closes the connection before it is read.', { min: 1, max: 268_435_455 }),
    topicMaxPayloadBytes: payloadLimitsField('Smaller payload limits for some topics: a mapping of topic filter to bytes, such as {telemetry/#: 4096}; in the environment telemetry/#=4096. Where several filters match, the smallest limit applies; a payload over it is refused as too-large.'),
    maxTopicLength: int(65_535, 'Longest topic or topic filter in UTF-8 bytes: a longer PUBLISH topic is acknowledged and dropped, a longer filter gets SUBACK 0x80.', { min: 1, max: 65_535 }),
    maxSubscriptionsPerClient: int(1000, 'Topic filters one client may hold; each filter over it gets SUBACK 0x80. 0 = unlimited.'),
    maxInflightMessages: int(1000, 'Messages queued behind a client whose connection has not taken data for a second (a slow reader), or held for an MQTT 5 client that has its Receive Maximum unacknowledged; over it, or over maxInflightBytes, QoS 0 copies are dropped for it and a QoS 1/2 copy disconnects it as a slow consumer (a persistent session keeps its messages; a clean session\'s are dead-lettered as slow-consumer). Also the live QoS 0 messages held for a persistent session until the replay of its queue at CONNECT has ended: past it they join its queue (sessions.queueQos0) or go out at once. 0 = unlimited.'),
    maxInflightBytes: int(67_108_864, 'Topic and payload bytes queued behind such a slow reader (or held for such an MQTT 5 client); over it as maxInflightMessages. 0 = unlimited.'),
    publishRateMessagesPerSecond: int(0, "PUBLISH packets per second one client may send (a second's worth may come at once); over it the broker stops reading from the client until it is back under. 0 = unlimited."),
    publishRateBytesPerSecond: int(0, 'Topic and payload bytes per second one client may publish; over it the broker stops reading from the client until it is back under. 0 = unlimited.'),
    maxClientIdLength: int(256, 'Longest client id in UTF-8 bytes; a longer one gets CONNACK 2 (identifier rejected).', { min: 23, max: 65_535 }),
    clientIdPattern: regexField('', 'Regular expression every client id must match, else CONNACK 2; empty = any id (ids with control characters are always refused).'),
    minKeepaliveSeconds: int(0, 'Smallest keepalive accepted, else CONNACK 2; above 0, keepalive 0 (never time out) is refused too.', { max: 65_535 }),
    maxKeepaliveSeconds: int(65_535, 'Largest keepalive accepted, else CONNACK 2.', { max: 65_535 })
  },
  sessions: {
    maxQueuedMessages: int(100_000, 'Messages waiting in one persistent session\'s queue (in-flight ones are never dropped); 0 = unlimited.'),
    maxQueuedBytes: int(104_857_600, 'Payload bytes waiting in one persistent session\'s queue; 0 = unlimited.'),
    maxTotalQueuedMessages: int(250_000, 'Messages all persistent sessions\' queues hold together, waiting or in flight: each costs about 270 bytes of memory however small its payload, so this bounds the memory of the queues (the default about 70 MB). A session whose message would pass it loses its own oldest waiting message (dropOldest) or the new one (dropNewest), dead-lettered as broker-queue-full; never another session\'s. In cluster mode it counts every node\'s queues in Redis. 0 = unlimited.'),
    maxTotalQueuedBytes: int(1_073_741_824, 'Payload bytes all persistent sessions\' queues hold together, waiting or in flight (on disk; in flight also in memory); over it like maxTotalQueuedMessages. 0 = unlimited.'),
    overflowPolicy: oneOf('dropOldest', ['dropOldest', 'dropNewest'], 'Which message goes when a session queue is full; every drop is counted and logged.'),
    messageExpiryMs: int(0, 'Queued messages older than this are discarded instead of delivered; 0 = never expire.'),
    queueQos0: bool(false, 'Also queue messages delivered at QoS 0 (QoS 0 publishes, and QoS 1/2 ones through a filter granted QoS 0) for persistent sessions whose client is disconnected (in a cluster: connected to no node), like Mosquitto\'s queue_qos0_messages: the queue limits and expiry apply, and each is sent once, at QoS 0, when the client is back. $SYS messages are never queued. false = a disconnected session misses them.'),
    expiryMs: int(604_800_000, 'A persistent session whose client has been disconnected this long is removed with its subscriptions and queue; 0 = never. Also the longest Session Expiry Interval an MQTT 5 client is granted (a shorter one is honoured). Default 7 days: a device offline over a long weekend keeps its session, a client id nobody uses again does not stay for ever.')
  },
  // Shared subscriptions, $share/<group>/<filter> (src/shared-subscriptions, docs/shared-subscriptions.md).
  sharedSubscriptions: {
    strategy: oneOf('round-robin', STRATEGIES, 'How a group picks the member for each message: round-robin, random, least-inflight (fewest unacknowledged), sticky (one member while it stays connected), hash-clientid (by publisher) or hash-topic (one topic, one member).'),
    groupStrategies: groupStrategiesField('Strategy of particular share names, overriding strategy: a mapping such as {orders: hash-topic}; in the environment orders=hash-topic,billing=sticky.'),
    ackTimeoutMs: int(30_000, 'A QoS 1/2 message a member has not acknowledged (PUBACK/PUBREC) this long goes to another member after the wait of redeliveryBackoff; 0 = never (it still moves, at once, when the member disconnects).'),
    redeliveryBackoff: redeliveryBackoffSection(),
    groupRedeliveryBackoff: groupBackoffsField('The redeliveryBackoff of particular share names, each key left out taken from redeliveryBackoff: a mapping such as {orders: {initialMs: 500, maxMs: 10000}}; in the environment orders=500:2:10000:0.1 (initialMs:multiplier:maxMs:jitter, any part empty).'),
    maxDeliveries: int(5, 'Deliveries of one message before the group gives it up (dead letter: logged and counted); 0 = retry for ever.'),
    redispatchRejected: bool(true, 'A message a member refuses (MQTT 5 PUBACK/PUBREC reason code >= 0x80) goes to another member after the redeliveryBackoff wait, counted against maxDeliveries, as a work queue retries a job; false = MQTT 5 strict [MQTT-4.8.2-6]: it is dead-lettered as rejected at once and never offered to another member.'),
    maxInflightPerMember: int(1000, 'Unacknowledged QoS 1/2 messages one member may hold; more go to other members or wait in the group queue. 0 = unlimited.'),
    maxQueuedMessages: int(100_000, "Messages waiting in one group's queue (members offline or full); over it sessions.overflowPolicy decides which one goes. 0 = unlimited."),
    maxQueuedBytes: int(104_857_600, "Payload bytes waiting in one group's queue; 0 = unlimited.")
  },
  // The dead-letter topic $DLQ/<reason>/<topic> and its durable log (src/dead-letter, docs/dead-letter.md).
  deadLetter: {
    enabled: bool(true, 'Keep every refused or undeliverable message in the store and publish it on $DLQ/<reason>/<topic>; false = refusals are only logged and counted.'),
    maxMessages: int(10_000, 'Dead letters kept in the store; over it the oldest is removed (and counted). 0 = unlimited.'),
    maxBytes: int(67_108_864, 'Payload bytes of all dead letters kept in the store (default 64 MiB); over it the oldest are removed (and counted), and one larger than this on its own is not kept. 0 = unlimited.'),
    maxAgeMs: int(604_800_000, 'Dead letters older than this are removed (and counted); 0 = kept until purged. Default 7 days.'),
    ratePerSecond: int(100, 'Envelopes published on $DLQ/... per second (burst of one second); every dead letter is stored, the ones over the rate are not published, only counted (culex_dead_letters_suppressed_total). 0 = unlimited.'),
    onRejectedPublish: oneOf('acknowledge', ['acknowledge', 'disconnect'], 'What the publisher of a refused message sees: acknowledge (PUBACK/PUBREC, for an MQTT 5 publish with the reason code; it stays connected) or disconnect (the connection is closed without an acknowledgement). The message is dead-lettered either way.'),
    noSubscribers: bool(false, 'Also dead-letter a QoS 1/2, non-retained publish that matches no subscription (reason no-subscribers); it is still published.'),
    payloadRules: payloadRulesField('Topic filters whose payloads must be valid: json (parses as JSON), utf8, or schema:<file> (JSON valid against the JSON Schema in that file); a payload that fails is refused as invalid-payload. A mapping such as {orders/#: "schema:orders.schema.json"}; in the environment orders/#=json,logs/+=utf8.')
  },
  retained: {
    maxMessages: int(100_000, 'Retained topics kept (each costs about 250 bytes of memory: the default about 25 MB); over the limit a new retained topic is refused and dead-lettered as retained-limit (replacing or clearing one still works). 0 = unlimited.')
  },
  store: {
    sync: bool(false, 'false: every acknowledged message survives a process crash; true: it also survives power loss (each write batch is fsynced, slower).'),
    onCorrupt: oneOf('fail', ['fail', 'moveAside'], 'What to do when the store cannot be read: fail with an error, or move the bad directory aside and start empty (logged loudly).')
  },
  // Several nodes on one Redis (src/cluster, docs/cluster.md).
  cluster: clusterSection(),
  shutdown: {
    timeoutMs: int(10_000, 'How long a graceful shutdown may take before the process exits anyway.', { min: 100 })
  }
} as const

export type Config = ConfigOf<typeof schema>
