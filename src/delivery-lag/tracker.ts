import type { HistogramSeries } from '../metrics/fast-histogram.js'

/** Packet identifiers per block: 64 blocks cover 1..65535. */
const BLOCK_BITS = 10
const BLOCK = 1 << BLOCK_BITS
/**
 * Emptied blocks kept for reuse, shared by every connection. A subscriber that acknowledges each message before the
 * next empties its block at every PUBACK: dropping it there and making a new one at the next delivery allocated
 * 16 KB per message, a quarter of the broker's garbage at QoS 1 and 2,000 msg/s (a young-generation collection
 * every 0.7 s). Bounded, so connections going idle hand back at most this many blocks' memory.
 */
const SPARE_MAX = 16
const spareArrived: Float64Array[] = []
const spareSeries: Array<Array<HistogramSeries | undefined>> = []
let made = 0

/** Blocks made so far, by every connection (for the test that emptied blocks are reused). */
export function blocksMade (): number {
  return made
}

/**
 * One connection's QoS 1/2 deliveries the client has not finished acknowledging (PUBACK for QoS 1, PUBCOMP for
 * QoS 2), by packet identifier, each with when its message arrived at the broker. Kept in blocks of 1024 ids made on
 * first use and dropped once empty (ids go round in turn, so a connection holds one or two): noting a delivery and
 * its acknowledgement is two array writes, where a Map of records cost an allocation and two hash operations on
 * every message.
 */
export class ConnectionLag {
  /**
   * Arrival (epoch ms) per id; 0 = nothing unacknowledged under that id. The three tables are made at the first
   * QoS 1/2 delivery: most connections of a many-device node never get one, and they cost about 1.2 KB.
   */
  #arrived: Array<Float64Array | undefined> | undefined
  #series: Array<Array<HistogramSeries | undefined> | undefined> | undefined
  #inBlock: Uint16Array | undefined
  #unacked = 0

  get unacked (): number {
    return this.#unacked
  }

  /** A PUBLISH went out under `messageId`; one sent under an id still held replaces it (the client reused it). */
  sent (messageId: number, arrivedAt: number, series: HistogramSeries): void {
    const blocks = this.#arrived ??= new Array<Float64Array | undefined>(64).fill(undefined)
    const seriesBlocks = this.#series ??= new Array<Array<HistogramSeries | undefined> | undefined>(64).fill(undefined)
    const inBlock = this.#inBlock ??= new Uint16Array(64)
    const b = messageId >>> BLOCK_BITS
    let arrived = blocks[b]
    let blockSeries = seriesBlocks[b]
    if (arrived === undefined || blockSeries === undefined) {
      arrived = spareArrived.pop()
      blockSeries = spareSeries.pop()
      if (arrived === undefined || blockSeries === undefined) {
        made++
        arrived = new Float64Array(BLOCK)
        blockSeries = new Array<HistogramSeries | undefined>(BLOCK).fill(undefined)
      }
      blocks[b] = arrived
      seriesBlocks[b] = blockSeries
    }
    const i = messageId & (BLOCK - 1)
    if (arrived[i] === 0) {
      inBlock[b]++
      this.#unacked++
    }
    arrived[i] = arrivedAt
    blockSeries[i] = series
  }

  /** The final acknowledgement: the time since arrival goes into the delivery's histogram series. */
  completed (messageId: number, now: number): void {
    const blocks = this.#arrived
    const seriesBlocks = this.#series
    const inBlock = this.#inBlock
    if (blocks === undefined || seriesBlocks === undefined || inBlock === undefined) return
    const b = messageId >>> BLOCK_BITS
    const arrived = blocks[b]
    const blockSeries = seriesBlocks[b]
    if (arrived === undefined || blockSeries === undefined) return
    const i = messageId & (BLOCK - 1)
    const at = arrived[i]
    if (at === 0) return
    arrived[i] = 0
    const series = blockSeries[i]
    blockSeries[i] = undefined
    series?.observe(Math.max(0, now - at) / 1000)
    this.#unacked--
    if (--inBlock[b] === 0) {
      blocks[b] = undefined
      seriesBlocks[b] = undefined
      // every entry was cleared as it was acknowledged: the block is as new
      if (spareArrived.length < SPARE_MAX) {
        spareArrived.push(arrived)
        spareSeries.push(blockSeries)
      }
    }
  }

  /** Arrival of the oldest message still unacknowledged (epoch ms); undefined when none is. A scrape-time walk. */
  oldestArrival (): number | undefined {
    if (this.#unacked === 0 || this.#arrived === undefined) return undefined
    let oldest = Infinity
    for (const arrived of this.#arrived) {
      if (arrived === undefined) continue
      for (let i = 0; i < BLOCK; i++) if (arrived[i] !== 0 && arrived[i] < oldest) oldest = arrived[i]
    }
    return oldest === Infinity ? undefined : oldest
  }

  clear (): void {
    this.#arrived = undefined
    this.#series = undefined
    this.#inBlock = undefined
    this.#unacked = 0
  }
}
