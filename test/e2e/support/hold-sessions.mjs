// Opens N persistent MQTT sessions (clean: false, one QoS 1 subscription each) to 127.0.0.1:<port> and keeps them
// open until killed; prints "ready" once all are subscribed. A separate process, so that closing hundreds of
// sockets does not busy the test's own event loop. Usage: node hold-sessions.mjs <port> <count> <clientIdPrefix>
import mqtt from 'mqtt'

const [port, count, prefix] = process.argv.slice(2)
await Promise.all(Array.from({ length: Number(count) }, (_, i) => new Promise((resolve, reject) => {
  const c = mqtt.connect(`mqtt://127.0.0.1:${port}`, { clientId: `${prefix}${i}`, clean: false, reconnectPeriod: 0, protocolVersion: 4 })
  c.once('error', reject)
  c.once('connect', () => c.subscribe(`${prefix}/${i}`, { qos: 1 }, err => err ? reject(err) : resolve()))
})))
process.stdout.write('ready\n')
setInterval(() => {}, 1 << 30)
