/**
 * The reason codes sent to MQTT 5 clients, by packet and code, for `culex_mqtt5_reason_codes_sent_total`: every code
 * but success (0x00, and a SUBACK's granted QoS 1 and 2), so a PUBACK 0x00 costs one comparison. One per broker.
 */
export class ReasonCodesSent {
  /** `<packet> <code>` → packets sent with it. */
  private readonly counts = new Map<string, number>()

  /** Counts the reason codes of a packet written to a v5 client (as mqtt-packet encodes it). */
  count (packet: { cmd: string, reasonCode?: number, granted?: number[] }): void {
    const code = packet.reasonCode
    if (code !== undefined && code !== 0) this.add(packet.cmd, code)
    if (packet.granted === undefined) return
    for (const granted of packet.granted) {
      if (granted !== 0 && (packet.cmd !== 'suback' || granted >= 0x80)) this.add(packet.cmd, granted)
    }
  }

  add (packet: string, code: number): void {
    const key = `${packet} ${code}`
    this.counts.set(key, (this.counts.get(key) ?? 0) + 1)
  }

  /** [packet, code as 0xNN, count] for each code sent. */
  entries (): Array<[string, string, number]> {
    return [...this.counts].map(([key, n]) => {
      const [packet, code] = key.split(' ')
      return [packet, `0x${Number(code).toString(16).toUpperCase().padStart(2, '0')}`, n]
    })
  }
}
