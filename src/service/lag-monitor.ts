import { Gauge, type Registry } from 'prom-client'
import { groupLag } from '../admin/lag.ts'
import type { KafkaConnection } from '../kafka/connection.ts'

/**
 * Polls the broker for each group's lag and exports it: `conveyor_consumer_lag` (offsets)
 * and `conveyor_consumer_lag_seconds` (age of the oldest unconsumed record), per partition.
 */
export class LagMonitor {
  readonly #connection: KafkaConnection
  readonly #groups: string[]
  readonly #interval: number
  readonly #offsets: Gauge
  readonly #seconds: Gauge
  #timer: NodeJS.Timeout | undefined
  #running: Promise<void> | undefined

  constructor({
    connection,
    groups,
    registry,
    interval = 15_000
  }: { connection: KafkaConnection; groups: string[]; registry: Registry; interval?: number }) {
    this.#connection = connection
    this.#groups = groups
    this.#interval = interval
    const labelNames = ['group', 'topic', 'partition']
    this.#offsets = new Gauge({
      name: 'conveyor_consumer_lag',
      help: 'Records between the committed offset and the end of the log.',
      labelNames,
      registers: [registry]
    })
    this.#seconds = new Gauge({
      name: 'conveyor_consumer_lag_seconds',
      help: 'Age of the oldest unconsumed record.',
      labelNames,
      registers: [registry]
    })
  }

  start(): this {
    this.#timer = setInterval(() => void this.poll(), this.#interval)
    this.#timer.unref()
    void this.poll()
    return this
  }

  /** One measurement of every group (skipped while the previous one runs). */
  poll(): Promise<void> {
    this.#running ??= (async () => {
      for (const group of this.#groups) {
        try {
          for (const row of await groupLag(this.#connection, group)) {
            const labels = { group, topic: row.topic, partition: String(row.partition) }
            this.#offsets.set(labels, Number(row.lag))
            this.#seconds.set(labels, row.lagSeconds ?? 0)
          }
        } catch {
          // The broker is unreachable: keep the last values; readiness reports the outage.
        }
      }
    })().finally(() => {
      this.#running = undefined
    })
    return this.#running
  }

  async stop(): Promise<void> {
    clearInterval(this.#timer)
    await this.#running
  }
}
