/** MQTT's Variable Byte Integer (MQTT 5 §1.5.5; the Remaining Length of MQTT 3.1.1 §2.2.3): its size and its bytes. */

export function varIntSize (n: number): number {
  return n < 0x80 ? 1 : n < 0x4000 ? 2 : n < 0x200000 ? 3 : 4
}

/** Writes n at `at` and returns where it ends. */
export function writeVarInt (out: Buffer, at: number, n: number): number {
  do {
    let byte = n % 128
    n = Math.floor(n / 128)
    if (n > 0) byte |= 0x80
    out[at++] = byte
  } while (n > 0)
  return at
}
