// Generator: shared subscriptions, where each message must reach exactly one member of the group.
import { settle } from './drain.mjs'
import { Client, PublishTemplate, SeqSet, closeAll } from './mqtt.mjs'
import { Publisher } from './publisher.mjs'

// shared subscriptions: 1 publisher -> M members of $share/g/bench/shared; each message to exactly one member.
// `plain` puts the same load on plain subscriptions, the baseline for the shared path: M subscribers, each
// on its own topic bench/shared/<i>, and the publisher takes the topics in turn, so the same connections receive
// the same messages, split by topic instead of by the group.

export async function shared (o, ctx) {
  const { members = 4, messages = 20000, window = 64, payloadSize = 64, idleMs = 2000, plain = false } = o
  const seen = new SeqSet(messages * 2)
  const perMember = new Array(members).fill(0)
  let dup = 0
  let lastRecvAt = 0
  const subs = []
  const granted = []
  for (let i = 0; i < members; i++) {
    const c = await Client.connect(ctx.port, { clientId: `bench-shared-${i}` })
    granted.push((await c.subscribe([{ topic: plain ? `bench/shared/${i}` : '$share/g/bench/shared', qos: 1 }]))[0])
    c.onPublish = (cl, q, id, b, ts, te, ps, pe, now) => {
      perMember[i]++
      if (seen.add(b.readUInt32BE(ps + 2))) lastRecvAt = now; else dup++
    }
    subs.push(c)
  }
  const pc = await Client.connect(ctx.port, { clientId: 'bench-shared-pub' })
  const pub = new Publisher(pc, { index: 0, topic: 'bench/shared', qos: 1, payloadSize, window })
  if (plain) {
    const templates = Array.from({ length: members }, (_, i) => new PublishTemplate({ topic: `bench/shared/${i}`, qos: 1, payloadSize, pubIndex: 0 }))
    pub.topicFor = seq => templates[seq % members]
  }
  pub.start(messages)
  await settle({ done: () => pub.ackedCount === messages && seen.count >= messages, progress: () => pub.ackedCount + seen.count + dup, idleMs })
  let lost = 0
  for (let seq = 0; seq < pub.sent; seq++) if (pub.acked.has(seq) && !seen.has(seq)) lost++
  const mean = perMember.reduce((a, b) => a + b, 0) / members
  const result = {
    granted,
    sent: pub.sent,
    acked: pub.ackedCount,
    delivered: seen.count,
    deliveredRatio: seen.count / messages,
    rate: seen.count === 0 ? 0 : seen.count / ((lastRecvAt - pub.firstSendAt) / 1000),
    perMember,
    spread: mean > 0 ? (Math.max(...perMember) - Math.min(...perMember)) / mean : null,
    lost,
    dup
  }
  await closeAll([...subs, pc])
  return result
}
