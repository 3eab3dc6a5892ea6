// The generator's publisher: batches PUBLISH packets into one write, keeps a window of unacknowledged messages and
// optionally stays at most `backlog` messages ahead of its receivers, so broker queues do not grow without bound
// and the measured rate is what the broker sustains.
import { performance } from 'node:perf_hooks'
import { PublishTemplate, SeqSet } from './mqtt.mjs'

/**
 * A publisher with a window of unacknowledged messages (QoS > 0) and an optional bound on how far it may run
 * ahead of its receivers (`ahead()` returns sent - received). Messages carry (pubIndex, seq, send time).
 */
export class Publisher {
  /** An MQTT 5 client's messages are MQTT 5 PUBLISHes, with `properties` if given. */
  constructor (client, { index, topic, qos, payloadSize = 64, retain = false, window = 64, backlog = Infinity, ahead = null, batch = 256, minBatch = 1, properties }) {
    this.client = client
    this.index = index
    this.qos = qos
    this.tpl = new PublishTemplate({ topic, qos, payloadSize, retain, pubIndex: index, protocolVersion: client.v5 ? 5 : 4, properties })
    this.window = qos > 0 ? window : Infinity
    this.backlog = backlog
    this.ahead = ahead
    this.batch = batch
    this.minBatch = minBatch // wait for this many free slots (unless nothing is outstanding) so writes are not tiny
    this.sent = 0
    this.inflight = 0
    this.ackedCount = 0
    this.acked = new SeqSet()
    this.idToSeq = new Int32Array(65536)
    this.nextId = 0
    this.limit = Infinity // total messages to send
    this.stopped = true
    this.scheduled = false
    this.firstSendAt = 0
    this.lastAckAt = 0
    this.topicFor = null // optional (seq) => template, for per-message topics
    client.onAck = (c, id, now) => {
      const seq = this.idToSeq[id]
      if (this.acked.add(seq)) this.ackedCount++
      this.inflight--
      this.lastAckAt = now
      this.schedule()
    }
  }

  start (limit = Infinity) {
    this.limit = limit
    this.stopped = false
    this.pump()
  }

  stop () { this.stopped = true }

  schedule () {
    if (this.scheduled || this.stopped) return
    this.scheduled = true
    setImmediate(() => { this.scheduled = false; this.pump() })
  }

  pump () {
    if (this.stopped || this.client.closed) return
    let n = Math.min(this.window - this.inflight, this.limit - this.sent, this.batch)
    if (this.ahead !== null) n = Math.min(n, this.backlog - this.ahead())
    if (n <= 0) return
    if (n < this.minBatch && this.sent + n < this.limit && this.inflight + (this.ahead ? this.ahead() : 0) > 0) return
    const t = performance.now()
    if (this.sent === 0) this.firstSendAt = t
    const tpls = []
    let size = 0
    for (let k = 0; k < n; k++) {
      const tpl = this.topicFor ? this.topicFor(this.sent + k) : this.tpl
      tpls.push(tpl)
      size += tpl.length
    }
    const buf = Buffer.allocUnsafe(size)
    let off = 0
    for (let k = 0; k < n; k++) {
      const seq = this.sent++
      let id = 0
      if (this.qos > 0) {
        id = this.nextId = this.nextId >= 65535 ? 1 : this.nextId + 1
        this.idToSeq[id] = seq
      }
      tpls[k].write(buf, off, id, seq, t)
      off += tpls[k].length
    }
    if (this.qos > 0) this.inflight += n
    this.client.write(buf)
  }
}
